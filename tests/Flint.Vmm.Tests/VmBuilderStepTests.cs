using System.Buffers.Binary;
using Flint.Arch.X86;
using Flint.Devices;
using Flint.Devices.Virtio;
using Flint.Kvm;
using Flint.Memory;
using Flint.Sys;
using Flint.Vmm.Builder;
using Flint.Vmm.Config;

namespace Flint.Vmm.Tests;

/// <summary>
/// The builder's steps one by one, without KVM: a fake VM records the irqfd and ioeventfd bindings, and each test
/// checks what its step put on the buses, the kernel command line and the device set. CreateVm and CreateVcpus need
/// KVM and are exercised by every KVM test that boots a VM.
/// </summary>
public sealed class VmBuilderStepTests : IDisposable
{
    /// <summary>Records what a step asked of the VM.</summary>
    private sealed class RecordingVm : IVmEventFds
    {
        public List<uint> Irqs { get; } = [];
        public List<(ulong Addr, uint Len, ulong? Datamatch)> Doorbells { get; } = [];
        public void RegisterIrqfd(EventFd fd, uint gsi) => Irqs.Add(gsi);
        public void RegisterIoeventfd(EventFd fd, ulong addr, uint len, ulong? datamatch, bool pio = false) => Doorbells.Add((addr, len, datamatch));
    }

    private readonly string _dir = Directory.CreateTempSubdirectory("flint-builder-").FullName;
    private readonly List<IDisposable> _owned = [];
    private readonly RecordingVm _vm = new();
    private readonly GuestMemory _memory = GuestMemory.Create(MemoryLayout.RamRanges(16 << 20));
    private readonly EventLoop _loop = new();
    private readonly Bus _pio = new();
    private readonly Bus _mmio = new();
    private readonly VmExit _exit = new();
    private readonly KernelCmdline _cmdline = new("console=ttyS0");
    private readonly VirtioDeviceSet _devices;

    public VmBuilderStepTests() => _devices = new VirtioDeviceSet(_vm, _memory, _mmio, _loop, _cmdline, _owned);

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _loop.Dispose();
        _exit.Dispose();
        _memory.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static VmConfig Config(string json) => ConfigLoader.Parse(json);

    /// <summary>A config the loader accepts (it checks the kernel is readable; no step here loads it).</summary>
    private string Minimal(string extra = "")
    {
        string kernel = Path.Combine(_dir, "vmlinux");
        File.WriteAllBytes(kernel, []);
        if (!extra.Contains("\"drives\"")) extra += ", \"drives\": []";
        return $$"""{"boot-source": {"kernel_image_path": "{{kernel}}"}, "machine-config": {"vcpu_count": 1, "mem_size_mib": 16}{{extra}}}""";
    }

