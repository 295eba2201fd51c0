using Flint.Kvm;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// The vCPU runner's state machine (Running / Paused / Exited) over fake vCPUs: pause, resume and stop from
/// another thread, their races with the guest ending, and the bounded waits. No KVM needed.
/// </summary>
public sealed class VcpuStateMachineTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    [Fact]
    public void Ten_thousand_pause_resume_cycles_from_one_thread_while_vcpus_run()
    {
        using var vm = new FakeVm(FakeGuest.Busy, FakeGuest.Idle);
        foreach (var r in vm.Runners) r.Start();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Bounded.Run(Limit, () =>
        {
            for (int i = 0; i < 10_000; i++)
            {
                foreach (var r in vm.Runners) r.Pause();
                foreach (var r in vm.Runners) r.Resume();
            }
        }, "10,000 pause/resume cycles");
        output.WriteLine($"10,000 pause/resume cycles of 2 vCPUs: {sw.Elapsed.TotalMilliseconds:F0} ms");
        // Still alive: the busy guest keeps making progress after the last resume.
        long before = vm.Progress.Writes;
        Assert.True(SpinWait.SpinUntil(() => vm.Progress.Writes > before + 100, 10_000), "the guest made no progress after the last resume");
        Assert.False(vm.Exit.IsRequested);
    }
}
