using Flint.Devices.Tests.Virtio;
using System.Text;
using BenchmarkDotNet.Attributes;
using Flint.Api;
using Flint.Devices;
using Flint.Devices.Legacy;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Block;
using Flint.Memory;
using Flint.Vmm.Rpc;

namespace Flint.Bench.Micro;

/// <summary>The API server's hot path: HTTP head parsing, then routing + JSON binding of the body.</summary>
[MemoryDiagnoser]
public class ApiBenchmarks
{
    // What curl sends for `curl --unix-socket S -X PUT http://localhost/machine-config -H ... -d '{...}'`.
    private const string Body = "{\"vcpu_count\": 2, \"mem_size_mib\": 1024, \"smt\": false, \"track_dirty_pages\": false}";
    private readonly byte[] _putRequest = Encoding.ASCII.GetBytes(
        "PUT /machine-config HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\nAccept: application/json\r\n" +
        "Content-Type: application/json\r\nContent-Length: " + Body.Length + "\r\n\r\n" + Body);
    private readonly byte[] _getRequest = Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n");

    [Benchmark(Description = "HttpRequestParser.TryParse: PUT /machine-config head (6 headers)")]
    public long HttpParsePut()
    {
        HttpRequestParser.TryParse(_putRequest, HttpRequestParser.DefaultMaxHeadBytes, out var head, out _);
        return head.ContentLength;
    }

    [Benchmark(Description = "HttpRequestParser.TryParse: GET / head (3 headers)")]
    public int HttpParseGet()
    {
        HttpRequestParser.TryParse(_getRequest, HttpRequestParser.DefaultMaxHeadBytes, out var head, out _);
        return head.HeadLength;
    }

    [Benchmark(Description = "ApiRequestParser.Parse(PUT, /machine-config, body): routing + JSON binding")]
    public object? ParseMachineConfig() => ApiRequestParser.Parse("PUT", "/machine-config", Body).Action;

    [Benchmark(Description = "ApiRequestParser.Parse(GET, /): routing only")]
    public object? ParseGetRoot() => ApiRequestParser.Parse("GET", "/", null).Action;
}

/// <summary>The device model's hot paths: virtqueue, virtio-blk, PIO dispatch.</summary>
[MemoryDiagnoser]
public class DeviceBenchmarks
{
    private GuestMemory _mem = null!;
    private GuestDriver _blkDriver = null!;
    private VirtioBlock _blk = null!;
    private GuestMemory _amem = null!;
    private GuestDriver _ablkDriver = null!;
    private VirtioBlock _ablk = null!;
    private string _file = "";
    private GuestMemory _qmem = null!;
    private GuestDriver _qDriver = null!;
    private VirtQueue _queue = null!;
    private Bus _pio = null!;
    private readonly byte[] _thr = [(byte)'x'];

