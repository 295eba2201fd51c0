using Flint.Devices;
using Flint.Kvm;

namespace Flint.Vmm.Tests;

/// <summary>The vCPU exit handling as a function: a decoded exit in, an action (and bus traffic, VM end) out.</summary>
public sealed class VcpuExitHandlerTests : IDisposable
{
    private readonly Bus _pio = new(), _mmio = new();
    private readonly VmExit _exit = new();
    private readonly VcpuMetrics _metrics = new();
    private readonly RecordingDevice _dev = new();
    private readonly VcpuExitHandler _handler;

    public VcpuExitHandlerTests()
    {
        _pio.Insert(_dev, 0x3f8, 8);
        _mmio.Insert(_dev, 0xd000_0000, 0x1000);
        _handler = new VcpuExitHandler(2, _pio, _mmio, _exit, _metrics, () => "at rip=0x1234");
    }

    public void Dispose() => _exit.Dispose();

    private sealed class RecordingDevice : IBusDevice
    {
        public readonly List<(ulong Offset, byte[] Data)> Writes = [];
        public readonly List<ulong> Reads = [];
        public byte Fill = 0x5a;
        public void Read(ulong offset, Span<byte> data) { Reads.Add(offset); data.Fill(Fill++); }
        public void Write(ulong offset, ReadOnlySpan<byte> data) => Writes.Add((offset, data.ToArray()));
    }

    private IEnumerable<string> Written() => _dev.Writes.Select(w => $"{w.Offset}:{Convert.ToHexString(w.Data)}");

    [Fact]
    public void Rep_outs_writes_each_element_to_the_port()
    {
        var data = new byte[] { 1, 2, 3, 4, 5, 6 };
        Assert.Equal(VcpuExitAction.Continue, _handler.Handle(VcpuExit.Io(0x3f9, isOut: true, 2, data)));
        Assert.Equal(["1:0102", "1:0304", "1:0506"], Written());
        Assert.Equal(1, _metrics.ExitIoOut);
    }

    [Fact]
    public void Io_in_fills_the_exit_data_in_place()
    {
        var data = new byte[2];
        Assert.Equal(VcpuExitAction.Continue, _handler.Handle(VcpuExit.Io(0x3fd, isOut: false, 1, data)));
        Assert.Equal(new byte[] { 0x5a, 0x5b }, data);
        Assert.Equal(1, _metrics.ExitIoIn);
    }

    [Fact]
    public void Unclaimed_port_is_ignored_and_the_vcpu_continues()
    {
        var data = new byte[] { 0xff };
        Assert.Equal(VcpuExitAction.Continue, _handler.Handle(VcpuExit.Io(0x80, isOut: true, 1, data)));
        Assert.Empty(_dev.Writes);
    }

    [Fact]
    public void Mmio_read_and_write_reach_the_device_at_its_offset()
    {
        var w = new byte[] { 9, 8, 7, 6 };
        Assert.Equal(VcpuExitAction.Continue, _handler.Handle(VcpuExit.Mmio(0xd000_0070, isWrite: true, w)));
        Assert.Equal(["112:09080706"], Written());
        var r = new byte[4];
        Assert.Equal(VcpuExitAction.Continue, _handler.Handle(VcpuExit.Mmio(0xd000_0000, isWrite: false, r)));
        Assert.Equal([0ul], _dev.Reads);
        Assert.Equal(new byte[] { 0x5a, 0x5a, 0x5a, 0x5a }, r);
        Assert.Equal(1, _metrics.ExitMmioRead);
        Assert.Equal(1, _metrics.ExitMmioWrite);
    }

    [Fact]
    public void Io_that_ends_the_vm_stops_the_vcpu()
    {
        _exit.Request(ExitCodes.Ok, "i8042 reset");   // what a device does on the guest's reset write
        Assert.Equal(VcpuExitAction.Stop, _handler.Handle(VcpuExit.Io(0x3f8, isOut: true, 1, new byte[1])));
        Assert.Equal(VcpuExitAction.Stop, _handler.Handle(VcpuExit.Mmio(0xd000_0000, isWrite: false, new byte[4])));
    }

