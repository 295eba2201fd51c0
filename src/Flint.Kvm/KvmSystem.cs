using System.Runtime.InteropServices;
using Flint.Sys;

namespace Flint.Kvm;

/// <summary>The /dev/kvm system fd: capabilities, supported CPUID, VM creation.</summary>
// SAFETY: ioctls on /dev/kvm get stack structs or a CpuidBuffer of the size they declare.
public sealed unsafe class KvmSystem : KvmFd
{
    public const string DefaultPath = "/dev/kvm";
    /// <summary>Upper bound KVM accepts for KVM_GET_SUPPORTED_CPUID (KVM_MAX_CPUID_ENTRIES).</summary>
    public const int MaxCpuidEntries = 256;

    private KvmSystem(int fd) : base(fd) { }

    /// <summary>True when a KVM device node exists at <paramref name="path"/>; tests use this to decide whether to skip.</summary>
    public static bool IsPresent(string path = DefaultPath) => File.Exists(path);

    /// <summary>
    /// True when the host's KVM is the software kvm_pvm module (no VMX/SVM): guest code runs through the
    /// instruction emulator and some instructions cannot run (see CpuTemplates.KvmPvm). Works in a jail too
    /// (<see cref="KvmHostKindDetector"/>).
    /// </summary>
    public static bool IsKvmPvmHost() => KvmHostKindDetector.Detect().Kind == KvmHostKind.KvmPvm;

    public static KvmSystem Open(string path = DefaultPath)
    {
        int fd = Libc.Open(path, Libc.O_RDWR);
        if (fd < 0) throw OpenFailure(path, Libc.Errno);
        var kvm = new KvmSystem(fd);
        int v = kvm.ApiVersion;
        if (v != Ioctls.KVM_API_VERSION)
        {
            kvm.Dispose();
            throw new InvalidOperationException($"KVM API version {v}, expected {Ioctls.KVM_API_VERSION}");
        }
        return kvm;
    }

    /// <summary>Why /dev/kvm could not be opened, with the usual fix for each cause.</summary>
    public static KvmException OpenFailure(string path, int errno) => new($"open {path}", errno, errno switch
    {
        Libc.EACCES or Libc.EPERM =>
            $"the user running flint may not use {path}: add it to the kvm group (sudo usermod -aG kvm $USER, then "
            + $"log in again) or grant it with an ACL (sudo setfacl -m u:$USER:rw {path})",
        Libc.ENOENT => $"{path} does not exist: KVM is not available on this host (load kvm_intel or kvm_amd, with "
            + "virtualization enabled in the firmware, or use a machine that offers nested virtualization)",
        Libc.ENXIO or Libc.ENODEV => $"no KVM module serves {path}: load kvm_intel or kvm_amd",
        _ => "",
    });

    public int ApiVersion => IoctlVal(Ioctls.KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION");

    /// <summary>KVM_CHECK_EXTENSION: 0 when unsupported, else a capability-specific positive value.</summary>
    public int CheckExtension(int cap)
    {
        int r = Libc.ioctl_val(Fd, Ioctls.KVM_CHECK_EXTENSION, (nuint)cap);
        return r < 0 ? 0 : r;
    }

    public int VcpuMmapSize => IoctlVal(Ioctls.KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");

    public KvmCpuidEntry2[] GetSupportedCpuid()
    {
        using var buf = new CpuidBuffer(MaxCpuidEntries);
        Ioctl(Ioctls.KVM_GET_SUPPORTED_CPUID, buf.Pointer, "KVM_GET_SUPPORTED_CPUID");
        return buf.ToArray();
    }

    public uint[] GetMsrIndexList()
    {
        const int max = 1024;
        var mem = (uint*)NativeMemory.AllocZeroed((nuint)(4 + 4 * max));
        try
        {
            mem[0] = max;
            Ioctl(Ioctls.KVM_GET_MSR_INDEX_LIST, mem, "KVM_GET_MSR_INDEX_LIST");
            return new ReadOnlySpan<uint>(mem + 1, (int)mem[0]).ToArray();
        }
        finally { NativeMemory.Free(mem); }
    }

    public Vm CreateVm()
    {
        int fd = IoctlVal(Ioctls.KVM_CREATE_VM, 0, "KVM_CREATE_VM");
        return new Vm(fd, VcpuMmapSize);
    }
}
