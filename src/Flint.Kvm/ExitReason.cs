namespace Flint.Kvm;

/// <summary>kvm_run.exit_reason values (KVM_EXIT_*).</summary>
public enum ExitReason : uint
{
    Unknown = 0, Exception = 1, Io = 2, Hypercall = 3, Debug = 4, Hlt = 5, Mmio = 6,
    IrqWindowOpen = 7, Shutdown = 8, FailEntry = 9, Intr = 10, SetTpr = 11, TprAccess = 12,
    Nmi = 16, InternalError = 17, SystemEvent = 24,
}

/// <summary>kvm_run.system_event.type values.</summary>
public enum SystemEventType : uint { Shutdown = 1, Reset = 2, Crash = 3 }
