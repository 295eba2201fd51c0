// The agents are Linux programs (vsock, fork/exec, process groups): so are their tests.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
