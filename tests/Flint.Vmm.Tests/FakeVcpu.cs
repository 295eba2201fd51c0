using Flint.Devices;
using Flint.Kvm;

namespace Flint.Vmm.Tests;

/// <summary>How a <see cref="FakeVcpu"/>'s guest behaves between exits.</summary>
internal enum FakeGuest
{
    /// <summary>Busy: spins briefly, then an IO-out exit to <see cref="FakeVcpu.ProgressPort"/> (its progress).</summary>
    Busy,
    /// <summary>Halted with the in-kernel irqchip: no exits at all; only a kick ends the run.</summary>
    Idle,
    /// <summary>Never returns from its run, kick or not (a wedged host): only <see cref="FakeVcpu.Unstick"/> frees it.</summary>
    Stuck,
}

/// <summary>
/// A vCPU without KVM, with KVM_RUN's kick semantics: <see cref="Kick"/> sets a sticky flag (immediate_exit) that
/// makes the current or the next <see cref="Run"/> return false until <see cref="ClearKick"/>. A runner that loses
/// a kick leaves an <see cref="FakeGuest.Idle"/> vCPU in its run for good, as a real halted guest would.
/// </summary>
internal sealed class FakeVcpu(uint id = 0, FakeGuest guest = FakeGuest.Busy) : IVcpuBackend
{
    public const ushort ProgressPort = 0x3ff;

    private readonly object _wake = new();
    private readonly byte[] _io = new byte[8];     // the "kvm_run page" the IO exits point into
    private int _kicked, _pendingExit, _stuck = guest == FakeGuest.Stuck ? 1 : 0;
    private long _runs, _kicks, _paused;

    public uint Id { get; } = id;
    public volatile FakeGuest Guest = guest;
    public int SpinsPerExit = 20;
    public int AttachedThreads, DetachedThreads;
    /// <summary>Runs on the vCPU thread at the start of each run (allocation probes, injected failures).</summary>
    public Action<long>? OnRun;

    public long Runs => Interlocked.Read(ref _runs);
    public long Kicks => Interlocked.Read(ref _kicks);
    public long PausedCount => Interlocked.Read(ref _paused);

    /// <summary>The next run returns this exit (a guest shutdown, a crash), whatever the guest was doing.</summary>
    public void InjectExit(ExitReason reason, ulong detail = 0)
    {
        Volatile.Write(ref _pendingExit, (int)reason | (int)detail << 8);
        lock (_wake) Monitor.PulseAll(_wake);
    }

    public void Unstick()
    {
        Volatile.Write(ref _stuck, 0);
        lock (_wake) Monitor.PulseAll(_wake);
    }

    public void AttachThread() => Interlocked.Increment(ref AttachedThreads);
    public void DetachThread() => Interlocked.Increment(ref DetachedThreads);

    public bool Run(out VcpuExit exit)
    {
        long n = Interlocked.Increment(ref _runs);
        OnRun?.Invoke(n);
        while (Volatile.Read(ref _stuck) != 0)
            lock (_wake) if (Volatile.Read(ref _stuck) != 0) Monitor.Wait(_wake, 100);
        // An injected exit is one the guest was already making when any kick came: it wins over the kick.
        int pending = Interlocked.Exchange(ref _pendingExit, 0);
        if (pending != 0) { exit = VcpuExit.Other((ExitReason)(pending & 0xff), (ulong)(pending >> 8)); return true; }
        if (Volatile.Read(ref _kicked) != 0) { exit = default; return false; }
        if (Guest == FakeGuest.Busy)
        {
            Thread.SpinWait(SpinsPerExit);
            if (Volatile.Read(ref _kicked) != 0) { exit = default; return false; }
            _io[0] = (byte)n;
            exit = VcpuExit.Io(ProgressPort, isOut: true, 1, _io.AsSpan(0, 1));
            return true;
        }
        // Idle: nothing but a kick (or an injected exit) ends this run. The 1 s wait only lets a stuck test end.
        lock (_wake)
            while (Volatile.Read(ref _kicked) == 0 && Volatile.Read(ref _pendingExit) == 0) Monitor.Wait(_wake, 1000);
        exit = default;
        return false;
    }

    public void Kick()
    {
        Interlocked.Increment(ref _kicks);
        Volatile.Write(ref _kicked, 1);
        Interlocked.MemoryBarrier();
        lock (_wake) Monitor.PulseAll(_wake);
    }

    public void ClearKick()
    {
        Volatile.Write(ref _kicked, 0);
        Interlocked.MemoryBarrier();
    }

    public void OnPaused() => Interlocked.Increment(ref _paused);

    public string DescribeState() => "at rip=0xfake";
}

/// <summary>Counts the bytes written to its port: a fake guest's progress.</summary>
internal sealed class ProgressDevice : IBusDevice
{
    private long _writes;
    public long Writes => Interlocked.Read(ref _writes);
    public void Read(ulong offset, Span<byte> data) => data.Clear();
    public void Write(ulong offset, ReadOnlySpan<byte> data) => Interlocked.Increment(ref _writes);
}

/// <summary>Runners over fake vCPUs sharing one bus, VmExit and metrics, as the builder wires real ones.</summary>
internal sealed class FakeVm : IDisposable
{
    public readonly Bus Pio = new(), Mmio = new();
    public readonly VmExit Exit = new();
    public readonly VcpuMetrics Metrics = new();
    public readonly ProgressDevice Progress = new();
    public readonly List<FakeVcpu> Fakes = [];
    public readonly List<VcpuRunner> Runners = [];

    public FakeVm(params FakeGuest[] guests)
    {
        Pio.Insert(Progress, FakeVcpu.ProgressPort, 1);
        for (int i = 0; i < guests.Length; i++)
        {
            var f = new FakeVcpu((uint)i, guests[i]);
            Fakes.Add(f);
            Runners.Add(new VcpuRunner(f, new VcpuExitHandler((uint)i, Pio, Mmio, Exit, Metrics, f.DescribeState), Exit, Metrics));
        }
    }

    public void Dispose()
    {
        foreach (var f in Fakes) f.Unstick();
        foreach (var r in Runners) r.Stop();
        foreach (var r in Runners) r.Join(TimeSpan.FromSeconds(5));
        Exit.Dispose();
    }
}
