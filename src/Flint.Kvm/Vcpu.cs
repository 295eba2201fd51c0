using System.Runtime.InteropServices;
using Flint.Sys;

namespace Flint.Kvm;

/// <summary>A vCPU fd and its mmap'ed kvm_run page.</summary>
// SAFETY: kvm_run is mmapped with the size KVM_GET_VCPU_MMAP_SIZE gave, unmapped only in Dispose; ioctls get stack structs.
public sealed unsafe partial class Vcpu : KvmFd
{
    private readonly int _mmapSize;

    public uint Id { get; }

    /// <summary>The shared kvm_run page; valid until Dispose.</summary>
    public KvmRun* Run { get; private set; }

    internal Vcpu(int fd, uint id, int mmapSize) : base(fd)
    {
        Id = id;
        _mmapSize = mmapSize;
        void* p = Libc.mmap(null, (nuint)mmapSize, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd, 0);
        if ((nint)p == Libc.MAP_FAILED)
        {
            int e = Libc.Errno;
            Libc.close(fd);
            throw new KvmException("mmap kvm_run", e);
        }
        Run = (KvmRun*)p;
    }

    /// <summary>
    /// KVM_RUN. Returns false when the run was interrupted by a signal (EINTR) or cut short by immediate_exit
    /// (EINTR too), so the caller can check for pause/stop requests; throws for any other error.
    /// </summary>
    public bool RunOnce()
    {
        if (Libc.ioctl_val(Fd, Ioctls.KVM_RUN, 0) == 0) return true;
        int e = Libc.Errno;
        if (e == Libc.EINTR || e == Libc.EAGAIN) return false;
        throw new KvmException("KVM_RUN", e);
    }

    public ExitReason ExitReason => (ExitReason)Run->ExitReason;

    /// <summary>The exit the last successful <see cref="RunOnce"/> left in kvm_run, decoded and bounds-checked.</summary>
    // SAFETY: Run is this vCPU's kvm_run mapping of _mmapSize bytes, live until Dispose; the exit's spans point
    // into it and are used before the next KVM_RUN on the same thread.
    public VcpuExit ReadExit() => VcpuExit.Decode(Run, _mmapSize);

    /// <summary>
    /// KVM_KVMCLOCK_CTRL: tells the guest's kvmclock that the vCPU was stopped by the host, so its soft-lockup
    /// watchdog does not fire on resume. Returns 0 or the errno; the caller decides what a failure means
    /// (<see cref="KvmclockNotEnabledErrno"/>: the guest has no kvmclock, which is fine). Call it on the vCPU's own thread.
    /// </summary>
    public const int KvmclockNotEnabledErrno = 22;   // EINVAL: the guest never enabled kvmclock

    public int KvmclockCtrl()
    {
        int r;
        do r = Libc.ioctl_val(Fd, Ioctls.KVM_KVMCLOCK_CTRL, 0); while (r < 0 && Libc.Errno == Libc.EINTR);
        return r < 0 ? Libc.Errno : 0;
    }

    public bool ImmediateExit
    {
        get => Run->ImmediateExit != 0;
        set => Volatile.Write(ref Run->ImmediateExit, value ? (byte)1 : (byte)0);
    }

    public KvmRegs GetRegs() { KvmRegs r; Ioctl(Ioctls.KVM_GET_REGS, &r, "KVM_GET_REGS"); return r; }
    public void SetRegs(in KvmRegs regs) { fixed (KvmRegs* p = &regs) Ioctl(Ioctls.KVM_SET_REGS, p, "KVM_SET_REGS"); }
    public KvmSregs GetSregs() { KvmSregs r; Ioctl(Ioctls.KVM_GET_SREGS, &r, "KVM_GET_SREGS"); return r; }
    public void SetSregs(in KvmSregs sregs) { fixed (KvmSregs* p = &sregs) Ioctl(Ioctls.KVM_SET_SREGS, p, "KVM_SET_SREGS"); }
    public KvmFpu GetFpu() { KvmFpu r; Ioctl(Ioctls.KVM_GET_FPU, &r, "KVM_GET_FPU"); return r; }
    public void SetFpu(in KvmFpu fpu) { fixed (KvmFpu* p = &fpu) Ioctl(Ioctls.KVM_SET_FPU, p, "KVM_SET_FPU"); }
    public KvmLapicState GetLapic() { KvmLapicState r; Ioctl(Ioctls.KVM_GET_LAPIC, &r, "KVM_GET_LAPIC"); return r; }
    public void SetLapic(in KvmLapicState s) { fixed (KvmLapicState* p = &s) Ioctl(Ioctls.KVM_SET_LAPIC, p, "KVM_SET_LAPIC"); }

    public void SetCpuid2(ReadOnlySpan<KvmCpuidEntry2> entries)
    {
        using var buf = new CpuidBuffer(entries);
        Ioctl(Ioctls.KVM_SET_CPUID2, buf.Pointer, "KVM_SET_CPUID2");
    }

    /// <summary>KVM_SET_MSRS; returns how many entries KVM accepted (it stops at the first it rejects).</summary>
    public int SetMsrs(ReadOnlySpan<KvmMsrEntry> entries)
    {
        var mem = (byte*)NativeMemory.AllocZeroed((nuint)(8 + entries.Length * sizeof(KvmMsrEntry)));
        try
        {
            *(uint*)mem = (uint)entries.Length;
            entries.CopyTo(new Span<KvmMsrEntry>(mem + 8, entries.Length));
            return Ioctl(Ioctls.KVM_SET_MSRS, mem, "KVM_SET_MSRS");
        }
        finally { NativeMemory.Free(mem); }
    }

    /// <summary>KVM_GET_MSRS for the indices in <paramref name="entries"/>; fills their Data; returns how many were read.</summary>
    public int GetMsrs(Span<KvmMsrEntry> entries)
    {
        var mem = (byte*)NativeMemory.AllocZeroed((nuint)(8 + entries.Length * sizeof(KvmMsrEntry)));
        try
        {
            *(uint*)mem = (uint)entries.Length;
            var native = new Span<KvmMsrEntry>(mem + 8, entries.Length);
            entries.CopyTo(native);
            int n = Ioctl(Ioctls.KVM_GET_MSRS, mem, "KVM_GET_MSRS");
            native.CopyTo(entries);
            return n;
        }
        finally { NativeMemory.Free(mem); }
    }

    public override void Dispose()
    {
        if (Run != null) { Libc.munmap(Run, (nuint)_mmapSize); Run = null; }
        base.Dispose();
    }
}
