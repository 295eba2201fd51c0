namespace Flint.Devices.Legacy;

/// <summary>
/// A 16550A UART at 0x3f8 (IRQ 4): what Linux's 8250 driver needs for a console. Output goes to a stream
/// (stdout or PUT /serial's serial_out_path, both written without blocking: a byte that cannot be written at once
/// is dropped and counted in error_count, as Firecracker's write_all on its O_NONBLOCK file fails); input is queued
/// by the event loop from stdin. An optional token bucket (PUT /serial's rate_limiter, one token per byte) drops what
/// exceeds it and counts it in rate_limiter_dropped_bytes. Registers follow the 16550 data sheet.
/// </summary>
public sealed partial class Serial : IBusDevice
{
    public const ushort Com1Port = 0x3f8;
    public const ulong PortCount = 8;
    public const uint Com1Irq = 4;

    // Register offsets (DLAB=0 unless noted).
    private const int DATA = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;
    private const byte IER_RDA = 0x01, IER_THRE = 0x02, IER_MASK = 0x0f;
    private const byte IIR_NONE = 0x01, IIR_THRE = 0x02, IIR_RDA = 0x04, IIR_FIFO_BITS = 0xc0;
    private const byte LCR_DLAB = 0x80;
    private const byte LSR_DR = 0x01, LSR_THRE = 0x20, LSR_TEMT = 0x40;
    private const byte MCR_LOOP = 0x10;
    // Modem status: CTS, DSR and DCD asserted so the guest sees a live line.
    private const byte MSR_DEFAULT = 0xb0;
    private const int RxCapacity = 64;

    private readonly object _lock = new();
    private readonly Stream? _out;
    private readonly IInterrupt _irq;
    private readonly RateLimiting.TokenBucket? _limiter;
    private readonly byte[] _rx = new byte[RxCapacity];
    private int _rxHead, _rxCount;
    private byte _ier, _iir = IIR_NONE, _lcr = 0x03, _mcr = 0x08, _scr, _dll = 0x0c, _dlh;
    private bool _threPending;

    public UartMetrics Metrics { get; } = new();

    /// <param name="rateLimiter">Output budget in bytes; null or disabled: no limit.</param>
    public Serial(Stream? output, IInterrupt irq, RateLimiting.TokenBucket? rateLimiter = null)
    {
        _out = output;
        _irq = irq;
        _limiter = rateLimiter is { IsDisabled: false } ? rateLimiter : null;
    }

    /// <summary>Room left in the receive FIFO; the event loop reads no more than this from stdin.</summary>
    public int RxSpace { get { lock (_lock) return RxCapacity - _rxCount; } }

    /// <summary>
    /// Called (on the thread of the guest's read, outside the device lock) once the guest has read a receive FIFO the
    /// host found full down to half after <see cref="NotifyWhenRoom"/>: the console input source then reads stdin again.
    /// Input is never dropped for want of room, as in Firecracker, whose serial stops reading stdin while its FIFO is
    /// full; a slow guest only slows its own console.
    /// </summary>
    public Action? RxRoom { get; set; }

    /// <summary>Asks for one <see cref="RxRoom"/> call once the FIFO has room (at once if it has some already).</summary>
    public void NotifyWhenRoom()
    {
        bool now;
        lock (_lock)
        {
            now = _rxCount < RxCapacity;
            _notifyRoom = !now;
        }
        if (now) RxRoom?.Invoke();
    }

    private bool _notifyRoom;

    /// <summary>Queues input bytes for the guest (stdin); returns how many fit.</summary>
    public int EnqueueInput(ReadOnlySpan<byte> data)
    {
        bool raise;
        int n;
        lock (_lock)
        {
            n = Math.Min(data.Length, RxCapacity - _rxCount);
            for (int i = 0; i < n; i++) _rx[(_rxHead + _rxCount + i) % RxCapacity] = data[i];
            _rxCount += n;
            raise = n > 0 && (_ier & IER_RDA) != 0;
            if (raise) UpdateIir();
        }
        if (raise) _irq.Trigger();
        return n;
    }

