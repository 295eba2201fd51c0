using System.Net;
using System.Runtime.InteropServices;
using Flint.Pool;
using Flint.PoolDaemon;

return await PoolDaemonMain.RunAsync(args);

namespace Flint.PoolDaemon
{
    /// <summary>flint-pool's command line: see <see cref="Usage"/> and docs/pool.md.</summary>
    public static class PoolDaemonMain
    {
        public const string Usage = """
            flint-pool: keeps warm flint microVMs per function and invokes them (docs/pool.md)

              --api-sock PATH         the API's Unix socket (required)
              --tcp ADDR:PORT         also serve the API on a loopback TCP address (127.0.0.1 or ::1 only)
              --pool-dir DIR          functions' files and slots' jails (default /srv/flint-pool)
              --jailer PATH           flint-jailer (default: next to flint-pool)
              --flint PATH            flint (default: next to flint-pool)
              --uid-base N            first slot uid/gid (default 20000); --uid-count N (default 10000)
              --cgroup-version 1|2    default: 2 where /sys/fs/cgroup is unified, else 1
              --no-cgroup-limits      no default memory/pids limits for functions that set no "cgroups"
              --no-seccomp            run without flint-pool's own seccomp filter (debugging only)
              --help
            """;

        public static async Task<int> RunAsync(string[] args)
        {
            string? apiSock = null, tcp = null, jailer = null, flint = null, poolDir = "/srv/flint-pool";
            uint uidBase = 20000, uidCount = 10000;
            int? cgroupVersion = null;
            bool limits = true, seccomp = true;
            for (int i = 0; i < args.Length; i++)
            {
                string a = args[i];
                string Next() => i + 1 < args.Length ? args[++i] : throw new UsageException($"{a} needs a value");
                try
                {
                    switch (a)
                    {
                        case "--api-sock": apiSock = Next(); break;
                        case "--tcp": tcp = Next(); break;
                        case "--pool-dir": poolDir = Path.GetFullPath(Next()); break;
                        case "--jailer": jailer = Path.GetFullPath(Next()); break;
                        case "--flint": flint = Path.GetFullPath(Next()); break;
                        case "--uid-base": uidBase = ParseUint(a, Next()); break;
                        case "--uid-count": uidCount = ParseUint(a, Next()); break;
                        case "--cgroup-version":
                            string v = Next();
                            cgroupVersion = v switch { "1" => 1, "2" => 2, _ => throw new UsageException("--cgroup-version is 1 or 2") };
                            break;
                        case "--no-cgroup-limits": limits = false; break;
                        case "--no-seccomp": seccomp = false; break;
                        case "--help": Console.WriteLine(Usage); return 0;
                        default: throw new UsageException($"unknown argument '{a}'");
                    }
                }
                catch (UsageException e)
                {
                    Console.Error.WriteLine($"flint-pool: {e.Message}\n\n{Usage}");
                    return 1;
                }
            }
            if (apiSock == null) { Console.Error.WriteLine($"flint-pool: --api-sock is required\n\n{Usage}"); return 1; }
            string here = AppContext.BaseDirectory;
            var options = new PoolOptions
            {
                PoolDir = poolDir!, JailerPath = jailer ?? Path.Combine(here, "flint-jailer"), FlintPath = flint ?? Path.Combine(here, "flint"),
                UidBase = uidBase, UidCount = uidCount, CgroupVersion = cgroupVersion, DefaultCgroupLimits = limits,
            };
            foreach (var f in new[] { options.JailerPath, options.FlintPath })
                if (!File.Exists(f)) { Console.Error.WriteLine($"flint-pool: {f} does not exist (give --jailer/--flint)"); return 1; }

            if (seccomp)
            {
                try { DaemonSeccomp.Install(); }
                catch (Exception e) when (e is InvalidOperationException or Flint.Sys.SysException)
                {
                    Console.Error.WriteLine($"flint-pool: cannot install its seccomp filter: {e.Message}");
                    return 1;
                }
            }
            Directory.CreateDirectory(options.PoolDir);
            await using var registry = new PoolRegistry(new JailedSlotLauncher(options), log: m => Console.Error.WriteLine("flint-pool: " + m));
            using var exporter = new PoolMetricsExporter();
            var api = new PoolApi(registry, exporter);
            await using var server = new HttpServer(api.HandleAsync);
            try
            {
                server.ListenUnix(apiSock);
                if (tcp != null)
                {
                    int colon = tcp.LastIndexOf(':');
                    if (colon < 0 || !IPAddress.TryParse(tcp[..colon].Trim('[', ']'), out var addr) || !int.TryParse(tcp[(colon + 1)..], out int port))
                        throw new UsageException($"--tcp '{tcp}' is not ADDR:PORT");
                    if (!IPAddress.IsLoopback(addr)) throw new UsageException($"--tcp {addr} is not a loopback address: the API has no authentication");
                    server.ListenLoopback(addr, port);
                }
            }
            catch (UsageException e) { Console.Error.WriteLine($"flint-pool: {e.Message}"); return 1; }
            catch (System.Net.Sockets.SocketException e)
            {
                Console.Error.WriteLine($"flint-pool: cannot listen on {apiSock}{(tcp != null ? " or " + tcp : "")}: {e.SocketErrorCode}");
                return 1;
            }
            Console.Error.WriteLine($"flint-pool: serving on {apiSock}{(tcp != null ? " and " + tcp : "")}; pool directory {options.PoolDir}");

            // SIGTERM/SIGINT: stop being ready, drain every function (no slot, jail or cgroup left), then exit 0.
            var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            void OnSignal(PosixSignalContext c) { c.Cancel = true; stop.TrySetResult(); }
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
            using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
            await stop.Task;
            Console.Error.WriteLine("flint-pool: stopping: draining every function");
            api.MarkStopping();
            await registry.DisposeAsync();
            try { File.Delete(apiSock); } catch (IOException) { }
            return 0;
        }

        private static uint ParseUint(string flag, string v) =>
            uint.TryParse(v, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out uint u)
                ? u : throw new UsageException($"{flag} '{v}' is not a number");

        private sealed class UsageException(string m) : Exception(m);
    }
}
