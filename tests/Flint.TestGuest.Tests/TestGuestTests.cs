using System.Diagnostics;
using Flint.TestGuest;

namespace Flint.TestGuest.Tests;

public class TestGuestTests
{
    private const string Qemu = "/usr/bin/qemu-system-x86_64";

    [Fact]
    public void ElfIsBuiltWithPvhNoteAtLoadAddress()
    {
        Assert.True(File.Exists(TestGuestImage.Path), TestGuestImage.Path);
        Assert.Equal((uint)TestGuestImage.LoadAddress, TestGuestImage.ReadPvhEntry(TestGuestImage.Path));
        Assert.True(File.Exists(Path.Combine(TestGuestImage.RepoRoot, "Flint.sln")), TestGuestImage.RepoRoot);
        Assert.Equal(Path.Combine(TestGuestImage.RepoRoot, "artifacts", "guest"), TestGuestImage.GuestArtifactsDir);
    }

    [Fact]
    public void DiskPatternRoundTrips()
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
    public void ParsesSerialOutput()
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

    /// <summary>Boots the guest under QEMU TCG (rw and ro disk): proves it drives virtio-blk correctly.</summary>
    [SkippableFact]
    public void RunsUnderQemuTcg()
    {
        Skip.IfNot(File.Exists(Qemu), $"{Qemu} not installed");
        var psi = new ProcessStartInfo("bash", [TestGuestImage.RunQemuScript])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = TestGuestImage.SourceDir,
        };
        psi.Environment["QEMU"] = Qemu;
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail("run-qemu.sh timed out\n" + stdout);
        }
        var all = stdout + stderr.Result;
        Assert.True(p.ExitCode == 0, $"run-qemu.sh exit {p.ExitCode}\n{all}");
        Assert.Contains("run-qemu: OK", stdout);
        var r = TestGuestImage.Parse(stdout);
        Assert.Equal("flint-tg", r.BlkId);
        foreach (var l in TestGuestImage.BlkRwPassLines.Concat(TestGuestImage.BlkRoPassLines))
            Assert.True(r.Has(l), $"missing '{l}'\n{all}");
        Assert.Contains(TestGuestImage.PioDoneLine(1000), r.Lines);
        Assert.Contains(TestGuestImage.DoneLine(10, 0), r.Lines);
        Assert.Contains(TestGuestImage.DoneLine(9, 0), r.Lines);
    }
}
