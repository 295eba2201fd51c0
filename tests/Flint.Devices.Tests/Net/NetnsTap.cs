using System.Diagnostics;
using Flint.Devices.Virtio.Net;

namespace Flint.Devices.Tests.Net;

/// <summary>
/// A real TAP inside a network namespace this test creates and deletes: the tap is opened (created) in the root
/// namespace, then moved into the namespace, where it gets 172.16.0.1/30; the "guest" side is 172.16.0.2.
/// Nothing is routed anywhere else, so no traffic can leave the machine.
/// </summary>
public sealed class NetnsTap : IDisposable
{
    public const string HostIp = "172.16.0.1";
    public const string GuestIpText = "172.16.0.2";
    public const uint HostIpValue = 0xac100001;
    public const uint GuestIpValue = 0xac100002;

    public NetnsTap()
    {
        string id = Convert.ToHexString(BitConverter.GetBytes(Random.Shared.Next())).ToLowerInvariant()[..6];
        Ns = "flint-nettest-" + id;
        TapName = "fltap" + id;
        Run("ip", $"netns add {Ns}");
        try
        {
            Tap = Tap.Open(TapName);
            Run("ip", $"link set {TapName} netns {Ns}");
            Exec($"sysctl -qw net.ipv6.conf.all.disable_ipv6=1");
            Exec($"ip addr add {HostIp}/30 dev {TapName}");
            Exec($"ip link set {TapName} up");
        }
        catch
        {
            Tap?.Dispose();
            Run("ip", $"netns del {Ns}", check: false);
            throw;
        }
    }

    public string Ns { get; }
    public string TapName { get; }
    public Tap Tap { get; } = null!;

    public static string Run(string file, string args, bool check = true)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string o = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (check && p.ExitCode != 0) throw new InvalidOperationException($"{file} {args} failed ({p.ExitCode}): {o}");
        return o;
    }

    public string Exec(string cmd, bool check = true) => Run("ip", $"netns exec {Ns} {cmd}", check);

    /// <summary>
    /// One ICMP echo with a 3 s wait, exit 0 on a matching reply: `ping` itself when installed, else the same in
    /// python3 over a raw socket (this box has no ping binary).
    /// </summary>
    public static string PingCommand(string ip)
    {
        if (File.Exists("/usr/bin/ping") || File.Exists("/bin/ping")) return $"ping -c 1 -W 3 {ip}";
        const string py = "import socket,struct,sys,time\n"
            + "s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP);s.settimeout(3)\n"
            + "def cs(b):\n b+=b'\\0'*(len(b)%2);t=sum(struct.unpack('!%dH'%(len(b)//2),b));t=(t>>16)+(t&0xffff);t+=t>>16;return ~t&0xffff\n"
            + "p=struct.pack('!BBHHH',8,0,0,0x4242,1)+b'flint-ping';p=p[:2]+struct.pack('!H',cs(p))+p[4:]\n"
            + "s.sendto(p,(sys.argv[1],0));end=time.time()+3\n"
            + "while time.time()<end:\n d,a=s.recvfrom(2048);i=(d[0]&15)*4\n if d[i]==0 and d[i+4:i+6]==b'\\x42\\x42': sys.exit(0)\n"
            + "sys.exit(1)\n";
        File.WriteAllText("/tmp/flint-nettest-ping.py", py);
        return $"python3 /tmp/flint-nettest-ping.py {ip}";
    }

    /// <summary>Starts a command inside the namespace without waiting for it.</summary>
    public Process Start(string cmd) =>
        Process.Start(new ProcessStartInfo("ip", $"netns exec {Ns} {cmd}") { RedirectStandardOutput = true, RedirectStandardError = true })!;

    public void Dispose()
    {
        Tap.Dispose();
        Run("ip", $"netns del {Ns}", check: false);
    }
}
