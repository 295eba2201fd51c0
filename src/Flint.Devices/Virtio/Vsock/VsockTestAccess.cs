using System.Runtime.CompilerServices;

// The vsock state machine, header codec and backend seam are internal; their unit tests drive them directly.
[assembly: InternalsVisibleTo("Flint.Devices.Tests")]