    [Fact]
    public void An_intr_exit_continues() =>
        Assert.Equal(VcpuExitAction.Continue, _handler.Handle(VcpuExit.Other(ExitReason.Intr)));

    [Fact]
    public void Hlt_ends_the_vm_with_success()
    {
        Assert.Equal(VcpuExitAction.Stop, _handler.Handle(VcpuExit.Other(ExitReason.Hlt)));
        Assert.Equal(ExitCodes.Ok, _exit.ExitCode);
        Assert.Equal("vCPU 2 halted", _exit.Reason);
    }

    [Fact]
    public void Triple_fault_ends_the_vm_with_success_and_logs_where_the_cpu_was()
    {
        Assert.Equal(VcpuExitAction.Stop, _handler.Handle(VcpuExit.Other(ExitReason.Shutdown)));
        Assert.Equal(ExitCodes.Ok, _exit.ExitCode);
        Assert.Equal("vCPU 2 received KVM_EXIT_SHUTDOWN (guest reboot or triple fault) at rip=0x1234", _exit.Reason);
    }

    [Theory]
    [InlineData(SystemEventType.Shutdown, ExitCodes.Ok)]
    [InlineData(SystemEventType.Reset, ExitCodes.Ok)]
    [InlineData(SystemEventType.Crash, ExitCodes.GenericError)]
    public void System_events_end_the_vm(SystemEventType type, int code)
    {
        Assert.Equal(VcpuExitAction.Stop, _handler.Handle(VcpuExit.Other(ExitReason.SystemEvent, (ulong)type)));
        Assert.Equal(code, _exit.ExitCode);
        Assert.Equal($"vCPU 2 received system event {type}", _exit.Reason);
    }

    [Fact]
    public void Kvm_failures_end_the_vm_with_a_generic_error_and_count()
    {
        Assert.Equal(VcpuExitAction.Stop, _handler.Handle(VcpuExit.Other(ExitReason.InternalError, 1)));
        Assert.Equal(ExitCodes.GenericError, _exit.ExitCode);
        Assert.Equal("KVM internal error on vCPU 2. Suberror: 1", _exit.Reason);
        Assert.Equal(VcpuExitAction.Stop, _handler.Handle(VcpuExit.Other(ExitReason.FailEntry, 0x80000021)));
        Assert.Equal(VcpuExitAction.Stop, _handler.Handle(VcpuExit.Other(ExitReason.Exception)));
        Assert.Equal(3, _metrics.Failures);
    }

    [Fact]
    public void Fail_entry_and_unknown_exits_name_their_numbers()
    {
        using var a = new VmExit();
        new VcpuExitHandler(0, _pio, _mmio, a, _metrics).Handle(VcpuExit.Other(ExitReason.FailEntry, 0x80000021));
        Assert.Equal("KVM_EXIT_FAIL_ENTRY on vCPU 0: hardware entry failure reason 0x80000021", a.Reason);
        using var b = new VmExit();
        new VcpuExitHandler(0, _pio, _mmio, b, _metrics).Handle(VcpuExit.Other((ExitReason)77));
        Assert.Equal("Unexpected exit reason on vCPU 0: 77", b.Reason);
    }

    [Fact]
    public void Io_and_mmio_exits_allocate_nothing()
    {
        var io = new byte[4];
        var mm = new byte[4];
        var pioBus = new Bus();
        var nothing = new NullDevice();
        pioBus.Insert(nothing, 0x60, 4);
        var h = new VcpuExitHandler(0, pioBus, pioBus, _exit, _metrics);
        for (int i = 0; i < 100; i++) { h.Handle(VcpuExit.Io(0x60, true, 1, io)); h.Handle(VcpuExit.Mmio(0x61, false, mm)); }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++) { h.Handle(VcpuExit.Io(0x60, true, 2, io)); h.Handle(VcpuExit.Mmio(0x61, false, mm)); }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    private sealed class NullDevice : IBusDevice
    {
        public void Read(ulong offset, Span<byte> data) => data.Clear();
        public void Write(ulong offset, ReadOnlySpan<byte> data) { }
    }
}
