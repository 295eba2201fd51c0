namespace Flint.Kvm;

/// <summary>Which KVM implementation serves /dev/kvm, as far as the VMM needs to know.</summary>
public enum KvmHostKind
{
    /// <summary>KVM on VMX or SVM hardware: guest code runs natively.</summary>
    Hardware,
    /// <summary>The software kvm_pvm module: guest code runs through KVM's instruction emulator.</summary>
    KvmPvm,
}

/// <summary>The host kind and, in words a user can check, why it was detected.</summary>
public readonly record struct KvmHostDetection(KvmHostKind Kind, string Reason);
