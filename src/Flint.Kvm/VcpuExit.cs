namespace Flint.Kvm;

/// <summary>
/// One KVM exit, decoded once from the kvm_run page (<see cref="Decode"/>) so the exit handler never reads the
/// shared page itself and can be fed by a fake vCPU in tests. <see cref="Data"/> points into kvm_run for IO and
/// MMIO exits: the handler reads or fills it in place, and KVM picks the bytes up on the next KVM_RUN.
/// </summary>
public readonly ref struct VcpuExit
{
    public ExitReason Reason { get; }
    /// <summary>The port (IO) or guest-physical address (MMIO).</summary>
    public ulong Address { get; }
    /// <summary>IO out or MMIO write (the guest gives data); otherwise the VMM fills <see cref="Data"/>.</summary>
    public bool IsWrite { get; }
    /// <summary>Bytes per access.</summary>
    public int Size { get; }
    /// <summary>How many accesses (rep outs/ins); 1 for MMIO.</summary>
    public int Count { get; }
    /// <summary>Count * Size bytes.</summary>
    public Span<byte> Data { get; }
    /// <summary>The exit's one number worth logging: the hardware entry failure reason, the internal-error suberror or the system event type.</summary>
    public ulong Detail { get; }

    private VcpuExit(ExitReason reason, ulong address, bool isWrite, int size, int count, Span<byte> data, ulong detail)
    {
        Reason = reason;
        Address = address;
        IsWrite = isWrite;
        Size = size;
        Count = count;
        Data = data;
        Detail = detail;
    }

    public static VcpuExit Io(ushort port, bool isOut, int size, Span<byte> data) =>
        new(ExitReason.Io, port, isOut, size, size == 0 ? 0 : data.Length / size, data, 0);

    public static VcpuExit Mmio(ulong address, bool isWrite, Span<byte> data) =>
        new(ExitReason.Mmio, address, isWrite, data.Length, 1, data, 0);

    public static VcpuExit Other(ExitReason reason, ulong detail = 0) => new(reason, 0, false, 0, 0, default, detail);

    /// <summary>
    /// Reads the exit that the last KVM_RUN left in <paramref name="run"/>, each field once. The IO data offset
    /// and sizes come from the kernel, but a wrong one would make the VMM read or write outside the page, so they
    /// are checked against <paramref name="pageSize"/> (the kvm_run mmap size) before any span is made.
    /// </summary>
    // SAFETY: run is the caller's mapped kvm_run of pageSize bytes; every span is bounds-checked against pageSize (detail inside).
    public static unsafe VcpuExit Decode(KvmRun* run, int pageSize)
    {
        // SAFETY: run points at a mapped kvm_run of pageSize bytes (the caller's contract: Vcpu passes its own
        // mapping, valid until Dispose, and the vCPU thread is the only one running it). The fixed head read below
        // lies within the first 288 bytes; the spans handed out are bounds-checked against pageSize first.
        var reason = (ExitReason)run->ExitReason;
        switch (reason)
        {
            case ExitReason.Io:
            {
                IoExit io = run->Io;   // one copy: every field below comes from this read
                int size = io.Size;
                if (size is not (1 or 2 or 4) || io.Count == 0 || io.Count > (uint)pageSize ||
                    io.DataOffset > (ulong)pageSize || io.DataOffset + (ulong)io.Count * (ulong)size > (ulong)pageSize)
                    throw new InvalidOperationException(
                        $"KVM_EXIT_IO outside the kvm_run page: size {size}, count {io.Count}, data offset {io.DataOffset}");
                var data = new Span<byte>((byte*)run + io.DataOffset, (int)io.Count * size);
                return new VcpuExit(reason, io.Port, io.Direction == IoExit.Out, size, (int)io.Count, data, 0);
            }
            case ExitReason.Mmio:
            {
                MmioExit* m = &run->Mmio;
                uint len = m->Len;
                if (len is 0 or > 8) throw new InvalidOperationException($"KVM_EXIT_MMIO with length {len}");
                // The data bytes are the struct's own field (kvm_run.mmio.data), not a hand-computed offset.
                return new VcpuExit(reason, m->PhysAddr, m->IsWrite != 0, (int)len, 1, new Span<byte>(m->Data, (int)len), 0);
            }
            case ExitReason.FailEntry:
                return Other(reason, run->HardwareExitReason);
            case ExitReason.InternalError:
                return Other(reason, run->Internal.Suberror);
            case ExitReason.SystemEvent:
                return Other(reason, run->SystemEvent.Type);
            default:
                return Other(reason, run->ExitReason);
        }
    }
}
