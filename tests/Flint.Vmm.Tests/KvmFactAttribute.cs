namespace Flint.Vmm.Tests;

/// <summary>Skips a test only where /dev/kvm is absent, saying so; everywhere else the test runs.</summary>
internal static class KvmRequirement
{
    public static void Check() =>
        Skip.IfNot(File.Exists("/dev/kvm"), "/dev/kvm is absent on this machine: KVM tests cannot run here");
}
