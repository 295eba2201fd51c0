using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using Flint.Snapshot;
using Flint.Vmm.Config;
using Flint.Vmm.Snapshot;

namespace Flint.Vmm.Tests;

/// <summary>
/// PUT /snapshot/load with the Uffd backend through the real flint process (its seccomp filters on), no KVM needed:
/// Firecracker's fault messages when no handler is there (flint answers 400 and goes on serving), and the handshake
/// reaching the real flint-uffd-handler from a flint whose process baseline traps the userfaultfd syscall.
/// </summary>
public sealed class SnapshotUffdProcessTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();
    private readonly List<Process> _procs = [];

    public void Dispose()
    {
        foreach (var p in _procs)
        {
            if (!p.HasExited) { p.Kill(); p.WaitForExit(); }
            p.Dispose();
        }
        Directory.Delete(_dir, true);
    }

    private const string FromUffd = "Load snapshot error: Failed to restore from snapshot: Failed to load guest memory: Error creating guest memory from uffd: ";

    /// <summary>A state file whose config and memory sections are valid (64 MiB, one vCPU): the load gets as far as the memory backend.</summary>
    private string StateFile()
    {
        var f = new SnapshotFile();
        var w = new StateWriter();
        w.String("{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64}}");
        f.Add(SnapshotSections.Config, w);
        f.Add(SnapshotSections.Memory, SnapshotCreator.MemorySection(new VmConfig { MachineConfig = new MachineConfig { VcpuCount = 1, MemSizeMib = 64 } }));
        f.Add(SnapshotSections.Vcpu(0), new StateWriter());
        string path = Path.Combine(_dir, "vm.snap");
        File.WriteAllBytes(path, f.Serialize());
        return path;
    }

    private (Process, Socket) Flint()
    {
        string sock = Path.Combine(_dir, $"api{_procs.Count}.sock");
        var p = Repo.StartWithApi(sock);
        _procs.Add(p);
        Assert.True(File.Exists(sock), "flint's API socket did not appear:\n" + Repo.Output(p));
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 30_000, SendTimeout = 10_000 };
        s.Connect(new UnixDomainSocketEndPoint(sock));
        return (p, s);
    }

    private static string Load(string snap, string backendPath) =>
        $"{{\"snapshot_path\": \"{snap}\", \"mem_backend\": {{\"backend_type\": \"Uffd\", \"backend_path\": \"{backendPath}\"}}}}";

    private static string Fault((int Status, string Body) r)
    {
        Assert.Equal(400, r.Status);
        using var d = JsonDocument.Parse(r.Body);
        return d.RootElement.GetProperty("fault_message").GetString()!;
    }

    [Fact]
    public void No_handler_at_the_socket_path_answers_firecrackers_fault_and_flint_goes_on()
    {
        string snap = StateFile();
        var (p, s) = Flint();
        using (s)
        {
            Assert.Equal(FromUffd + "Failed to connect to UDS Unix stream: No such file or directory (os error 2)",
                Fault(ApiHttp.Request(s, "PUT", "/snapshot/load", Load(snap, Path.Combine(_dir, "absent.sock")))));
            File.WriteAllText(Path.Combine(_dir, "plain"), "");
            Assert.Equal(FromUffd + "Failed to connect to UDS Unix stream: Connection refused (os error 111)",
                Fault(ApiHttp.Request(s, "PUT", "/snapshot/load", Load(snap, Path.Combine(_dir, "plain")))));
            Assert.Equal(FromUffd + "Failed to connect to UDS Unix stream: path must be shorter than SUN_LEN",
                Fault(ApiHttp.Request(s, "PUT", "/snapshot/load", Load(snap, "/" + new string('u', 120)))));
            // Nothing was built: the VM is still not started, and a later load may still come.
            var (st, body) = ApiHttp.Request(s, "GET", "/");
            Assert.Equal(200, st);
            Assert.Contains("\"Not started\"", body);
        }
        Assert.False(p.HasExited, Repo.Output(p));
        // One flint fd count sample: the failed loads left no userfaultfd or socket open.
        Assert.DoesNotContain(Directory.GetFiles($"/proc/{p.Id}/fd"), f => (new FileInfo(f).LinkTarget ?? "").Contains("userfaultfd"));
    }

    [Fact]
    public void The_handshake_reaches_the_real_handler_from_flint_under_its_seccomp_filters()
    {
        string snap = StateFile(), mem = Path.Combine(_dir, "vm.mem"), uffdSock = Path.Combine(_dir, "uffd.sock");
        using (var f = File.Create(mem)) f.SetLength(64L << 20);
        using var h = new UffdHandlerRun(uffdSock, mem);
        var (p, s) = Flint();
        using (s)
        {
            var r = ApiHttp.Request(s, "PUT", "/snapshot/load", Load(snap, uffdSock));
            // Without KVM the build fails after the handshake (with KVM, the empty vCPU section does): a half-restored
            // process answers, then ends with exit code 1, as Firecracker's fatal_error. Never 148 (a trapped syscall).
            Assert.StartsWith("Load snapshot error: Failed to restore from snapshot: Failed to build microVM from snapshot: ", Fault(r));
        }
        Assert.True(p.WaitForExit(10_000), Repo.Output(p));
        Assert.Equal(1, p.ExitCode);
        var (code, output) = h.WaitExit();
        Assert.Equal(0, code);
        Assert.Contains($"serving 1 region(s), page size 4096, for pid {p.Id}", output);
        Assert.Equal(0, UffdHandlerRun.Served(output));
    }
}