    public void Read(ulong offset, Span<byte> data)
    {
        if (data.Length != 1) { data.Clear(); return; }
        byte v;
        bool room = false;
        lock (_lock)
        {
            switch ((int)offset)
            {
                case DATA when (_lcr & LCR_DLAB) != 0: v = _dll; break;
                case DATA:
                    v = 0;
                    if (_rxCount > 0)
                    {
                        v = _rx[_rxHead];
                        _rxHead = (_rxHead + 1) % RxCapacity;
                        _rxCount--;
                        Metrics.ReadCount++;
                        // Half empty, not one byte free: stdin is then read in runs, not a byte per wake-up.
                        if (_notifyRoom && _rxCount <= RxCapacity / 2)
                        {
                            room = true;
                            _notifyRoom = false;
                        }
                    }
                    UpdateIir();
                    break;
                case IER when (_lcr & LCR_DLAB) != 0: v = _dlh; break;
                case IER: v = _ier; break;
                case IIR_FCR:
                    v = (byte)(_iir | IIR_FIFO_BITS);
                    // Reading IIR while it reports THRE clears that condition (16550 behaviour).
                    if ((_iir & 0x0f) == IIR_THRE) { _threPending = false; UpdateIir(); }
                    break;
                case LCR: v = _lcr; break;
                case MCR: v = _mcr; break;
                case LSR: v = (byte)(LSR_THRE | LSR_TEMT | (_rxCount > 0 ? LSR_DR : 0)); break;
                case MSR:
                    // In loopback the modem inputs mirror MCR's outputs (the 8250 driver probes this).
                    v = (_mcr & MCR_LOOP) != 0
                        ? (byte)(((_mcr & 0x02) << 3) | ((_mcr & 0x01) << 5) | ((_mcr & 0x04) << 4) | ((_mcr & 0x08) << 4))
                        : MSR_DEFAULT;
                    break;
                case SCR: v = _scr; break;
                default: v = 0; break;
            }
        }
        data[0] = v;
        if (room) RxRoom?.Invoke();
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (data.Length != 1) return;
        byte v = data[0];
        bool raise = false;
        lock (_lock)
        {
            switch ((int)offset)
            {
                case DATA when (_lcr & LCR_DLAB) != 0: _dll = v; break;
                case DATA:
                    if ((_mcr & MCR_LOOP) != 0)
                    {
                        if (_rxCount < RxCapacity) { _rx[(_rxHead + _rxCount) % RxCapacity] = v; _rxCount++; }
                    }
                    else
                    {
                        Emit(v);
                    }
                    _threPending = true;
                    UpdateIir();
                    raise = (_ier & IER_THRE) != 0 || ((_ier & IER_RDA) != 0 && _rxCount > 0);
                    break;
                case IER when (_lcr & LCR_DLAB) != 0: _dlh = v; break;
                case IER:
                    byte old = _ier;
                    _ier = (byte)(v & IER_MASK);
                    // Enabling THRE interrupts with an empty transmitter raises one at once; the 8250 driver relies on it.
                    if ((_ier & IER_THRE) != 0 && (old & IER_THRE) == 0) { _threPending = true; raise = true; }
                    UpdateIir();
                    break;
                case IIR_FCR: break; // FIFO control: our FIFO is always on and never overruns the guest
                case LCR: _lcr = v; break;
                case MCR: _mcr = v; break;
                case SCR: _scr = v; break;
                default: break; // LSR/MSR are read-only
            }
        }
        if (raise) _irq.Trigger();
    }

    private void UpdateIir()
    {
        if ((_ier & IER_RDA) != 0 && _rxCount > 0) _iir = IIR_RDA;
        else if ((_ier & IER_THRE) != 0 && _threPending) _iir = IIR_THRE;
        else _iir = IIR_NONE;
    }

    private void Emit(byte b)
    {
        if (_out == null) { Metrics.MissedWriteCount++; return; }
        // Firecracker's SerialOut: over budget, the byte is dropped but the write reports success (write_count
        // still counts it, as vm-superio counts every byte the sink took).
        if (_limiter != null && _limiter.Reduce(1) != RateLimiting.BucketReduction.Success)
        {
            Metrics.RateLimiterDroppedBytes++;
            Metrics.WriteCount++;
            return;
        }
        if (_out is INonBlockingOutput nb)
        {
            if (nb.TryWrite(new ReadOnlySpan<byte>(in b))) Metrics.WriteCount++;
            else Metrics.ErrorCount++;
            return;
        }
        try
        {
            _out.WriteByte(b);
            // Flush at line ends (and when the guest is about to wait) so the console is readable live.
            if (b == (byte)'\n') _out.Flush();
            Metrics.WriteCount++;
        }
        catch (IOException)
        {
            // Firecracker: "Counter incremented for any handle_write() error" (a full pipe, a full disk).
            Metrics.ErrorCount++;
        }
    }

    public void Flush()
    {
        lock (_lock)
        {
            try { _out?.Flush(); } catch (IOException) { }
        }
    }
}

/// <summary>Firecracker's uart metrics group.</summary>
public sealed class UartMetrics
{
    public long ErrorCount, FlushCount, MissedReadCount, MissedWriteCount, ReadCount, WriteCount;
    /// <summary>Bytes the serial rate limiter dropped (Firecracker 1.15+).</summary>
    public long RateLimiterDroppedBytes;
}
