using System.Diagnostics;
using Flint.TestGuest;

namespace Flint.TestGuest.Tests;

public class TestGuestTests
{
    private const string Qemu = "/usr/bin/qemu-system-x86_64";

    [Fact]
    public void ELF_is_built_with_PVH_note_at_load_address()
    {
        Assert.True(File.Exists(TestGuestImage.Path), TestGuestImage.Path);
        Assert.Equal((uint)TestGuestImage.LoadAddress, TestGuestImage.ReadPvhEntry(TestGuestImage.Path));
        Assert.True(File.Exists(Path.Combine(TestGuestImage.RepoRoot, "Flint.sln")), TestGuestImage.RepoRoot);
        Assert.Equal(Path.Combine(TestGuestImage.RepoRoot, "artifacts", "guest"), TestGuestImage.GuestArtifactsDir);
    }

    [Fact]
    public void Disk_pattern_round_trips()
    {
        var path = Path.GetTempFileName();
        try
        {
            TestGuestImage.WriteDisk(path, 16);
            Assert.Equal(16 * 512, new FileInfo(path).Length);
            for (int s = 0; s < 16; s++)
            {
                var sec = TestGuestImage.ReadSector(path, s);
                Assert.True(TestGuestImage.SectorMatchesDiskPattern(sec, s));
                Assert.False(TestGuestImage.SectorMatchesWritePattern(sec, s));
            }
            var w = new byte[512];
            for (int j = 0; j < 512; j++) w[j] = (byte)((3 * 13 + j + 1) & 0xff);
            Assert.True(TestGuestImage.SectorMatchesWritePattern(w, 3));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Parses_serial_output()
    {
        var r = TestGuestImage.Parse("noise\r\nFLINT-TESTGUEST start\r\nPASS serial\nblk id=abc\nFAIL blk: x\nFLINT-TESTGUEST done pass=1 fail=1\n");
        Assert.True(r.Started && r.Done);
        Assert.Equal((1, 1), (r.Pass, r.Fail));
        Assert.False(r.Ok);
        Assert.Equal("abc", r.BlkId);
        Assert.True(r.Has(TestGuestImage.PassSerial));
        Assert.Single(r.Failures);
        Assert.Equal("FLINT-TESTGUEST done pass=9 fail=0", TestGuestImage.DoneLine(9, 0));
        Assert.Equal("tg.tests=serial,blk,pio tg.pio=5 tg.boottimer=0", TestGuestImage.Cmdline("serial,blk,pio", 5, bootTimer: false));
    }

    [Fact]
    public void Builds_cmdlines_for_the_device_tests()
    {
        Assert.Equal("tg.tests=rng,balloon tg.balloon.wait=2000 tg.balloon.strict=0 tg.boottimer=0",
            TestGuestImage.Build().Rng().Balloon(waitMs: 2000, strict: false).BootTimer(false).ToString());
        Assert.Equal("tg.tests=net tg.net.pingwait=5000 tg.net.pingcount=3 tg.mmds=1 tg.mmds.v2=1",
            TestGuestImage.Build().Net(pingWaitMs: 5000, pingCount: 3).Mmds(v2: true).ToString());
        Assert.Equal("tg.tests=serial,vsock tg.vsock.port=0 tg.vsock.listen=1234 tg.timeout=2000",
            TestGuestImage.Build().Tests(TestGuestImage.Serial).Vsock(port: 0, listen: 1234).Timeout(2000).ToString());
        Assert.Equal("tg.tests=pio tg.pio=7 virtio_mmio.device=4096@0xd0000000:5",
            TestGuestImage.Build().Pio(7).VirtioMmioDevice(4096, 0xd000_0000, 5).ToString());
        // the last value of an option wins (also in the guest)
        Assert.Equal("tg.timeout=2", TestGuestImage.Build().Timeout(1).Timeout(2).ToString());
        Assert.Equal("tg.tests=serial tg.agent=5005 tg.agent.handler=hang",
            TestGuestImage.Build().Tests(TestGuestImage.Serial).Option(TestGuestImage.OptAgent, 5005)
                .Option(TestGuestImage.OptAgentHandler, "hang").ToString());

        Assert.Equal(["PASS balloon-stats-posted", "PASS balloon-inflate", "PASS balloon-deflate", "PASS balloon-discarded"],
            TestGuestImage.BalloonPassLines(stats: true));
        Assert.Equal(["PASS balloon-inflate", "PASS balloon-deflate"], TestGuestImage.BalloonPassLines(stats: false, discarded: false));
        Assert.Equal(["PASS net-arp"], TestGuestImage.NetPassLines());
        Assert.Equal(["PASS net-arp", "PASS mmds-v1"], TestGuestImage.NetPassLines(mmds: true));
        Assert.Equal(["PASS net-arp", "PASS mmds-v2", "PASS mmds-v2-401"], TestGuestImage.NetPassLines(mmds: true, mmdsV2: true));
        Assert.Equal(["PASS vsock-connect", "PASS vsock-echo", "PASS vsock-accept"], TestGuestImage.VsockPassLines(accept: true));
        Assert.Equal(["PASS vsock-accept"], TestGuestImage.VsockPassLines(connect: false, accept: true));
        Assert.Equal("PASS net-ping-served 3", TestGuestImage.PassNetPingServed(3));
        Assert.Equal("vsock listening 1234", TestGuestImage.VsockListeningLine(1234));
    }

    [Fact]
    public void Parses_device_test_lines()
    {
        var r = TestGuestImage.Parse(string.Join("\n",
            "FLINT-TESTGUEST start", "net arp-reply 56:b4:89:c1:4e:d3", "PASS net-arp", "PASS net-ping-served 3",
            "mmds arp-reply 56:b4:89:c1:4e:d3", "mmds token 43 bytes", "mmds 200 ami-id", "PASS mmds-v2",
            "mmds 401 Unauthorized", "PASS mmds-v2-401", "vsock got ping", "vsock accept got hello world",
            "FLINT-TESTGUEST done pass=4 fail=0"));
        Assert.True(r.Ok);
        Assert.Equal("56:b4:89:c1:4e:d3", r.NetArpReplyMac);
        Assert.Equal(3, r.PingsServed);
        Assert.Equal([(200, "ami-id"), (401, "Unauthorized")], r.MmdsResponses);
        Assert.Equal("ping", r.VsockGot);
        Assert.Equal("hello world", r.VsockAcceptGot);
        Assert.Null(TestGuestImage.Parse("PASS net-arp").PingsServed);
    }

    private static (int Code, string Stdout, string All) RunScript(string script, string? only = null)
    {
        var psi = new ProcessStartInfo("bash", [script])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = TestGuestImage.SourceDir,
        };
        psi.Environment["QEMU"] = Qemu;
        if (only != null) psi.Environment["ONLY"] = only;
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{Path.GetFileName(script)} timed out\n" + stdout);
        }
        return (p.ExitCode, stdout, stdout + stderr.Result);
    }

