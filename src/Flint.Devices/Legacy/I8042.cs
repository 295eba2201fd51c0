namespace Flint.Devices.Legacy;

/// <summary>
/// The i8042 keyboard controller at 0x60-0x64 (IRQ 1), as much of it as a microVM needs: the guest resets the
/// machine with command 0xFE (that is how reboot=k reboots), and the host can inject Ctrl+Alt+Del.
/// </summary>
public sealed partial class I8042 : IBusDevice
{
    public const ushort BasePort = 0x60;
    public const ulong PortCount = 5;
    public const uint Irq = 1;

    private const int DATA = 0, STATUS_CMD = 4;
    private const byte CMD_READ_CTR = 0x20, CMD_WRITE_CTR = 0x60, CMD_READ_OUTP = 0xd0, CMD_WRITE_OUTP = 0xd1,
        CMD_SELF_TEST = 0xaa, CMD_KBD_TEST = 0xab, CMD_KBD_DISABLE = 0xad, CMD_KBD_ENABLE = 0xae, CMD_RESET = 0xfe;
    private const byte SB_OUT_DATA_AVAIL = 0x01, SB_I8042_CMD_DATA = 0x08, SB_KBD_ENABLED = 0x10;
    private const byte CB_KBD_INT = 0x01, CB_POST_OK = 0x04;
    private const int BufferSize = 16;

    private readonly object _lock = new();
    private readonly IInterrupt _irq;
    private readonly Action _onReset;
    private readonly byte[] _buf = new byte[BufferSize];
    private int _head, _count;
    private byte _status = SB_KBD_ENABLED, _control = CB_POST_OK | CB_KBD_INT, _outp, _cmd;

    public I8042Metrics Metrics { get; } = new();

    /// <param name="onReset">Called (on the vCPU thread) when the guest asks for a CPU reset.</param>
    public I8042(IInterrupt irq, Action onReset)
    {
        _irq = irq;
        _onReset = onReset;
    }

    /// <summary>Queues the Ctrl+Alt+Del press/release scancodes (set 2) and interrupts the guest.</summary>
    public bool SendCtrlAltDel()
    {
        ReadOnlySpan<byte> seq = [0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14];
        bool raise;
        lock (_lock)
        {
            if (BufferSize - _count < seq.Length) { Metrics.MissedWriteCount++; return false; }
            foreach (var b in seq) PushLocked(b);
            raise = (_control & CB_KBD_INT) != 0;
        }
        if (raise) _irq.Trigger();
        return true;
    }

    public void Read(ulong offset, Span<byte> data)
    {
        if (data.Length != 1) { data.Clear(); return; }
        bool raise = false;
        lock (_lock)
        {
            switch ((int)offset)
            {
                case DATA:
                    data[0] = PopLocked();
                    Metrics.ReadCount++;
                    // More keys pending: interrupt again so the driver drains the buffer.
                    raise = _count > 0 && (_control & CB_KBD_INT) != 0;
                    break;
                case STATUS_CMD:
                    data[0] = _status;
                    break;
                default:
                    data[0] = 0;
                    break;
            }
        }
        if (raise) _irq.Trigger();
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (data.Length != 1) return;
        byte v = data[0];
        bool reset = false, raise = false;
        lock (_lock)
        {
            if (offset == STATUS_CMD)
            {
                _status |= SB_I8042_CMD_DATA;
                _cmd = v;
                switch (v)
                {
                    case CMD_READ_CTR: FlushAndPush(_control); raise = true; break;
                    case CMD_WRITE_CTR: case CMD_WRITE_OUTP: break; // parameter follows on port 0x60
                    case CMD_READ_OUTP: FlushAndPush(_outp); raise = true; break;
                    case CMD_SELF_TEST: FlushAndPush(0x55); raise = true; break;
                    case CMD_KBD_TEST: FlushAndPush(0x00); raise = true; break;
                    case CMD_KBD_DISABLE: _control |= 0x10; break;
                    case CMD_KBD_ENABLE: _control &= 0xef; break;
                    case CMD_RESET: reset = true; Metrics.ResetCount++; break;
                    default: Metrics.MissedWriteCount++; break;
                }
                raise &= (_control & CB_KBD_INT) != 0;
            }
            else if (offset == DATA)
            {
                _status &= unchecked((byte)~SB_I8042_CMD_DATA);
                switch (_cmd)
                {
                    case CMD_WRITE_CTR: _control = v; break;
                    case CMD_WRITE_OUTP: _outp = v; break;
                    default:
                        // A keyboard command: acknowledge it (0xFA) like a real keyboard would.
                        FlushAndPush(0xfa);
                        raise = (_control & CB_KBD_INT) != 0;
                        break;
                }
                _cmd = 0;
                Metrics.WriteCount++;
            }
        }
        if (raise) _irq.Trigger();
        if (reset) _onReset();
    }

    private void FlushAndPush(byte b)
    {
        _head = _count = 0;
        PushLocked(b);
    }

    private void PushLocked(byte b)
    {
        _buf[(_head + _count) % BufferSize] = b;
        _count++;
        _status |= SB_OUT_DATA_AVAIL;
    }

    private byte PopLocked()
    {
        if (_count == 0) return 0;
        byte b = _buf[_head];
        _head = (_head + 1) % BufferSize;
        if (--_count == 0) _status &= unchecked((byte)~SB_OUT_DATA_AVAIL);
        return b;
    }
}

/// <summary>Firecracker's i8042 metrics group.</summary>
public sealed class I8042Metrics
{
    public long ErrorCount, MissedReadCount, MissedWriteCount, ReadCount, ResetCount, WriteCount;
}
