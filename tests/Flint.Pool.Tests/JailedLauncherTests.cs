using Flint.Pool;
using Flint.TestGuest;

namespace Flint.Pool.Tests;

/// <summary>
/// The real launcher (flint-jailer + flint from artifacts/bin) on a host without KVM: everything up to the boot
/// runs for real (jail, uid, cgroups, API configuration through Flint.Client), InstanceStart or the snapshot load
/// fails, and the launch must report flint's reason and leave no process, jail, cgroup or uid behind.
/// </summary>
public sealed class JailedLauncherTests : IDisposable
{
    private readonly string _dir = Path.Combine("/tmp", $"fpl-{Guid.NewGuid():N}"[..12]);
    // Unique per test: a jailed flint's command line is "/flint --id <slot id> ...", which names no host path.
    private readonly string _fn = "j" + Guid.NewGuid().ToString("N")[..8];

    public void Dispose()
    {
        foreach (int pid in Repo.ProcessesMentioning(_dir)) { try { System.Diagnostics.Process.GetProcessById(pid).Kill(); } catch (Exception) { } }
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private PoolOptions Options() => new()
    {
        PoolDir = _dir, JailerPath = Repo.Bin("flint-jailer"), FlintPath = Repo.Bin("flint"), UidBase = 41000, UidCount = 100,
    };

    private static void Require()
    {
        Skip.IfNot(Repo.IsRoot, "the jailer needs root");
        Skip.IfNot(File.Exists(Repo.Bin("flint-jailer")) && File.Exists(Repo.Bin("flint")), "artifacts/bin/flint(-jailer) missing: run scripts/setup.sh");
        Skip.If(File.Exists("/dev/kvm"), "this host has KVM: the boot would succeed; PoolKvmTests cover it");
    }

    private void AssertNothingLeft(PoolOptions o, string slotId, JailedSlotLauncher l)
    {
        Assert.Empty(Repo.ProcessesMentioning(_dir));
        Assert.Empty(Repo.ProcessesMentioning("--id " + slotId));
        Assert.False(Directory.Exists(new JailLayout(o, slotId).JailDir), "the slot's jail directory was left");
        Assert.Empty(SlotCleanup.CgroupDirs(o, slotId));
        Assert.Equal(0, l.Uids.InUse);
    }

    [SkippableFact]
    public async Task A_boot_that_fails_reports_flints_reason_and_leaves_nothing()
    {
        Require();
        var o = Options();
        var l = new JailedSlotLauncher(o);
        var spec = new FunctionSpec { Name = _fn, KernelPath = TestGuestImage.Path, BootArgs = "tg.agent=5005", MemSizeMib = 64 };
        await l.PrepareFunctionAsync(spec, default);
        Assert.True(File.Exists(Path.Combine(o.FunctionsDir, _fn, "vmlinux")));
        var e = await Assert.ThrowsAsync<PoolException>(() => l.LaunchAsync(spec, $"{_fn}-1", new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token));
        Assert.Equal(PoolErrorKind.LaunchFailed, e.Kind);
        Assert.Contains("PUT /actions", e.Message);
        Assert.Contains("/dev/kvm", e.Message);
        AssertNothingLeft(o, $"{_fn}-1", l);
        await l.ForgetFunctionAsync(spec);
        Assert.False(Directory.Exists(Path.Combine(o.FunctionsDir, _fn)));
    }

    [SkippableFact]
    public async Task A_snapshot_that_does_not_load_reports_flints_reason_and_leaves_nothing()
    {
        Require();
        var o = Options();
        var l = new JailedSlotLauncher(o);
        Directory.CreateDirectory(_dir);
        string state = Path.Combine(_dir, "bad.state"), mem = Path.Combine(_dir, "bad.mem");
        File.WriteAllBytes(state, new byte[100]);
        File.WriteAllBytes(mem, new byte[4096]);
        var spec = new FunctionSpec { Name = _fn, Snapshot = new SnapshotSource(state, mem) };
        await l.PrepareFunctionAsync(spec, default);
        var e = await Assert.ThrowsAsync<PoolException>(() => l.LaunchAsync(spec, $"{_fn}-1", new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token));
        Assert.Contains("PUT /snapshot/load", e.Message);
        Assert.Contains("Load snapshot error", e.Message);
        AssertNothingLeft(o, $"{_fn}-1", l);
    }

    [SkippableFact]
    public async Task A_pool_whose_slots_cannot_boot_answers_invocations_with_the_reason_and_drains_clean()
    {
        Require();
        var o = Options();
        var l = new JailedSlotLauncher(o);
        await using var reg = new PoolRegistry(l);
        var spec = new FunctionSpec { Name = _fn, KernelPath = TestGuestImage.Path, MinWarm = 1, MaxSlots = 2, MemSizeMib = 64 };
        var pool = await reg.RegisterAsync(spec);
        var e = await Assert.ThrowsAsync<PoolException>(() => pool.InvokeAsync("x"u8.ToArray()));
        Assert.Equal(PoolErrorKind.LaunchFailed, e.Kind);
        Assert.Contains("/dev/kvm", e.Message);
        await reg.DrainAsync(_fn);
        Assert.Empty(Repo.ProcessesMentioning(_dir));
        Assert.Empty(Repo.ProcessesMentioning("--id " + _fn));
        Assert.Empty(Directory.GetDirectories(Path.Combine(o.JailsDir, "flint")));
        Assert.Empty(Directory.GetDirectories(o.FunctionsDir));
        Assert.Equal(0, l.Uids.InUse);
    }
}
