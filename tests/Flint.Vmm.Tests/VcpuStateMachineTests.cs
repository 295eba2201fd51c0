using System.Diagnostics;
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

    private static void StartAll(FakeVm vm)
    {
        foreach (var r in vm.Runners) r.Start();
    }

    [Fact]
    public void Ten_thousand_pause_resume_cycles_from_one_thread_while_vcpus_run()
    {
        using var vm = new FakeVm(FakeGuest.Busy, FakeGuest.Idle);
        StartAll(vm);
        var sw = Stopwatch.StartNew();
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

    [Fact]
    public void Group_pause_resume_cycles_park_every_vcpu_and_the_guest_makes_no_progress_while_paused()
    {
        using var vm = new FakeVm(FakeGuest.Busy, FakeGuest.Idle, FakeGuest.Busy);
        StartAll(vm);
        var group = new VcpuGroup(vm.Runners);
        Bounded.Run(Limit, () =>
        {
            for (int i = 0; i < 2_000; i++)
            {
                group.Pause();
                Assert.True(group.IsPaused);
                if (i % 200 == 0)
                {
                    Assert.All(vm.Runners, r => Assert.Equal(VcpuState.Paused, r.State));
                    long atPause = vm.Progress.Writes;
                    Thread.Sleep(20);
                    Assert.Equal(atPause, vm.Progress.Writes);
                }
                group.Resume();
                Assert.False(group.IsPaused);
            }
        }, "2,000 group pause/resume cycles");
        long before = vm.Progress.Writes;
        Assert.True(SpinWait.SpinUntil(() => vm.Progress.Writes > before + 100, 10_000), "no progress after the last resume");
        // KVM_KVMCLOCK_CTRL once per pause, on every vCPU, idle or busy.
        Assert.All(vm.Fakes, f => Assert.Equal(2_000, f.PausedCount));
    }

    [Fact]
    public void Pause_and_resume_are_idempotent()
    {
        using var vm = new FakeVm(FakeGuest.Busy);
        StartAll(vm);
        var r = vm.Runners[0];
        Bounded.Run(Limit, () =>
        {
            r.Pause();
            r.Pause();
            Assert.Equal(VcpuState.Paused, r.State);
            r.Resume();
            r.Resume();
            Assert.Equal(VcpuState.Running, r.State);
        }, "repeated pause and resume");
    }

    [Fact]
    public void A_halted_guest_is_paused_by_the_kick_alone()
    {
        using var vm = new FakeVm(FakeGuest.Idle);
        StartAll(vm);
        var r = vm.Runners[0];
        r.AckTimeout = TimeSpan.FromSeconds(5);
        var sw = Stopwatch.StartNew();
        r.Pause();
        Assert.Equal(VcpuState.Paused, r.State);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5));
        Assert.True(vm.Fakes[0].Kicks >= 1);
        r.Resume();
        Assert.Equal(VcpuState.Running, r.State);
    }

    [Fact]
    public void A_vcpu_that_never_leaves_its_run_fails_the_pause_with_a_clear_error_in_bounded_time()
    {
        using var vm = new FakeVm(FakeGuest.Busy, FakeGuest.Stuck);
        StartAll(vm);
        var group = new VcpuGroup(vm.Runners) { AckTimeout = TimeSpan.FromMilliseconds(300) };
        var sw = Stopwatch.StartNew();
        var e = Assert.Throws<VcpuStateException>(group.Pause);
        output.WriteLine($"{e.Message} (after {sw.Elapsed.TotalMilliseconds:F0} ms)");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"took {sw.Elapsed}");
        Assert.Equal("vCPU 1 did not pause within 0.3 s (state Running)", e.Message);
        // A failed pause leaves a running VM, not a half-paused one.
        Assert.False(group.IsPaused);
        long before = vm.Progress.Writes;
        Assert.True(SpinWait.SpinUntil(() => vm.Progress.Writes > before + 100, 10_000), "vCPU 0 stayed parked after the failed pause");
        // Once the stuck vCPU comes back, pausing works again.
        vm.Fakes[1].Unstick();
        group.AckTimeout = TimeSpan.FromSeconds(30);
        Bounded.Run(Limit, () => { group.Pause(); group.Resume(); }, "pause after the vCPU came back");
    }

    [Fact]
    public void A_start_that_never_answers_fails_in_bounded_time()
    {
        using var vm = new FakeVm(FakeGuest.Busy);
        var r = vm.Runners[0];
        r.AckTimeout = TimeSpan.FromMilliseconds(200);
        using var release = new ManualResetEventSlim();
        r.BeforeRun = () => release.Wait(TimeSpan.FromSeconds(10));
        var sw = Stopwatch.StartNew();
        var e = Assert.Throws<VcpuStateException>(r.Start);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"took {sw.Elapsed}");
        Assert.Equal("vCPU 0 did not start within 0.2 s", e.Message);
        release.Set();
        Assert.True(SpinWait.SpinUntil(() => r.State == VcpuState.Running, 5_000));
    }

    [Fact]
    public void A_stop_of_a_vcpu_stuck_in_its_run_gives_up_in_bounded_time()
    {
        using var vm = new FakeVm(FakeGuest.Stuck);
        StartAll(vm);
        var sw = Stopwatch.StartNew();
        Assert.False(new VcpuGroup(vm.Runners).Stop(TimeSpan.FromMilliseconds(200)));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"took {sw.Elapsed}");
        vm.Fakes[0].Unstick();
        Assert.True(vm.Runners[0].Join(TimeSpan.FromSeconds(10)));
        Assert.Equal(VcpuState.Exited, vm.Runners[0].State);
    }

    [Fact]
    public void Stop_while_paused_ends_the_thread_and_later_requests_fail_clearly()
    {
        using var vm = new FakeVm(FakeGuest.Busy);
        StartAll(vm);
        var r = vm.Runners[0];
        r.Pause();
        r.Stop();
        Assert.True(r.Join(TimeSpan.FromSeconds(10)), "a paused vCPU did not leave on stop");
        Assert.Equal(VcpuState.Exited, r.State);
        Assert.Equal("cannot pause vCPU 0: it has exited", Assert.Throws<VcpuStateException>(r.Pause).Message);
        Assert.Equal("cannot resume vCPU 0: it has exited", Assert.Throws<VcpuStateException>(r.Resume).Message);
        r.Stop();   // again: a no-op
        Assert.Equal(1, vm.Fakes[0].AttachedThreads);
        Assert.Equal(1, vm.Fakes[0].DetachedThreads);
    }

    [Fact]
    public void Stop_while_running_and_while_halted_ends_the_threads()
    {
        using var vm = new FakeVm(FakeGuest.Busy, FakeGuest.Idle);
        StartAll(vm);
        Assert.True(new VcpuGroup(vm.Runners).Stop(TimeSpan.FromSeconds(10)));
        Assert.All(vm.Runners, r => Assert.Equal(VcpuState.Exited, r.State));
    }

    [Fact]
    public void Pause_before_start_is_refused()
    {
        using var vm = new FakeVm(FakeGuest.Busy);
        Assert.Equal("cannot pause vCPU 0: it has not been started", Assert.Throws<VcpuStateException>(vm.Runners[0].Pause).Message);
        Assert.Equal(VcpuState.NotStarted, vm.Runners[0].State);
        vm.Runners[0].Start();
        Assert.Throws<InvalidOperationException>(vm.Runners[0].Start);
    }

    [Fact]
    public void Guest_exit_while_a_pause_waits_ends_the_wait_at_once_with_a_clear_error()
    {
        using var vm = new FakeVm(FakeGuest.Stuck);
        StartAll(vm);
        var r = vm.Runners[0];
        r.AckTimeout = TimeSpan.FromSeconds(30);
        VcpuStateException? error = null;
        var sw = Stopwatch.StartNew();
        var pauser = new Thread(() => { try { r.Pause(); } catch (VcpuStateException e) { error = e; } });
        pauser.Start();
        Thread.Sleep(50);
        vm.Fakes[0].InjectExit(ExitReason.SystemEvent, (ulong)SystemEventType.Shutdown);
        vm.Fakes[0].Unstick();
        Assert.True(pauser.Join(TimeSpan.FromSeconds(10)), "the pause kept waiting on an exited vCPU");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10));
        Assert.Equal("vCPU 0 exited before it could pause", error?.Message);
        Assert.Equal(VcpuState.Exited, r.State);
        Assert.Equal(ExitCodes.Ok, vm.Exit.ExitCode);
        Assert.Contains("system event Shutdown", vm.Exit.Reason);
    }

    [Fact]
    public void Guest_shutdown_racing_pause_resume_never_hangs()
    {
        var rnd = new Random(1234);
        int pausedFirst = 0, exitedFirst = 0;
        Bounded.Run(Limit, () =>
        {
            for (int round = 0; round < 200; round++)
            {
                using var vm = new FakeVm(FakeGuest.Busy, round % 2 == 0 ? FakeGuest.Idle : FakeGuest.Busy);
                StartAll(vm);
                var group = new VcpuGroup(vm.Runners) { AckTimeout = TimeSpan.FromSeconds(10) };
                int delayUs = rnd.Next(0, 2000);
                var killer = new Thread(() =>
                {
                    var t = Stopwatch.StartNew();
                    while (t.Elapsed.TotalMicroseconds < delayUs) Thread.SpinWait(10);
                    vm.Fakes[0].InjectExit(ExitReason.SystemEvent, (ulong)SystemEventType.Shutdown);
                });
                killer.Start();
                bool failed = false;
                for (int i = 0; i < 50 && !failed; i++)
                {
                    try
                    {
                        group.Pause();
                        group.Resume();
                    }
                    catch (VcpuStateException e)
                    {
                        // vCPU 0 took the shutdown; a busy vCPU 1 leaves at its next exit once the VM is ending.
                        Assert.Matches(@"^(vCPU [01] exited before it could (pause|resume)|cannot (pause|resume) vCPU [01]: it has exited)$", e.Message);
                        failed = true;
                    }
                }
                killer.Join();
                if (failed) exitedFirst++; else pausedFirst++;
                // The injected exit is taken by the next run: resumed, vCPU 0 ends; the group's stop ends the rest.
                Assert.True(SpinWait.SpinUntil(() => vm.Runners[0].State == VcpuState.Exited, 10_000), "vCPU 0 never exited");
                Assert.True(vm.Exit.IsRequested);
                Assert.True(group.Stop(TimeSpan.FromSeconds(10)));
            }
        }, "pause/resume racing a guest shutdown");
        output.WriteLine($"rounds where the exit hit a pause or resume: {exitedFirst}; where it came after: {pausedFirst}");
    }

    [Fact]
    public void A_failing_vcpu_ends_the_vm_with_a_generic_error_and_refuses_pause()
    {
        using var vm = new FakeVm(FakeGuest.Busy);
        vm.Fakes[0].OnRun = n => { if (n == 10) throw new InvalidOperationException("KVM_EXIT_IO outside the kvm_run page"); };
        StartAll(vm);
        Assert.True(SpinWait.SpinUntil(() => vm.Runners[0].State == VcpuState.Exited, 10_000));
        Assert.Equal(ExitCodes.GenericError, vm.Exit.ExitCode);
        Assert.Equal("vCPU 0 failed: KVM_EXIT_IO outside the kvm_run page", vm.Exit.Reason);
        Assert.Equal(1, vm.Metrics.Failures);
        Assert.Throws<VcpuStateException>(vm.Runners[0].Pause);
    }

    [Fact]
    public void A_failing_seccomp_install_ends_the_vcpu_and_start_returns()
    {
        using var vm = new FakeVm(FakeGuest.Busy);
        vm.Runners[0].BeforeRun = () => throw new InvalidOperationException("seccomp refused");
        Bounded.Run(TimeSpan.FromSeconds(10), vm.Runners[0].Start, "start with a failing BeforeRun");
        Assert.True(SpinWait.SpinUntil(() => vm.Runners[0].State == VcpuState.Exited, 5_000));
        Assert.Equal("vCPU 0 failed: seccomp refused", vm.Exit.Reason);
        Assert.Equal(0, vm.Fakes[0].Runs);
    }

    [Fact]
    public void The_run_loop_allocates_nothing_per_exit()
    {
        using var vm = new FakeVm(FakeGuest.Busy);
        var f = vm.Fakes[0];
        f.SpinsPerExit = 1;
        long first = -1, last = -1;
        const long from = 1_000, to = 101_000;
        f.OnRun = n =>
        {
            if (n == from) first = GC.GetAllocatedBytesForCurrentThread();
            else if (n == to) Volatile.Write(ref last, GC.GetAllocatedBytesForCurrentThread());
        };
        StartAll(vm);
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref last) >= 0, 30_000), "the fake vCPU did not reach 101,000 runs");
        Assert.Equal(0, last - first);
        Assert.True(vm.Metrics.ExitIoOut >= to - 1);
    }
}
