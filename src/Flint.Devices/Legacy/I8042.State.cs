using Flint.Snapshot;

namespace Flint.Devices.Legacy;

/// <summary>The i8042's registers and output buffer in a snapshot.</summary>
public sealed partial class I8042
{
    public void SaveState(StateWriter w)
    {
        lock (_lock)
        {
            w.U8(_status); w.U8(_control); w.U8(_outp); w.U8(_cmd);
            var buf = new byte[_count];
            for (int i = 0; i < _count; i++) buf[i] = _buf[(_head + i) % BufferSize];
            w.Bytes(buf);
        }
    }

    public void RestoreState(StateReader r)
    {
        byte status = r.U8(), control = r.U8(), outp = r.U8(), cmd = r.U8();
        byte[] buf = r.Bytes(BufferSize);
        r.ExpectEnd();
        lock (_lock)
        {
            _status = status; _control = control; _outp = outp; _cmd = cmd;
            buf.CopyTo(_buf, 0);
            _head = 0;
            _count = buf.Length;
        }
    }
}
