using Flint.Vmm.Snapshot;

namespace Flint.Vmm.Tests;

/// <summary>
/// The vCPU side of snapshots without KVM: a restored VM's vCPUs start parked and run no guest code until resumed;
/// state is saved on the parked vCPU's own thread (where its filter allows the GET ioctls), bounded, and refused on a
/// running vCPU; and the MSR list keeps the TSC first and the TSC deadline last.
/// </summary>
public sealed class SnapshotVcpuTests
{
    [Fact]
    public void Started_paused_vcpus_run_nothing_until_resumed()
    {
        using var vm = new FakeVm(FakeGuest.Busy, FakeGuest.Idle);
        var group = new VcpuGroup(vm.Runners);
        Bounded.Run(TimeSpan.FromSeconds(30), group.StartPaused, "start paused");
        Assert.True(group.IsPaused);
        Assert.All(vm.Runners, r => Assert.Equal(VcpuState.Paused, r.State));
        Thread.Sleep(50);
        Assert.Equal(0, vm.Progress.Writes);
        group.Resume();
        Assert.True(SpinWait.SpinUntil(() => vm.Progress.Writes > 10, 10_000), "no progress after resume");
    }

    [Fact]
    public void State_is_saved_on_the_parked_vcpu_thread_and_refused_on_a_running_one()
    {
        using var vm = new FakeVm(FakeGuest.Busy);
        var r = vm.Runners[0];
        r.Start();
        Assert.Throws<VcpuStateException>(() => r.RunWhileParked(() => { }, Deadline.After(TimeSpan.FromSeconds(5))));
        r.Pause();
        string? thread = null;
        r.RunWhileParked(() => thread = Thread.CurrentThread.Name, Deadline.After(TimeSpan.FromSeconds(5)));
        Assert.Equal("fc_vcpu 0", thread);
        // A failure on the vCPU thread comes back to the caller; the vCPU stays parked and resumes normally.
        var e = Assert.Throws<InvalidOperationException>(() => r.RunWhileParked(() => throw new InvalidOperationException("x"), Deadline.After(TimeSpan.FromSeconds(5))));
        Assert.Equal("x", e.Message);
        Assert.Equal(VcpuState.Paused, r.State);
        long before = vm.Progress.Writes;
        r.Resume();
        Assert.True(SpinWait.SpinUntil(() => vm.Progress.Writes > before + 10, 10_000));
    }

    [Fact]
    public void Msr_list_drops_undumpable_msrs_and_orders_tsc_first_and_deadline_last()
    {
        uint[] list = MsrsToSaveList.Filter([0x6e0, 0x174, 0xc1, 0x10, 0x4b564d01, 0x17b, 0x480, 0x40000001, 0xc0000080]);
        Assert.Equal([0x10u, 0x174, 0x4b564d01, 0xc0000080, 0x6e0], list);
        Assert.Contains(0x10u, MsrsToSaveList.Filter([]));   // the TSC even when KVM lists nothing
    }
}
