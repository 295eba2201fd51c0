using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// The ACPI tables and VMGenID/VMClock on real KVM with the real binary: the test guest (tg.tests=acpi, acpi.c) finds
/// the RSDP, walks the XSDT, checks every checksum, counts the MADT's CPUs and reads the VMGenID through the DSDT;
/// across a snapshot restore in a new process it sees a new generation ID and VMClock's generation counter go up.
/// </summary>
public sealed partial class AcpiKvmTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Repo.TempDir();
    private readonly List<Process> _procs = [];

    public void Dispose()
    {
        foreach (var p in _procs)
        {
            if (!p.HasExited) { p.Kill(true); p.WaitForExit(); }
            p.Dispose();
        }
        Directory.Delete(_dir, true);
    }

    [GeneratedRegex(@"vmgenid ([0-9a-f]{32})")]
    private static partial Regex VmGenIdLine();

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Test_guest_finds_and_checks_the_tables_and_reads_the_VMGenID()
    {
        KvmRequirement.Check();
        var (p, buf, sock) = StartFlint("boot");
        using (var s = Connect(sock))
        {
            Ok(s, "PUT", "/boot-source", $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"tg.tests=serial,acpi\"}}");
            Ok(s, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64}");
            Ok(s, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        }
        Assert.True(p.WaitForExit(180_000), "the guest did not finish:\n" + Text(buf));
        string o = Text(buf);
        output.WriteLine(o);
        foreach (var line in new[] { "PASS acpi-rsdp", "PASS acpi-xsdt", "PASS acpi-madt", "PASS acpi-dsdt", "PASS acpi-vmgenid", "PASS acpi\n",
                     "acpi table XSDT", "acpi table FACP", "acpi table APIC", "acpi table DSDT", "acpi madt cpus=2 ioapics=1", "acpi rsdp addr=0xe0000" })
            Assert.Contains(line, o);
        Assert.DoesNotContain("FAIL", o);
        Assert.Matches(VmGenIdLine(), o);
    }

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void VMGenID_and_VMClock_generation_change_across_a_snapshot_restore()
    {
        KvmRequirement.Check();
        string snap = Path.Combine(_dir, "vm.snap"), mem = Path.Combine(_dir, "vm.mem");
        var (p1, out1, sock1) = StartFlint("a");
        string before;
        using (var s = Connect(sock1))
        {
            Ok(s, "PUT", "/boot-source", $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"tg.tests=acpi tg.acpi.watch=600000\"}}");
            Ok(s, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}");
            Ok(s, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
            Assert.True(SpinWait.SpinUntil(() => Text(out1).Contains("acpi watching"), 120_000), "no 'acpi watching' line:\n" + Text(out1));
            Ok(s, "PATCH", "/vm", "{\"state\": \"Paused\"}");
            Ok(s, "PUT", "/snapshot/create", $"{{\"snapshot_type\": \"Full\", \"snapshot_path\": \"{snap}\", \"mem_file_path\": \"{mem}\"}}");
        }
        p1.Kill(true);
        p1.WaitForExit();
        before = Text(out1);
        string first = VmGenIdLine().Match(before).Groups[1].Value;
        Assert.Contains("vmclock gen=0 marker=0", before);

        var (_, out2, sock2) = StartFlint("b");
        using (var s = Connect(sock2))
        {
            Ok(s, "PUT", "/snapshot/load", $"{{\"snapshot_path\": \"{snap}\", \"mem_backend\": {{\"backend_type\": \"File\", \"backend_path\": \"{mem}\"}}}}");
            Ok(s, "PATCH", "/vm", "{\"state\": \"Resumed\"}");
        }
        bool changed = SpinWait.SpinUntil(() => VmGenIdLine().Matches(Text(out2)).Any(m => m.Groups[1].Value != first)
            && Text(out2).Contains("vmclock gen=1 marker=1"), 120_000);
        string after = Text(out2);
        output.WriteLine("--- before ---\n" + before + "\n--- after the restore ---\n" + after);
        Assert.True(changed, $"the restored guest did not see a new VMGenID (was {first}) and VMClock generation 1");
    }

    /// <summary>
    /// The devices kernel (guest/build-kernel.sh --variant devices; <see cref="DevicesKernel"/> says where) parses Flint's tables: the kernel's own ACPI lines name them.
    /// </summary>
    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Devices_kernel_reads_the_tables_and_finds_both_cpus()
    {
        KvmRequirement.Check();
        string vmlinux = DevicesKernel.Require();
        var cfg = Path.Combine(_dir, "config.json");
        File.WriteAllText(cfg, $$"""
            {"boot-source": {"kernel_image_path": "{{vmlinux}}", "boot_args": "console=ttyS0 reboot=k panic=1 root=/dev/vdz rootwait"},
             "drives": [], "machine-config": {"vcpu_count": 2, "mem_size_mib": 256} }
            """);
        var (seen, r) = Repo.RunFlintUntil(TimeSpan.FromSeconds(240), l => l.Contains("Waiting for root device"), "--no-api", "--config-file", cfg);
        output.WriteLine(r.All);
        Assert.True(seen, "the kernel did not reach 'Waiting for root device'");
        foreach (var line in new[] { "ACPI: RSDP 0x00000000000E0000 000024 (v02 FIRECK)", "ACPI: XSDT 0x", "ACPI: FACP 0x", "ACPI: DSDT 0x", "ACPI: APIC 0x",
                     "ACPI: Using ACPI (MADT) for SMP configuration information", "smp: Brought up 1 node, 2 CPUs" })
            Assert.Contains(line, r.Stdout);
        Assert.DoesNotContain("ACPI Error", r.Stdout);
    }

    private (Process, MemoryStream, string) StartFlint(string name)
    {
        string sock = Path.Combine(_dir, name + ".sock");
        var psi = new ProcessStartInfo(Repo.Flint) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[] { "--api-sock", sock, "--id", "acpi-" + name }) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        _procs.Add(p);
        p.StandardInput.Close();
        var buf = new MemoryStream();
        var copy = new Thread(() =>
        {
            var b = new byte[4096];
            int n;
            while ((n = p.StandardOutput.BaseStream.Read(b, 0, b.Length)) > 0) lock (buf) buf.Write(b, 0, n);
        })
        { IsBackground = true };
        copy.Start();
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) output.WriteLine("stderr: " + e.Data); };
        p.BeginErrorReadLine();
        Assert.True(SpinWait.SpinUntil(() => File.Exists(sock), 10_000), "API socket did not appear");
        return (p, buf, sock);
    }

    private static string Text(MemoryStream m)
    {
        lock (m) return Encoding.UTF8.GetString(m.GetBuffer(), 0, (int)m.Length);
    }

    private static Socket Connect(string sock)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 120_000, SendTimeout = 60_000 };
        s.Connect(new UnixDomainSocketEndPoint(sock));
        return s;
    }

    private static void Ok(Socket s, string method, string path, string body)
    {
        var (st, b) = ApiHttp.Request(s, method, path, body);
        Assert.True(st == 204, $"{method} {path}: {st} {b}");
    }
}