    /// <summary>Boots the guest under QEMU TCG (rw and ro disk): proves it drives virtio-blk correctly.</summary>
    [SkippableFact]
    public void Runs_under_QEMU_TCG()
    {
        Skip.IfNot(File.Exists(Qemu), $"{Qemu} not installed");
        var (code, stdout, all) = RunScript(TestGuestImage.RunQemuScript);
        Assert.True(code == 0, $"run-qemu.sh exit {code}\n{all}");
        Assert.Contains("run-qemu: OK", stdout);
        var r = TestGuestImage.Parse(stdout);
        Assert.Equal("flint-tg", r.BlkId);
        foreach (var l in TestGuestImage.BlkRwPassLines.Concat(TestGuestImage.BlkRoPassLines))
            Assert.True(r.Has(l), $"missing '{l}'\n{all}");
        Assert.Contains(TestGuestImage.PioDoneLine(1000), r.Lines);
        Assert.Contains(TestGuestImage.DoneLine(10, 0), r.Lines);
        Assert.Contains(TestGuestImage.DoneLine(9, 0), r.Lines);
    }

    /// <summary>
    /// tg.agent= with no vsock device (QEMU has no Firecracker-style vsock): the agent cannot start, says so and the
    /// guest shuts down as usual instead of waiting forever. The agent itself runs under flint (AgentKvmTests) and as a
    /// host process (Flint.Agent.Tests).
    /// </summary>
    [SkippableFact]
    public void Agent_mode_without_vsock_fails_and_shuts_down()
    {
        Skip.IfNot(File.Exists(Qemu), $"{Qemu} not installed");
        var psi = new ProcessStartInfo(Qemu,
        [
            "-M", "microvm,x-option-roms=off,rtc=off,acpi=off", "-accel", "tcg", "-m", "64", "-display", "none",
            "-monitor", "none", "-nodefaults", "-no-reboot", "-kernel", TestGuestImage.Path, "-serial", "stdio",
            "-append", TestGuestImage.Build().Tests(TestGuestImage.Serial).BootTimer(false).Option(TestGuestImage.OptAgent, 5005).ToString(),
        ])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        bool exited = p.WaitForExit(TimeSpan.FromSeconds(60));
        if (!exited) p.Kill(entireProcessTree: true);
        p.WaitForExit();
        Assert.True(exited, "the guest kept running with tg.agent= and no vsock device\n" + stdout.Result);
        var r = TestGuestImage.Parse(stdout.Result);
        Assert.Contains(TestGuestImage.DoneLine(1, 0), r.Lines);
        Assert.Contains("FAIL agent: no virtio-vsock (id 19) among cmdline devices", r.Lines);
        Assert.DoesNotContain(r.Lines, l => l.StartsWith(TestGuestImage.AgentListeningPrefix, StringComparison.Ordinal));
    }