    private uint MmioRegister(int slot, ulong register)
    {
        Span<byte> b = stackalloc byte[4];
        Assert.True(_mmio.Read(Layout.VirtioMmioAddress(slot) + register, b), $"no device in virtio slot {slot}");
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    [Fact]
    public void Create_guest_memory_allocates_the_configured_size_and_owns_it()
    {
        var mc = new MachineConfig { MemSizeMib = 32, TrackDirtyPages = true };
        var owned = new List<IDisposable>();
        using var memory = VmBuilder.CreateGuestMemory(new VmConfig(), mc, GuestMemorySize.Bytes(32), null, owned);
        Assert.Equal(32ul << 20, (ulong)memory.Regions.Sum(r => (long)r.Size));
        Assert.True(memory.DirtyTracking);
        Assert.Same(memory, Assert.Single(owned));
    }

    [Fact]
    public void Create_guest_memory_keeps_a_restored_memory()
    {
        var owned = new List<IDisposable>();
        var memory = VmBuilder.CreateGuestMemory(new VmConfig(), new MachineConfig { MemSizeMib = 16 }, GuestMemorySize.Bytes(16), _memory, owned);
        Assert.Same(_memory, memory);
        Assert.False(memory.DirtyTracking);
    }

    [Fact]
    public void Legacy_devices_sit_on_their_ports_with_their_irqs_and_the_i8042_reset_ends_the_vm()
    {
        string outPath = Path.Combine(_dir, "serial.out");
        var cfg = Config(Minimal());
        cfg.SerialOutPath = outPath;
        var legacy = VmBuilder.AttachLegacyDevices(cfg, new VmOptions(), _vm, _pio, _loop, _exit, _owned);

        Assert.Equal([Serial4Irq, I8042Irq], _vm.Irqs);
        Span<byte> lsr = stackalloc byte[1];
        Assert.True(_pio.Read(0x3f8 + 5, lsr));
        Assert.NotEqual(0, lsr[0] & 0x20); // transmitter holding register empty
        Assert.True(_pio.Write(0x3f8, "A"u8));
        Assert.Same(legacy.Serial, DeviceAt(_pio, 0x3f8));
        Assert.Same(legacy.I8042, DeviceAt(_pio, 0x64));

        Assert.False(_exit.IsRequested);
        Assert.True(_pio.Write(0x64, [0xfe])); // the i8042 reset command: Ctrl-Alt-Del's path to the VM's end
        Assert.True(_exit.IsRequested);
        foreach (var o in _owned) if (o is SerialOutFile f) f.Dispose();
        Assert.Equal("A", File.ReadAllText(outPath));
    }

    private const uint Serial4Irq = 4, I8042Irq = 1;

    private static IBusDevice DeviceAt(Bus bus, ulong address)
    {
        Assert.True(bus.TryResolve(address, out var device, out _));
        return device;
    }

    [Fact]
    public void Block_devices_put_the_root_drive_first_and_name_it_on_the_command_line()
    {
        string data = Path.Combine(_dir, "data.img"), root = Path.Combine(_dir, "root.img");
        File.WriteAllBytes(data, new byte[4096]);
        File.WriteAllBytes(root, new byte[4096]);
        var cfg = Config(Minimal($$""", "drives": [ {"drive_id": "data", "path_on_host": "{{data}}", "is_root_device": false}, {"drive_id": "rootfs", "path_on_host": "{{root}}", "is_root_device": true, "is_read_only": true, "partuuid": "abc-01"}]"""));

        VmBuilder.AttachBlockDevices(cfg, _devices, _cmdline);

        Assert.Equal(["rootfs", "data"], _devices.Blocks.Select(b => b.Id));
        Assert.Equal(2u, MmioRegister(0, MmioRegisters.DeviceId)); // virtio-blk in slot 0: /dev/vda
        Assert.Equal(2u, MmioRegister(1, MmioRegisters.DeviceId));
        Assert.Equal(MmioTransport.Magic, MmioRegister(0, MmioRegisters.MagicValue));
        string cmd = _cmdline.ToString();
        Assert.Contains("root=PARTUUID=abc-01 ro", cmd);
        Assert.Contains(KernelCmdline.VirtioMmioDeviceArg(Layout.VirtioMmioAddress(0), Layout.VirtioIrq(0)), cmd);
        Assert.Contains(KernelCmdline.VirtioMmioDeviceArg(Layout.VirtioMmioAddress(1), Layout.VirtioIrq(1)), cmd);
        Assert.Equal([Layout.VirtioIrq(0), Layout.VirtioIrq(1)], _vm.Irqs);
        // One doorbell per queue, each matching its queue index at the notify register.
        Assert.All(_vm.Doorbells, d => Assert.Equal(4u, d.Len));
        Assert.Contains((Layout.VirtioMmioAddress(0) + MmioTransport.NotifyAddress, 4u, (ulong?)0), _vm.Doorbells);
    }

    [Fact]
    public void A_root_drive_without_partuuid_is_dev_vda_read_write()
    {
        string root = Path.Combine(_dir, "root.img");
        File.WriteAllBytes(root, new byte[4096]);
        var cfg = Config(Minimal($$""", "drives": [{"drive_id": "rootfs", "path_on_host": "{{root}}", "is_root_device": true}]"""));
        VmBuilder.AttachBlockDevices(cfg, _devices, _cmdline);
        Assert.Contains("root=/dev/vda rw", _cmdline.ToString());
    }

    [Fact]
    public void No_optional_device_configured_attaches_nothing()
    {
        var cfg = Config(Minimal());
        VmBuilder.AttachBlockDevices(cfg, _devices, _cmdline);
        VmBuilder.AttachNetDevices(cfg, new VmOptions(), _devices);
        VmBuilder.AttachVsock(cfg, new VmOptions(), _loop, _devices);
        VmBuilder.AttachEntropy(cfg, _devices);
        VmBuilder.AttachBalloon(cfg, _devices);
        Assert.Empty(_devices.Transports);
        Assert.Empty(_vm.Irqs);
        Assert.Equal("console=ttyS0", _cmdline.ToString());
        Assert.False(_mmio.Read(Layout.VirtioMmioAddress(0), new byte[4]));
    }

    [Fact]
    public void Vsock_entropy_and_balloon_take_the_next_slots_in_order()
    {
        string uds = Path.Combine(_dir, "v.sock");
        var cfg = Config(Minimal($$""", "vsock": {"guest_cid": 3, "uds_path": "{{uds}}"}, "entropy": {}, "balloon": {"amount_mib": 0, "deflate_on_oom": false}"""));

        VmBuilder.AttachVsock(cfg, new VmOptions(), _loop, _devices);
        VmBuilder.AttachEntropy(cfg, _devices);
        VmBuilder.AttachBalloon(cfg, _devices);

        Assert.NotNull(_devices.Vsock);
        Assert.NotNull(_devices.Rng);
        Assert.NotNull(_devices.Balloon);
        Assert.True(File.Exists(uds)); // the vsock's host socket is bound
        Assert.Equal([19u, 4u, 5u], [MmioRegister(0, MmioRegisters.DeviceId), MmioRegister(1, MmioRegisters.DeviceId), MmioRegister(2, MmioRegisters.DeviceId)]);
        Assert.Equal([Layout.VirtioIrq(0), Layout.VirtioIrq(1), Layout.VirtioIrq(2)], _vm.Irqs);
        Assert.Equal(3, _devices.Transports.Count);
    }

    [SkippableFact]
    public void Net_devices_open_their_tap_and_the_mmds_interface_gets_the_stack()
    {
        string tap = $"tapB{Environment.ProcessId % 100000}";
        var cfg = Config(Minimal($$""", "network-interfaces": [ {"iface_id": "eth0", "host_dev_name": "{{tap}}", "guest_mac": "06:00:00:00:00:01"}], "mmds-config": {"network_interfaces": ["eth0"], "version": "V2"}"""));
        try { VmBuilder.AttachNetDevices(cfg, new VmOptions(), _devices); }
        catch (SysException e)
        {
            Skip.If(true, $"cannot open a tap here: {e.Message}");
        }
        var (id, _, mmds, _, _) = Assert.Single(_devices.Nets);
        Assert.Equal("eth0", id);
        Assert.NotNull(mmds);
        Assert.Equal(1u, MmioRegister(0, MmioRegisters.DeviceId));
    }

    [Fact]
    public void Base_command_line_is_the_boot_args_or_firecrackers_default_plus_the_templates_extras()
    {
        Assert.Equal("quiet", VmBuilder.BaseKernelCmdline(new BootSourceConfig { BootArgs = "quiet" }, CpuTemplates.None).ToString());
        Assert.Equal(KernelCmdline.DefaultBootArgs, VmBuilder.BaseKernelCmdline(new BootSourceConfig(), CpuTemplates.None).ToString());
        var pvm = CpuTemplates.ByName("KvmPvm")!;
        Assert.EndsWith(pvm.ExtraKernelCmdline, VmBuilder.BaseKernelCmdline(new BootSourceConfig { BootArgs = "quiet" }, pvm).ToString());
    }

    [Fact]
    public void Boot_structures_put_the_command_line_zero_page_and_mp_table_in_guest_memory()
    {
        var kernel = new LoadedKernel(KernelKind.Elf64Linux, Entry: 0x1000000, LoadAddress: 0x1000000, End: 0x1100000);
        byte[] cmd = new KernelCmdline("console=ttyS0 reboot=k").ToBytes();
        VmBuilder.WriteBootStructures(_memory, kernel, cmd, initrd: null, memBytes: 16 << 20, vcpuCount: 2);

        var back = new byte[cmd.Length];
        _memory.Read(Layout.CmdlineStart, back);
        Assert.Equal(cmd, back);
        // The zero page's cmd_line_ptr (offset 0x228) points at the command line.
        var zp = new byte[4];
        _memory.Read(Layout.ZeroPageStart + 0x228, zp);
        Assert.Equal((uint)Layout.CmdlineStart, BinaryPrimitives.ReadUInt32LittleEndian(zp));
        // The MP floating pointer ("_MP_") is somewhere in the legacy BIOS area the kernel scans.
        var bios = new byte[0x100000 - 0x9fc00];
        _memory.Read(0x9fc00, bios);
        Assert.True(bios.AsSpan().IndexOf("_MP_"u8) >= 0);
    }
}
