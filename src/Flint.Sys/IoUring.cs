using System.Runtime.CompilerServices;
using static Flint.Sys.IoUringAbi;

namespace Flint.Sys;

/// <summary>
/// One io_uring instance bound to one file (Firecracker's <c>io_uring::IoUring</c>, reduced to what a block device
/// needs). The file is registered as fixed file 0 and the ring is restricted before it is enabled: only READV, WRITEV
/// and FSYNC, only on registered files, so a bug (or a hijacked caller) cannot turn the ring into a general syscall
/// gateway. Completions are announced on an eventfd (IORING_REGISTER_EVENTFD) the event loop polls.
/// <para>
/// Not thread-safe: one owner submits and reaps (the device, under its lock). Preparing, submitting and reaping
/// allocate nothing. <see cref="Pending"/> counts operations prepared and not yet reaped; it never exceeds the
/// completion ring's size, so the kernel never has to drop or hold back a completion (CQ overflow).
/// </para>
/// </summary>
// SAFETY: ring pointers come from mmap of the sizes io_uring_setup returned, valid until Dispose unmaps them.
public sealed unsafe class IoUring : IDisposable
{
    private int _fd = -1;
    private byte* _sqRing, _cqRing;
    private nuint _sqRingSize, _cqRingSize;
    private IoUringSqe* _sqes;
    private nuint _sqesSize;
    // Pointers into the shared rings. Head/tail words are shared with the kernel: read with acquire, written with
    // release (Volatile), as liburing does.
    private uint* _sqHead, _sqTail, _cqHead, _cqTail;
    private uint _sqMask, _cqMask;
    private IoUringCqe* _cqes;
    private uint _sqLocalTail; // entries prepared; published to the kernel by Submit
    private readonly bool _extArg;

    public uint SqEntries { get; }
    public uint CqEntries { get; }

    /// <summary>Operations prepared (submitted or not) whose completion has not been reaped.</summary>
    public uint Pending { get; private set; }

    /// <summary>Prepared entries the kernel has not consumed yet.</summary>
    public uint Unsubmitted => _sqLocalTail - Volatile.Read(ref *_sqHead);

