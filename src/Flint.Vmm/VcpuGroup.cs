using Flint.Vmm.Logging;

namespace Flint.Vmm;

/// <summary>
/// All vCPUs of a VM paused, resumed and stopped together, one operation at a time. Every vCPU is asked first
/// and the answers are awaited after, under one shared deadline: N vCPUs cost one timeout, not N.
/// </summary>
public sealed class VcpuGroup(IReadOnlyList<VcpuRunner> vcpus)
{
    private readonly object _op = new();

    public IReadOnlyList<VcpuRunner> Vcpus { get; } = vcpus;

    /// <summary>Whether the last pause succeeded and no resume followed.</summary>
    public bool IsPaused { get; private set; }

    /// <summary>The bound on one pause or resume of the whole group.</summary>
    public TimeSpan AckTimeout { get; set; } = VcpuRunner.DefaultAckTimeout;

    /// <summary>
    /// Parks every vCPU. On failure (a vCPU exited, or one did not answer in time) the others are let run again,
    /// so a failed pause leaves a running VM rather than a half-paused one, and the error says which vCPU failed.
    /// </summary>
    public void Pause()
    {
        lock (_op)
        {
            if (IsPaused) return;
            try
            {
                foreach (var v in Vcpus) v.RequestPause();
                var deadline = Deadline.After(AckTimeout);
                foreach (var v in Vcpus) v.AwaitPaused(deadline);
            }
            catch (VcpuStateException)
            {
                LetRunAfterFailedPause();
                throw;
            }
            IsPaused = true;
        }
    }

    /// <summary>Starts every vCPU parked and marks the group paused (a VM restored from a snapshot).</summary>
    public void StartPaused()
    {
        lock (_op)
        {
            foreach (var v in Vcpus) v.StartPaused();
            IsPaused = true;
        }
    }

    public void Resume()
    {
        lock (_op)
        {
            if (!IsPaused) return;
            foreach (var v in Vcpus) v.RequestResume();
            IsPaused = false;   // asked: even if one fails to answer below, none stays parked by our request
            var deadline = Deadline.After(AckTimeout);
            foreach (var v in Vcpus) v.AwaitRunning(deadline);
        }
    }

    /// <summary>Asks every vCPU to leave and waits up to <paramref name="timeout"/> in all; false if one is still running.</summary>
    public bool Stop(TimeSpan timeout)
    {
        // Not under _op: a stop must get through while a pause waits for its answers (it ends that wait too).
        foreach (var v in Vcpus) v.Stop();
        var deadline = Deadline.After(timeout);
        bool all = true;
        foreach (var v in Vcpus)
        {
            if (v.Join(TimeSpan.FromMilliseconds(deadline.MillisecondsLeft))) continue;
            all = false;
            Logger.Error($"vCPU {v.Id} did not stop within {timeout.TotalSeconds:0.###} s");
        }
        return all;
    }

    private void LetRunAfterFailedPause()
    {
        foreach (var v in Vcpus)
        {
            try { v.RequestResume(); }
            catch (VcpuStateException) { }   // exited: nothing to let run
        }
    }
}
