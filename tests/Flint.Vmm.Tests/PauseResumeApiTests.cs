using System.Diagnostics;
using Flint.Vmm.Config;
using Flint.Vmm.Rpc;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// PATCH /vm through the API controller onto fake vCPUs (the real VcpuGroup and runners, no KVM): thousands of
/// cycles, then the API answers; a vCPU that does not answer gives a 400 with a clear fault message, not a hang.
/// </summary>
public sealed class PauseResumeApiTests(ITestOutputHelper output)
{
    /// <summary>The controller's view of a VM whose vCPUs are fakes; only pause and resume are real.</summary>
    private sealed class FakeRunningVm(VcpuGroup group) : IRunningVm
    {
        public bool IsPaused => group.IsPaused;
        public void Pause() => group.Pause();
        public void Resume() => group.Resume();
        public void SendCtrlAltDel() { }
        public void PatchDrive(string driveId, string pathOnHost) { }
        public void PatchDriveRateLimiter(string driveId, System.Text.Json.JsonElement rateLimiter) { }
        public void PatchNetwork(string ifaceId, System.Text.Json.JsonElement? rx, System.Text.Json.JsonElement? tx) { }
        public string GetBalloonJson() => throw new InvalidOperationException("no balloon");
        public string GetBalloonStatsJson() => throw new InvalidOperationException("no balloon");
        public void PatchBalloon(uint amountMib) { }
        public void PatchBalloonStatsInterval(uint intervalS) { }
    }

    private static VmmController Controller(VcpuGroup group)
    {
        var c = new VmmController(_ => throw new InvalidOperationException("not used"));
        c.AttachRunning(new VmConfig { MachineConfig = new MachineConfig() }, new FakeRunningVm(group));
        return c;
    }

    [Fact]
    public void Thousands_of_patch_vm_cycles_then_the_api_still_answers()
    {
        using var vm = new FakeVm(FakeGuest.Busy, FakeGuest.Idle);
        foreach (var r in vm.Runners) r.Start();
        var c = Controller(new VcpuGroup(vm.Runners));
        var sw = Stopwatch.StartNew();
        Bounded.Run(TimeSpan.FromSeconds(60), () =>
        {
            for (int i = 0; i < 5_000; i++)
            {
                Assert.Equal(204, c.Handle("PATCH", "/vm", "{\"state\": \"Paused\"}").Status);
                Assert.Equal(204, c.Handle("PATCH", "/vm", "{\"state\": \"Resumed\"}").Status);
            }
        }, "5,000 PATCH /vm cycles");
        output.WriteLine($"5,000 PATCH /vm cycles: {sw.Elapsed.TotalMilliseconds:F0} ms");
        var info = c.Handle("GET", "/", null);
        Assert.Equal(200, info.Status);
        Assert.Contains("\"Running\"", info.Body);
        long before = vm.Progress.Writes;
        Assert.True(SpinWait.SpinUntil(() => vm.Progress.Writes > before + 100, 10_000), "no guest progress after the cycles");
    }

    [Fact]
    public void A_vcpu_that_does_not_answer_gives_a_400_with_a_clear_message_and_the_vm_keeps_running()
    {
        using var vm = new FakeVm(FakeGuest.Busy, FakeGuest.Stuck);
        foreach (var r in vm.Runners) r.Start();
        var c = Controller(new VcpuGroup(vm.Runners) { AckTimeout = TimeSpan.FromMilliseconds(250) });
        var r400 = c.Handle("PATCH", "/vm", "{\"state\": \"Paused\"}");
        Assert.Equal(400, r400.Status);
        Assert.Contains("\"fault_message\"", r400.Body);
        Assert.Contains("Failed to pause the microVM: vCPU 1 did not pause within 0.25 s (state Running)", r400.Body);
        Assert.Contains("\"Running\"", c.Handle("GET", "/", null).Body);
        vm.Fakes[1].Unstick();
        Assert.Equal(204, c.Handle("PATCH", "/vm", "{\"state\": \"Paused\"}").Status);
        Assert.Contains("\"Paused\"", c.Handle("GET", "/", null).Body);
    }
}
