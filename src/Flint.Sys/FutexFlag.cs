using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>
/// A one-shot "done" flag one thread waits on and another sets, on a futex word in the pinned object heap. For a
/// hand-off between two fixed threads (the API thread waiting for the VMM thread's answer) it costs one futex call on
/// each side; a Monitor.Wait/PulseAll pair cost about four, and the waiter, woken while the waker still held the
/// lock, could block a second time to take it.
/// </summary>
// SAFETY: the futex word is native memory allocated once per flag and freed in Dispose; futex(2) gets only its address.
public sealed unsafe class FutexFlag
{
    private const int FUTEX_WAIT_PRIVATE = 128, FUTEX_WAKE_PRIVATE = 129;
    private const int Clear = 0, Set = 1, Sleeping = 2;

    /// <summary>On the pinned object heap: the kernel and both threads see the word at one address for its life.</summary>
    private readonly int[] _word = GC.AllocateArray<int>(1, pinned: true);

    // SAFETY: _word is pinned (never moved by the GC) and lives as long as this object.
    private int* Word => (int*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_word));

    public bool IsSet => Volatile.Read(ref _word[0]) == Set;

    /// <summary>Waiter, before it publishes the work whose end it will wait for.</summary>
    public void Reset() => Volatile.Write(ref _word[0], Clear);

    /// <summary>
    /// Setter: marks the flag set and wakes the waiter if it sleeps. Everything written before is visible to the
    /// waiter once it sees the flag set (the exchange is a full barrier).
    /// </summary>
    public void SetAndWake()
    {
        if (Interlocked.Exchange(ref _word[0], Set) == Sleeping)
            // SAFETY: Word is the pinned word (see above); FUTEX_WAKE only reads the address.
            Libc.futex(Word, FUTEX_WAKE_PRIVATE, int.MaxValue, null);
    }

    /// <summary>
    /// Waiter: returns true once the flag is set, false when <paramref name="timeoutMs"/> passed first. May return
    /// early (a signal); callers loop on their own deadline.
    /// </summary>
    public bool Wait(int timeoutMs)
    {
        if (IsSet) return true;
        // Announce the sleep: a setter that sees Sleeping wakes us; one that set the flag first makes the CAS fail.
        if (Interlocked.CompareExchange(ref _word[0], Sleeping, Clear) == Set) return true;
        if (timeoutMs <= 0) return IsSet;
        var ts = new Libc.Timespec { Seconds = timeoutMs / 1000, Nanoseconds = timeoutMs % 1000 * 1_000_000L };
        // SAFETY: Word is the pinned word; ts lives on this stack frame for the call. The kernel sleeps only while the
        // word still reads Sleeping, so a set that came after the CAS is never missed.
        Libc.futex(Word, FUTEX_WAIT_PRIVATE, Sleeping, &ts);
        return IsSet;
    }
}
