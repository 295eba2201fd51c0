using System.Diagnostics;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.VhostUser;
using Flint.Memory;
using Flint.Sys;

namespace Flint.Devices.Tests.Virtio.VhostUser;

/// <summary>
/// The front-end against backends that misbehave: silent, hanging up mid-answer, answering the wrong request, claiming
/// absurd sizes, echoing the wrong config window. Each must end in a <see cref="VhostUserException"/> within the answer
/// timeout, never a hang, a crash or an allocation the backend chose; and a broken connection stays broken.
/// </summary>
public sealed class VhostUserHostileBackendTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(300);
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(3);

    private const ulong BackendFeatures = VirtioFeatures.Version1 | VhostUserRequest.ProtocolFeaturesBit;

    /// <summary>Creating the device must fail with <paramref name="expected"/> in its message, promptly.</summary>
    private static VhostUserException CreateFails(FakeVhostUserBackend backend, string expected)
    {
        var sw = Stopwatch.StartNew();
        var e = Assert.Throws<VhostUserException>(() => new VhostUserBlock(VhostUserFrontend.Connect(backend.SocketPath, Timeout), "vu0", false));
        Assert.True(sw.Elapsed < Prompt, $"took {sw.Elapsed}");
        Assert.Contains(expected, e.Message);
        return e;
    }

    /// <summary>Answers the build-time exchange correctly (features, protocol features, a 60-byte config).</summary>
    private static void Negotiate(FakeVhostUserBackend b)
    {
        Assert.True(b.ReadUntil(VhostUserRequest.GetFeatures));
        b.AnswerU64(VhostUserRequest.GetFeatures, BackendFeatures);
        Assert.True(b.ReadUntil(VhostUserRequest.GetProtocolFeatures));
        b.AnswerU64(VhostUserRequest.GetProtocolFeatures, VhostUserRequest.ProtocolFeatureConfig);
        Assert.True(b.ReadUntil(VhostUserRequest.GetConfig));
        var cfg = new byte[12 + 60];
        cfg[4] = 60;
        cfg[12] = 8; // capacity 8 sectors
        b.Answer(VhostUserRequest.GetConfig, 5, (uint)cfg.Length, cfg);
    }

    /// <summary>A backend that waits for GET_FEATURES, gives <paramref name="answer"/>, then holds the connection open.</summary>
    private static FakeVhostUserBackend AnswersGetFeatures(Action<FakeVhostUserBackend> answer) => new(b =>
    {
        b.ReadUntil(VhostUserRequest.GetFeatures);
        answer(b);
        b.Release.Wait(10_000);
    });

    /// <summary>What activating a device needs: 1 MiB of shared guest memory, its doorbells and a queue the driver set up.</summary>
    private sealed class ActivationRig : IDisposable
    {
        public readonly GuestMemory Memory = GuestMemory.CreateShared([(0UL, 0x100000UL)]);
        public readonly EventFd Kick = new();
        public readonly EventFd Call = new();
        public readonly VirtQueue Queue = new(VhostUserBlock.QueueSize);

        public ActivationRig(VhostUserBlock dev)
        {
            dev.UseDoorbells([Kick]);
            new GuestDriver(Memory, 16).Configure(Queue);
        }

        public bool Activate(VhostUserBlock dev) =>
            dev.Activate(Memory, [Queue], new VirtioInterrupt(new EventFdInterrupt(Call)), VirtioFeatures.Version1);

        public void Dispose()
        {
            Call.Dispose();
            Kick.Dispose();
            Memory.Dispose();
        }
    }

    [Fact]
    public void A_missing_socket_is_Firecrackers_connect_error()
    {
        var e = Assert.Throws<VhostUserException>(() => VhostUserFrontend.Connect("/nonexistent/flint-vu.sock"));
        Assert.Equal("Failed to connect to UDS Unix stream: No such file or directory (os error 2)", e.Message);
    }

    [Fact]
    public void A_silent_backend_times_out()
    {
        using var b = new FakeVhostUserBackend(b => { while (b.ReadMessage() != null) { } });
        CreateFails(b, "Get features failed: the backend did not answer in time");
    }

    [Fact]
    public void A_backend_that_hangs_up_mid_answer_is_a_closed_connection()
    {
        using var b = new FakeVhostUserBackend(b =>
        {
            b.ReadUntil(VhostUserRequest.GetFeatures);
            b.Answer(VhostUserRequest.GetFeatures, 5, 8, [1, 2, 3]); // 3 of the 8 bytes, then gone
            b.Close();
        });
        CreateFails(b, "Get features failed: the backend closed the connection");
    }

    [Fact]
    public void A_backend_that_closes_at_once_fails_creation()
    {
        using var b = new FakeVhostUserBackend(b => b.Close());
        var e = CreateFails(b, " failed: ");
        Assert.Matches("^(Set owner|Get features) failed: ", e.Message);
    }

    [Theory]
    [InlineData(4096u)]
    [InlineData(0xffff_ffffu)]
    [InlineData(4u)]
    public void An_answer_claiming_the_wrong_size_is_refused_before_anything_is_read_or_allocated(uint claimed)
    {
        using var b = AnswersGetFeatures(b => b.Answer(VhostUserRequest.GetFeatures, 5, claimed, new byte[8]));
        CreateFails(b, $"Get features failed: the answer claims {claimed} payload bytes, not 8");
    }

    [Fact]
    public void An_answer_to_another_request_is_refused()
    {
        using var b = AnswersGetFeatures(b => b.AnswerU64(VhostUserRequest.GetProtocolFeatures, ulong.MaxValue));
        CreateFails(b, "Get features failed: the backend answered request 15 instead");
    }

    [Theory]
    [InlineData(1u)]   // version 1, no reply flag
    [InlineData(6u)]   // reply flag, version 2
    [InlineData(0u)]
    public void An_answer_that_is_not_a_version_1_reply_is_refused(uint flags)
    {
        using var b = AnswersGetFeatures(b => b.Answer(VhostUserRequest.GetFeatures, flags, 8, new byte[8]));
        CreateFails(b, $"Get features failed: the answer's flags 0x{flags:x} are not a version 1 reply");
    }

    [Fact]
    public void A_config_answer_for_another_window_is_refused()
    {
        using var b = new FakeVhostUserBackend(b =>
        {
            b.ReadUntil(VhostUserRequest.GetFeatures);
            b.AnswerU64(VhostUserRequest.GetFeatures, BackendFeatures);
            b.ReadUntil(VhostUserRequest.GetProtocolFeatures);
            b.AnswerU64(VhostUserRequest.GetProtocolFeatures, VhostUserRequest.ProtocolFeatureConfig);
            b.ReadUntil(VhostUserRequest.GetConfig);
            var cfg = new byte[12 + 60];
            cfg[0] = 4;   // offset 4
            cfg[4] = 60;
            b.Answer(VhostUserRequest.GetConfig, 5, (uint)cfg.Length, cfg);
            b.Release.Wait(10_000);
        });
        CreateFails(b, "Get config failed: the backend answered for 60 bytes at offset 4, not 60 at 0");
    }

    [Fact]
    public void A_broken_connection_fails_every_later_request_at_once()
    {
        using var b = AnswersGetFeatures(b => b.Answer(VhostUserRequest.GetFeatures, 5, 999, []));
        using var f = VhostUserFrontend.Connect(b.SocketPath, Timeout);
        Assert.Throws<VhostUserException>(() => f.GetFeatures());
        Assert.False(f.IsConnected);
        var sw = Stopwatch.StartNew();
        var e = Assert.Throws<VhostUserException>(() => f.GetConfig(0, 60));
        Assert.True(sw.Elapsed < TimeSpan.FromMilliseconds(100));
        Assert.StartsWith("Get config failed: the connection broke earlier: the answer claims 999", e.Message);
        Assert.Throws<VhostUserException>(() => f.SetFeatures(1));
    }

    [Fact]
    public void Without_protocol_features_the_config_space_is_empty_as_in_Firecracker()
    {
        using var b = AnswersGetFeatures(b => b.AnswerU64(VhostUserRequest.GetFeatures, VirtioFeatures.Version1));
        using var dev = new VhostUserBlock(VhostUserFrontend.Connect(b.SocketPath, Timeout), "vu0", false);
        Assert.Empty(dev.ConfigSpace);
        Assert.Equal(VirtioFeatures.Version1, dev.AvailableFeatures);
        Span<byte> cap = stackalloc byte[8];
        dev.ReadConfig(0, cap);
        Assert.Equal(0UL, BitConverter.ToUInt64(cap));
    }

    [Fact]
    public void A_backend_gone_before_activation_fails_it_promptly_and_counts_it()
    {
        using var b = new FakeVhostUserBackend(b => { Negotiate(b); b.Close(); });
        using var dev = new VhostUserBlock(VhostUserFrontend.Connect(b.SocketPath, Timeout), "vu0", false);
        using var rig = new ActivationRig(dev);
        Thread.Sleep(100); // let the close land
        var sw = Stopwatch.StartNew();
        Assert.False(rig.Activate(dev));
        Assert.True(sw.Elapsed < Prompt);
        Assert.Equal(1, Interlocked.Read(ref dev.Metrics.ActivateFails));
        Assert.False(dev.IsActivated);
        Assert.False(rig.Queue.IsActivated);
    }

    [Fact]
    public void Activation_sends_Firecrackers_sequence_with_the_features_the_driver_acked_and_the_protocol_bit()
    {
        var seen = new List<(uint Request, byte[] Payload)>();
        using var done = new ManualResetEventSlim();
        using var b = new FakeVhostUserBackend(b =>
        {
            Negotiate(b);
            while (b.ReadMessage() is { } m)
            {
                lock (seen) seen.Add((m.Request, m.Payload));
                if (m.Request == VhostUserRequest.SetVringEnable) { done.Set(); break; }
            }
            b.Release.Wait(10_000);
        });
        using var dev = new VhostUserBlock(VhostUserFrontend.Connect(b.SocketPath, Timeout), "vu0", false);
        using var rig = new ActivationRig(dev);
        Assert.True(rig.Activate(dev));
        Assert.True(done.Wait(5000));
        lock (seen)
        {
            Assert.Equal(
                [VhostUserRequest.SetFeatures, VhostUserRequest.SetMemTable, VhostUserRequest.SetVringNum, VhostUserRequest.SetVringAddr,
                 VhostUserRequest.SetVringBase, VhostUserRequest.SetVringCall, VhostUserRequest.SetVringKick, VhostUserRequest.SetVringEnable],
                seen.Select(s => s.Request).ToArray());
            Assert.Equal(VirtioFeatures.Version1 | VhostUserRequest.ProtocolFeaturesBit, BitConverter.ToUInt64(seen[0].Payload));
            var table = seen[1].Payload;
            Assert.Equal(1u, BitConverter.ToUInt32(table));
            Assert.Equal(0UL, BitConverter.ToUInt64(table, 8));          // guest address
            Assert.Equal(0x100000UL, BitConverter.ToUInt64(table, 16));  // size
            Assert.Equal(16u, BitConverter.ToUInt32(seen[2].Payload, 4)); // the queue size the driver chose
            Assert.Equal(1u, BitConverter.ToUInt32(seen[7].Payload, 4));  // enabled
        }
    }
}