    /// <summary>
    /// Sets up a ring of at least <paramref name="entries"/> submission entries (a power of two) for
    /// <paramref name="fileFd"/>, announcing completions on <paramref name="eventFd"/> (-1: none). Throws
    /// <see cref="SysException"/> naming the step that failed (io_uring_setup first: ENOSYS or EPERM where io_uring is
    /// missing or disabled).
    /// </summary>
    public IoUring(uint entries, int fileFd, int eventFd)
    {
        IoUringParams p = default;
        p.Flags = SetupRDisabled; // disabled until the restrictions are in
        // SAFETY: p is a live stack struct of the kernel's layout; the kernel writes only within it.
        long fd = JailerLibc.Raw(SysSetup, entries, (long)&p);
        if (fd < 0) throw new SysException("io_uring_setup", (int)-fd);
        _fd = (int)fd;
        try
        {
            SqEntries = p.SqEntries;
            CqEntries = p.CqEntries;
            _extArg = (p.Features & FeatExtArg) != 0;
            MapRings(p);
            if (eventFd >= 0) Register(RegisterEventFd, &eventFd, 1, "io_uring_register eventfd");
            Restrict();
            Register(RegisterFiles, &fileFd, 1, "io_uring_register files");
            Register(RegisterEnableRings, null, 0, "io_uring_register enable");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void MapRings(in IoUringParams p)
    {
        _sqRingSize = p.SqOff.Array + p.SqEntries * sizeof(uint);
        _cqRingSize = p.CqOff.Cqes + p.CqEntries * (uint)sizeof(IoUringCqe);
        bool single = (p.Features & FeatSingleMmap) != 0;
        if (single) _sqRingSize = _cqRingSize = Math.Max(_sqRingSize, _cqRingSize);
        _sqRing = Map(_sqRingSize, OffSqRing, "mmap io_uring SQ ring");
        _cqRing = single ? _sqRing : Map(_cqRingSize, OffCqRing, "mmap io_uring CQ ring");
        _sqesSize = p.SqEntries * (nuint)sizeof(IoUringSqe);
        _sqes = (IoUringSqe*)Map(_sqesSize, OffSqes, "mmap io_uring SQEs");

        // SAFETY: every offset comes from the kernel's io_uring_params for these mappings and lies inside them.
        _sqHead = (uint*)(_sqRing + p.SqOff.Head);
        _sqTail = (uint*)(_sqRing + p.SqOff.Tail);
        _sqMask = *(uint*)(_sqRing + p.SqOff.RingMask);
        _cqHead = (uint*)(_cqRing + p.CqOff.Head);
        _cqTail = (uint*)(_cqRing + p.CqOff.Tail);
        _cqMask = *(uint*)(_cqRing + p.CqOff.RingMask);
        _cqes = (IoUringCqe*)(_cqRing + p.CqOff.Cqes);
        // The index array maps ring slots to entries; slot i always names entry i, so it is filled once.
        uint* array = (uint*)(_sqRing + p.SqOff.Array);
        for (uint i = 0; i < p.SqEntries; i++) array[i] = i;
        _sqLocalTail = *_sqTail;
    }

    private byte* Map(nuint size, long offset, string what)
    {
        const int MapPopulate = 0x8000;
        void* m = Libc.mmap(null, size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | MapPopulate, _fd, offset);
        if ((nint)m == Libc.MAP_FAILED) throw SysException.Last(what);
        return (byte*)m;
    }

    private void Register(uint op, void* arg, uint count, string what)
    {
        long r = JailerLibc.Raw(SysRegister, _fd, op, (long)arg, count);
        if (r < 0) throw new SysException(what, (int)-r);
    }

    /// <summary>Firecracker's restrictions: fixed files only, and only the three opcodes the block device uses.</summary>
    private void Restrict()
    {
        var r = stackalloc IoUringRestriction[5];
        r[0] = new IoUringRestriction { Opcode = RestrictionSqeFlagsRequired, Arg = SqeFixedFile };
        r[1] = new IoUringRestriction { Opcode = RestrictionSqeFlagsAllowed, Arg = SqeFixedFile };
        r[2] = new IoUringRestriction { Opcode = RestrictionSqeOp, Arg = OpReadv };
        r[3] = new IoUringRestriction { Opcode = RestrictionSqeOp, Arg = OpWritev };
        r[4] = new IoUringRestriction { Opcode = RestrictionSqeOp, Arg = OpFsync };
        Register(RegisterRestrictions, r, 5, "io_uring_register restrictions");
    }

    /// <summary>
    /// True when another operation can be prepared: a free submission slot, and room in the completion ring for its
    /// completion beside every other pending one.
    /// </summary>
    public bool HasRoom => Pending < CqEntries && _sqLocalTail - Volatile.Read(ref *_sqHead) < SqEntries;

    /// <summary>Prepares a READV of <paramref name="count"/> iovecs at <paramref name="offset"/>; false when full.</summary>
    /// <remarks>The iovecs and the buffers they name must stay valid until the completion is reaped.</remarks>
    public bool TryPrepareReadv(IoVec* iov, uint count, ulong offset, ulong userData) =>
        TryPrepare(OpReadv, (ulong)iov, count, offset, 0, userData);

    /// <summary>Prepares a WRITEV of <paramref name="count"/> iovecs at <paramref name="offset"/>; false when full.</summary>
    public bool TryPrepareWritev(IoVec* iov, uint count, ulong offset, ulong userData) =>
        TryPrepare(OpWritev, (ulong)iov, count, offset, 0, userData);

    /// <summary>Prepares an fsync (fdatasync with <paramref name="dataOnly"/>) of the file; false when full.</summary>
    public bool TryPrepareFsync(bool dataOnly, ulong userData) =>
        TryPrepare(OpFsync, 0, 0, 0, dataOnly ? FsyncDataSync : 0, userData);

    private bool TryPrepare(byte op, ulong addr, uint len, ulong offset, uint opFlags, ulong userData)
    {
        if (_fd < 0 || !HasRoom) return false;
        // SAFETY: the slot index is masked into the SQE array the kernel sized (SqEntries entries); the kernel has
        // consumed it (HasRoom: fewer than SqEntries prepared and unconsumed).
        IoUringSqe* sqe = _sqes + (_sqLocalTail & _sqMask);
        *sqe = default;
        sqe->Opcode = op;
        sqe->Flags = SqeFixedFile;
        sqe->Fd = 0; // fixed file 0: the one registered file
        sqe->Off = offset;
        sqe->Addr = addr;
        sqe->Len = len;
        sqe->OpFlags = opFlags;
        sqe->UserData = userData;
        _sqLocalTail++;
        Pending++;
        return true;
    }

    /// <summary>
    /// Hands every prepared entry to the kernel (io_uring_enter). Returns the number the kernel took, or -errno; what
    /// it did not take stays queued for the next call.
    /// </summary>
    public int Submit()
    {
        if (_fd < 0) return -Libc.EBADF;
        // SAFETY: _sqTail points into the mapped SQ ring; the release store publishes the entries written before it.
        Volatile.Write(ref *_sqTail, _sqLocalTail);
        uint toSubmit = Unsubmitted;
        if (toSubmit == 0) return 0;
        while (true)
        {
            long r = JailerLibc.Raw(SysEnter, _fd, toSubmit, 0, 0, 0, 0);
            if (r == -Libc.EINTR) continue;
            return (int)r;
        }
    }

    /// <summary>
    /// Submits what is prepared and waits until at least one completion is ready or <paramref name="timeoutNs"/>
    /// has passed. Returns 0, -ETIME on time-out, or -errno. Kernels without IORING_FEAT_EXT_ARG (before 5.11) get
    /// no timed wait: this then returns at once and the caller's loop polls.
    /// </summary>
    public int WaitForCompletion(long timeoutNs)
    {
        if (_fd < 0) return -Libc.EBADF;
        Volatile.Write(ref *_sqTail, _sqLocalTail);
        uint toSubmit = Unsubmitted;
        if (HasCompletion) return 0;
        if (!_extArg)
        {
            long s = JailerLibc.Raw(SysEnter, _fd, toSubmit, 0, 0, 0, 0);
            return s < 0 ? (int)s : 0;
        }
        TimeSpec ts = new() { Sec = timeoutNs / 1_000_000_000, NSec = timeoutNs % 1_000_000_000 };
        IoUringGetEventsArg arg = new() { Ts = (ulong)&ts };
        // SAFETY: arg and ts are live stack values for the duration of the call; argsz is arg's size.
        long r = JailerLibc.Raw(SysEnter, _fd, toSubmit, 1, EnterGetEvents | EnterExtArg, (long)&arg, sizeof(IoUringGetEventsArg));
        return r < 0 ? (int)r : 0;
    }

    /// <summary>A completion is waiting to be reaped.</summary>
    public bool HasCompletion => _fd >= 0 && Volatile.Read(ref *_cqTail) != *_cqHead;

    /// <summary>Takes the next completion, if any.</summary>
    public bool TryReap(out IoUringCompletion completion)
    {
        if (_fd < 0)
        {
            completion = default;
            return false;
        }
        // SAFETY: head and tail are in the mapped CQ ring; the entry index is masked into the CQE array, and the
        // acquire read of the tail orders our read of the entry after the kernel's write of it.
        uint head = *_cqHead;
        if (Volatile.Read(ref *_cqTail) == head)
        {
            completion = default;
            return false;
        }
        IoUringCqe cqe = _cqes[head & _cqMask];
        Volatile.Write(ref *_cqHead, head + 1);
        if (Pending > 0) Pending--;
        completion = new IoUringCompletion(cqe.UserData, cqe.Res);
        return true;
    }

    /// <summary>
    /// Probes io_uring on this host: 0 when a ring can be set up, else the errno io_uring_setup gave (ENOSYS: no
    /// io_uring; EPERM: disabled by sysctl or a seccomp/LSM policy).
    /// </summary>
    public static int Probe()
    {
        IoUringParams p = default;
        // SAFETY: as in the constructor.
        long fd = JailerLibc.Raw(SysSetup, 1, (long)&p);
        if (fd < 0) return (int)-fd;
        Libc.close((int)fd);
        return 0;
    }

    /// <summary>
    /// Unmaps and closes. Closing the ring cancels what is still in flight, but a cancelled read may still land, so
    /// an owner whose buffers are about to go away drains first (the block device waits, bounded, in Reset/Dispose).
    /// </summary>
    public void Dispose()
    {
        // Order as the kernel needs it: unmap the rings, then close the fd.
        if (_sqes != null) { Libc.munmap(_sqes, _sqesSize); _sqes = null; }
        if (_cqRing != null && _cqRing != _sqRing) Libc.munmap(_cqRing, _cqRingSize);
        _cqRing = null;
        if (_sqRing != null) { Libc.munmap(_sqRing, _sqRingSize); _sqRing = null; }
        if (_fd >= 0) { Libc.close(_fd); _fd = -1; }
    }
}
