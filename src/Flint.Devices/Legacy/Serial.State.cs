using Flint.Snapshot;

namespace Flint.Devices.Legacy;

/// <summary>The 16550's registers and receive FIFO in a snapshot (Firecracker saves the same registers).</summary>
public sealed partial class Serial
{
    public void SaveState(StateWriter w)
    {
        lock (_lock)
        {
            w.U8(_ier); w.U8(_iir); w.U8(_lcr); w.U8(_mcr); w.U8(_scr); w.U8(_dll); w.U8(_dlh);
            w.Bool(_threPending);
            var rx = new byte[_rxCount];
            for (int i = 0; i < _rxCount; i++) rx[i] = _rx[(_rxHead + i) % RxCapacity];
            w.Bytes(rx);
        }
    }

    /// <summary>Restores what <see cref="SaveState"/> wrote; every field is checked (IER mask, FIFO size) before use.</summary>
    public void RestoreState(StateReader r)
    {
        byte ier = r.U8(), iir = r.U8(), lcr = r.U8(), mcr = r.U8(), scr = r.U8(), dll = r.U8(), dlh = r.U8();
        bool thre = r.Bool();
        byte[] rx = r.Bytes(RxCapacity);
        r.ExpectEnd();
        lock (_lock)
        {
            _ier = (byte)(ier & IER_MASK);
            _lcr = lcr; _mcr = mcr; _scr = scr; _dll = dll; _dlh = dlh;
            _threPending = thre;
            rx.CopyTo(_rx, 0);
            _rxHead = 0;
            _rxCount = rx.Length;
            _ = iir; // derived state: recomputed from IER, the FIFO and THRE rather than trusted
            UpdateIir();
        }
    }
}