    [GlobalSetup]
    public void Setup()
    {
        // virtio-blk over a 256 KiB temp file (in the page cache after the first read), queue size 16.
        _file = Path.GetTempFileName();
        var content = new byte[512 * 512];
        new Random(1).NextBytes(content);
        File.WriteAllBytes(_file, content);
        _mem = GuestMemory.Create([(0UL, 0x100000UL)]);
        _blkDriver = new GuestDriver(_mem, 16);
        _blk = new VirtioBlock(_file, readOnly: false, serial: "bench");
        var q = new VirtQueue(VirtioBlock.QueueSize);
        _blkDriver.Configure(q);
        if (!_blk.Activate(_mem, [q], new VirtioInterrupt(new CountingInterrupt()), _blk.AvailableFeatures))
            throw new InvalidOperationException("virtio-blk did not activate");
        // One chain, reused: header (IN, sector 8) -> 4 KiB device-writable buffer -> status byte.
        ulong hdr = _blkDriver.Alloc(16), data = _blkDriver.Alloc(4096), st = _blkDriver.Alloc(1, 0xff);
        _mem.Write(hdr, VirtioBlockConstants.RequestIn);
        _mem.Write(hdr + 4, 0u);
        _mem.Write(hdr + 8, 8UL);
        _blkDriver.SetDesc(0, hdr, 16, Descriptor.FlagNext, 1);
        _blkDriver.SetDesc(1, data, 4096, Descriptor.FlagNext | Descriptor.FlagWrite, 2);
        _blkDriver.SetDesc(2, st, 1, Descriptor.FlagWrite, 0);

        // The same device and chain on io_engine Async (io_uring), in its own guest memory.
        _amem = GuestMemory.Create([(0UL, 0x100000UL)]);
        _ablkDriver = new GuestDriver(_amem, 16);
        _ablk = new VirtioBlock(_file, readOnly: false, serial: "bench", ioEngine: BlockIoEngine.Async);
        var aq = new VirtQueue(VirtioBlock.QueueSize);
        _ablkDriver.Configure(aq);
        if (!_ablk.Activate(_amem, [aq], new VirtioInterrupt(new CountingInterrupt()), _ablk.AvailableFeatures))
            throw new InvalidOperationException("virtio-blk (Async) did not activate");
        // 5 chains (descriptors 0-2, 3-5, ...): header (IN, sector 8 * i) -> 4 KiB -> status.
        for (ushort i = 0; i < 5; i++)
        {
            ulong ah = _ablkDriver.Alloc(16), ad = _ablkDriver.Alloc(4096), ast = _ablkDriver.Alloc(1, 0xff);
            _amem.Write(ah, VirtioBlockConstants.RequestIn);
            _amem.Write(ah + 8, 8UL * i);
            _ablkDriver.SetDesc((ushort)(3 * i), ah, 16, Descriptor.FlagNext, (ushort)(3 * i + 1));
            _ablkDriver.SetDesc((ushort)(3 * i + 1), ad, 4096, Descriptor.FlagNext | Descriptor.FlagWrite, (ushort)(3 * i + 2));
            _ablkDriver.SetDesc((ushort)(3 * i + 2), ast, 1, Descriptor.FlagWrite, 0);
        }

        // A bare queue (size 256) with a 2-descriptor chain, for pop/add-used alone.
        _qmem = GuestMemory.Create([(0UL, 0x100000UL)]);
        _qDriver = new GuestDriver(_qmem, 256);
        _queue = new VirtQueue(256);
        _qDriver.Configure(_queue);
        if (!_queue.Activate(_qmem)) throw new InvalidOperationException("queue did not activate");
        ulong b = _qDriver.Alloc(512);
        _qDriver.SetDesc(0, b, 256, Descriptor.FlagNext, 1);
        _qDriver.SetDesc(1, b + 256, 256, Descriptor.FlagWrite, 0);

        // The PIO bus as the VMM lays it out: i8042 at 0x60, serial at 0x3f8 (output discarded).
        _pio = new Bus();
        _pio.Insert(new I8042(new CountingInterrupt(), () => { }), 0x60, 5);
        _pio.Insert(new Serial(Stream.Null, new CountingInterrupt()), Serial.Com1Port, Serial.PortCount);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _blk.Dispose();
        _mem.Dispose();
        _ablk.Dispose();
        _amem.Dispose();
        _qmem.Dispose();
        File.Delete(_file);
    }

    [Benchmark(Description = "VirtioBlock.ProcessQueue: one 4 KiB read (publish + pop + pread + used + notify)")]
    public ushort VirtioBlkRead4K()
    {
        _blkDriver.Publish(0);
        _blk.ProcessQueue(0);
        return _blkDriver.UsedIdx;
    }

    [Benchmark(Description = "VirtioBlock Sync: five 4 KiB reads in one notification (the Async x5 case's baseline)")]
    public ushort VirtioBlkRead4Kx5()
    {
        for (int i = 0; i < 5; i++) _blkDriver.Publish(0);
        _blk.ProcessQueue(0);
        return _blkDriver.UsedIdx;
    }

    [Benchmark(Description = "VirtioBlock Async: one 4 KiB read (publish + pop + io_uring submit + reap + used + notify)")]
    public ushort VirtioBlkAsyncRead4K()
    {
        _ablkDriver.Publish(0);
        _ablk.ProcessQueue(0);
        _ablk.CompleteInFlight(TimeSpan.FromSeconds(5));
        return _ablkDriver.UsedIdx;
    }

    [Benchmark(Description = "VirtioBlock Async: five 4 KiB reads in one notification (queue depth 5)")]
    public ushort VirtioBlkAsyncRead4Kx5()
    {
        for (ushort i = 0; i < 5; i++) _ablkDriver.Publish((ushort)(3 * i));
        _ablk.ProcessQueue(0);
        _ablk.CompleteInFlight(TimeSpan.FromSeconds(5));
        return _ablkDriver.UsedIdx;
    }

    [Benchmark(Description = "VirtQueue: publish, TryPop, walk a 2-descriptor chain, AddUsed, NeedsNotification")]
    public bool VirtQueuePopAddUsed()
    {
        _qDriver.Publish(0);
        _queue.TryPop(out var chain);
        uint len = 0;
        while (chain.TryNext(out var d)) len += d.Len;
        _queue.AddUsed(chain.HeadIndex, len);
        return _queue.NeedsNotification();
    }

    [Benchmark(Description = "Bus.Write(0x3f8, 1 byte): PIO dispatch of a serial THR write to Serial")]
    public bool PioSerialThrWrite() => _pio.Write(Serial.Com1Port, _thr);
}