    /// <summary>virtio-rng and virtio-balloon (target set through QEMU's monitor) under QEMU TCG.</summary>
    [SkippableFact]
    public void Rng_and_balloon_run_under_QEMU_TCG()
    {
        Skip.IfNot(File.Exists(Qemu), $"{Qemu} not installed");
        var (code, stdout, all) = RunScript(TestGuestImage.RunQemuDevicesScript, "rng-balloon");
        Assert.True(code == 0, $"run-qemu-devices.sh (rng-balloon) exit {code}\n{all}");
        Assert.Contains("run-qemu-devices: OK", stdout);
        var r = TestGuestImage.Parse(stdout);
        Assert.True(r.Has(TestGuestImage.PassRng), all);
        foreach (var l in TestGuestImage.BalloonPassLines(stats: true))
            Assert.True(r.Has(l), $"missing '{l}'\n{all}");
        Assert.Contains(TestGuestImage.DoneLine(6, 0), r.Lines);
    }

    /// <summary>
    /// virtio-net on a tap in a network namespace under QEMU TCG: ARP with the kernel, ping
    /// from the namespace, the MMDS V1 and V2 client against mmds-mock.py. Needs root.
    /// </summary>
    [SkippableFact]
    public void Net_runs_under_QEMU_TCG()
    {
        Skip.IfNot(File.Exists(Qemu), $"{Qemu} not installed");
        var (code, stdout, all) = RunScript(TestGuestImage.RunQemuDevicesScript, "net mmds-v2");
        Assert.True(code == 0, $"run-qemu-devices.sh (net mmds-v2) exit {code}\n{all}");
        Assert.Contains("run-qemu-devices: OK", stdout);
        var r = TestGuestImage.Parse(stdout);
        foreach (var l in TestGuestImage.NetPassLines(mmds: true).Concat(TestGuestImage.NetPassLines(mmds: true, mmdsV2: true)))
            Assert.True(r.Has(l), $"missing '{l}'\n{all}");
        Assert.True(r.Has(TestGuestImage.PassNetPingServed(3)), all);
        Assert.Contains((200, "ami-id"), r.MmdsResponses);
        Assert.Contains((401, "Unauthorized"), r.MmdsResponses);
        Assert.Matches("^([0-9a-f]{2}:){5}[0-9a-f]{2}$", r.NetArpReplyMac);
    }
}
