using System.Diagnostics;
using System.Text;
using Flint.Arch.X86.Acpi;

namespace Flint.Arch.X86.Tests;

public class AcpiTablesTests
{
    private static byte Sum(ReadOnlySpan<byte> b) { byte s = 0; foreach (var x in b) s += x; return s; }

    private static readonly VirtioMmioAcpi[] TwoVirtio = [new(0xC000_1000, 0x1000, 5), new(0xC000_2000, 0x1000, 6)];
    private static byte[] SampleDsdtBody() => DsdtDevices.Build(TwoVirtio,
        new AcpiMemoryDevice(Layout.VmGenIdAddress, 7), new AcpiMemoryDevice(Layout.VmClockAddress, 8), Layout.VmClockSize);

    [Theory]
    [InlineData(0, new byte[] { 0x01 })]
    [InlineData(62, new byte[] { 0x3f })]
    [InlineData(63, new byte[] { 0x41, 0x04 })]              // 65 = 0x41: lead 0x40 | 1, then 0x04
    [InlineData(4093, new byte[] { 0x4f, 0xff })]            // 4095: the largest two-byte length
    [InlineData(4094, new byte[] { 0x81, 0x00, 0x01 })]      // 4097 = 0x1001: low nibble 1, then 0x00, 0x01
    public void PkgLength_counts_itself_and_grows_at_the_spec_boundaries(int data, byte[] expected) =>
        Assert.Equal(expected, Aml.PkgLength(data));

    [Fact]
    public void EisaId_compresses_as_the_EISAID_macro()
    {
        Assert.Equal(new byte[] { 0x0c, 0x41, 0xd0, 0x05, 0x01 }, Aml.EisaId("PNP0501"));
        Assert.Equal(new byte[] { 0x0c, 0x41, 0xd0, 0x03, 0x03 }, Aml.EisaId("PNP0303"));
        Assert.Throws<ArgumentException>(() => Aml.EisaId("pnp0501"));
    }

    [Fact]
    public void Names_are_four_characters_per_segment()
    {
        Assert.Equal("\\"u8.ToArray().Concat(new byte[] { 0x2e }).Concat("_SB_VGEN"u8.ToArray()), Aml.NameString("\\_SB_.VGEN"));
        Assert.Throws<ArgumentException>(() => Aml.NameString("_SB.X"));
        Assert.Throws<ArgumentException>(() => Aml.NameString("_sb_"));
    }

    /// <summary>The VMGenID device, byte for byte as Firecracker's VmGenId::append_aml_bytes encodes it.</summary>
    [Fact]
    public void VmGenId_device_golden_bytes()
    {
        byte[] name(string n) => Encoding.ASCII.GetBytes(n);
        byte[] str(string s) => [0x0d, .. name(s), 0];
        byte[] body = [0x2e, .. name("_SB_VGEN"),
            0x08, .. name("_HID"), .. str("VMGENCTR"),
            0x08, .. name("_CID"), .. str("VM_Gen_Counter"),
            0x08, .. name("_DDN"), .. str("VM_Gen_Counter"),
            0x08, .. name("ADDR"), 0x12, 0x0c, 0x02, 0x0c, 0xf0, 0xff, 0x0d, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00];
        byte[] expected = [0x5b, 0x82, .. Aml.PkgLength(body.Length), .. body];
        Assert.Equal(expected, DsdtDevices.VmGenId(0xdfff0));
    }

    [Fact]
    public void Layout_places_vmgenid_and_vmclock_at_the_top_of_system_memory_as_Firecracker()
    {
        Assert.Equal(0xdfff0UL, Layout.VmGenIdAddress);
        Assert.Equal(0xde000UL, Layout.VmClockAddress);
        Assert.Equal(0xe0000UL, Layout.RsdpAddress);
    }

    [Theory]
    [InlineData(1u, false)]
    [InlineData(2u, true)]
    [InlineData(32u, false)]
    [InlineData(254u, true)]
    public void Tables_chain_from_the_RSDP_with_valid_checksums(uint vcpus, bool pci)
    {
        using var mem = Mem.Create(64 * Mem.MiB);
        MpTable.Write(mem, vcpus);
        var pciInfo = pci ? new PciSegmentInfo(0xeec0_0000) : null;
        var at = AcpiTableWriter.Write(mem, vcpus, SampleDsdtBody(), pciInfo);
        Assert.True(at.Dsdt >= Layout.MpTableStart + (ulong)MpTable.TableSize(vcpus), "the DSDT overlaps the MP table");
        Assert.True(at.End <= Layout.VmClockAddress);

        var rsdp = new byte[36];
        mem.Read(0xe0000, rsdp);
        Assert.Equal("RSD PTR "u8.ToArray(), rsdp[..8]);
        Assert.Equal(0, Sum(rsdp.AsSpan(0, 20)));
        Assert.Equal(0, Sum(rsdp));
        Assert.Equal(2, rsdp[15]);
        Assert.Equal(at.Xsdt, BitConverter.ToUInt64(rsdp, 24));

        var xsdt = Table(mem, at.Xsdt, "XSDT");
        int n = (xsdt.Length - 36) / 8;
        Assert.Equal(pci ? 3 : 2, n);
        var sigs = Enumerable.Range(0, n).Select(i => Encoding.ASCII.GetString(Table(mem, BitConverter.ToUInt64(xsdt, 36 + 8 * i), null), 0, 4)).ToArray();
        Assert.Equal(pci ? ["FACP", "APIC", "MCFG"] : new[] { "FACP", "APIC" }, sigs);

        var fadt = Table(mem, at.Fadt, "FACP");
        Assert.Equal(276, fadt.Length);
        Assert.Equal(at.Dsdt, BitConverter.ToUInt64(fadt, 140));
        Assert.NotEqual(0u, BitConverter.ToUInt32(fadt, 112) & (1u << 20));       // HW_REDUCED_ACPI
        Table(mem, at.Dsdt, "DSDT");

        var madt = Table(mem, at.Madt, "APIC");
        Assert.Equal(44 + 12 + 8 * (int)vcpus, madt.Length);
        Assert.Equal(0xfee00000u, BitConverter.ToUInt32(madt, 36));
        for (int i = 0; i < vcpus; i++)
        {
            int o = 56 + 8 * i;
            Assert.Equal(new byte[] { 0, 8, (byte)i, (byte)i, 1, 0, 0, 0 }, madt[o..(o + 8)]);
        }
        if (pci) Assert.Equal(0xeec00000UL, BitConverter.ToUInt64(Table(mem, at.Mcfg, "MCFG"), 44));
    }

    /// <summary>A table at <paramref name="addr"/>: its length from the header, its signature, and a zero checksum.</summary>
    private static byte[] Table(Flint.Memory.GuestMemory mem, ulong addr, string? signature)
    {
        var hdr = new byte[36];
        mem.Read(addr, hdr);
        var t = new byte[BitConverter.ToUInt32(hdr, 4)];
        mem.Read(addr, t);
        if (signature != null) Assert.Equal(signature, Encoding.ASCII.GetString(t, 0, 4));
        Assert.Equal(0, Sum(t));
        return t;
    }

    // ---- a real decoder: ACPICA's disassembler (Debian acpica-tools) must read every table without an error

    [SkippableFact]
    public void Iasl_disassembles_every_table_without_errors_and_names_the_devices()
    {
        Skip.IfNot(File.Exists("/usr/bin/iasl"), "iasl not installed (apt-get install acpica-tools)");
        using var mem = Mem.Create(64 * Mem.MiB);
        MpTable.Write(mem, 2);
        var at = AcpiTableWriter.Write(mem, 2, SampleDsdtBody(), new PciSegmentInfo(0xeec0_0000));
        string dir = Directory.CreateTempSubdirectory("flint-acpi-").FullName;
        try
        {
            var dsl = new Dictionary<string, string>();
            foreach (var (name, addr) in new[] { ("dsdt", at.Dsdt), ("facp", at.Fadt), ("apic", at.Madt), ("mcfg", at.Mcfg), ("xsdt", at.Xsdt) })
            {
                string file = Path.Combine(dir, name + ".dat");
                File.WriteAllBytes(file, Table(mem, addr, null));
                var (rc, output) = Run("/usr/bin/iasl", dir, "-d", file);
                Assert.True(rc == 0, $"iasl -d {name}: exit {rc}\n{output}");
                Assert.DoesNotContain("Error", output);
                dsl[name] = File.ReadAllText(Path.Combine(dir, name + ".dsl"));
                Assert.DoesNotContain("Invalid", dsl[name]);
                Assert.DoesNotContain("Incorrect checksum", dsl[name], StringComparison.OrdinalIgnoreCase);
            }
            var d = dsl["dsdt"];
            foreach (var expected in new[] { "Device (V000)", "Device (V001)", "\"LNRO0005\"", "Device (_SB.VGEN)", "\"VM_Gen_Counter\"",
                         "Device (_SB.VCLK)", "\"AMZNC10C\"", "Device (_SB.GED)", "\"ACPI0013\"", "Method (_EVT, 1, Serialized)",
                         "Notify (\\_SB.VGEN, 0x80)", "Device (_SB.COM1)", "EisaId (\"PNP0501\")", "Device (_SB.PS2)", "EisaId (\"PNP0303\")",
                         "Memory32Fixed (ReadWrite,", "0xC0001000", "0x00000000000DE000", "0x000DFFF0" })
                Assert.True(d.Contains(expected, StringComparison.Ordinal), $"DSDT disassembly lacks {expected}:\n{d}");
            Assert.Contains("Hardware Reduced (V5) : 1", dsl["facp"]);
            Assert.Contains("FADT Minor Revision : 05", dsl["facp"]);
            Assert.Equal(2, CountOf(dsl["apic"], "Processor Local APIC"));
            Assert.Contains("I/O APIC", dsl["apic"]);
            Assert.Contains("00000000EEC00000", dsl["mcfg"]);
            Assert.Equal(3, CountOf(dsl["xsdt"], "ACPI Table Address"));
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// With PCI the DSDT holds the host bridge: an x86 Linux booted with ACPI looks for PCI root buses only in the
    /// namespace (PNP0A03/PNP0A08), so without it the devices kernel under --enable-pci found no bus and no root disk.
    /// </summary>
    [Fact]
    public void Dsdt_has_a_PCI_host_bridge_only_when_the_PCI_transport_is_on()
    {
        byte[] pnp0a08 = Aml.EisaId("PNP0A08");
        byte[] noPci = SampleDsdtBody();
        byte[] withPci = DsdtDevices.Build([], new AcpiMemoryDevice(Layout.VmGenIdAddress, 5), new AcpiMemoryDevice(Layout.VmClockAddress, 6),
            Layout.VmClockSize, new PciSegmentInfo(0xeec0_0000));
        Assert.Equal(-1, noPci.AsSpan().IndexOf(pnp0a08));
        Assert.True(withPci.AsSpan().IndexOf(pnp0a08) > 0);
        Assert.True(withPci.AsSpan().IndexOf("PC00"u8) > 0);
    }

    /// <summary>Word address space descriptors as Firecracker's AddressSpace&lt;u16&gt; encodes them (bus number 0-0; I/O 0xd00-0xffff).</summary>
    [Fact]
    public void Word_address_space_descriptors_golden_bytes()
    {
        Assert.Equal(new byte[] { 0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0 }, Aml.WordBusNumber(0, 0));
        Assert.Equal(new byte[] { 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0x00, 0x0d, 0xff, 0xff, 0, 0, 0x00, 0xf3 }, Aml.WordIo(0x0d00, 0xffff));
        Assert.Equal(new byte[] { 0x11, 0x04, 0x0a, 0x01, 0x21 }, Aml.Buffer([0x21])); // PkgLength counts itself
    }

    [SkippableFact]
    public void Iasl_reads_the_PCI_host_bridge_with_its_windows()
    {
        Skip.IfNot(File.Exists("/usr/bin/iasl"), "iasl not installed (apt-get install acpica-tools)");
        using var mem = Mem.Create(64 * Mem.MiB);
        MpTable.Write(mem, 1);
        var pci = new PciSegmentInfo(0xeec0_0000);
        byte[] body = DsdtDevices.Build([], new AcpiMemoryDevice(Layout.VmGenIdAddress, 5), new AcpiMemoryDevice(Layout.VmClockAddress, 6), Layout.VmClockSize, pci);
        var at = AcpiTableWriter.Write(mem, 1, body, pci);
        string dir = Directory.CreateTempSubdirectory("flint-acpi-").FullName;
        try
        {
            string file = Path.Combine(dir, "dsdt.dat");
            File.WriteAllBytes(file, Table(mem, at.Dsdt, "DSDT"));
            var (rc, output) = Run("/usr/bin/iasl", dir, "-d", file);
            Assert.True(rc == 0, $"iasl -d: exit {rc}\n{output}");
            Assert.DoesNotContain("Error", output);
            string d = File.ReadAllText(Path.Combine(dir, "dsdt.dsl"));
            Assert.DoesNotContain("Invalid", d);
            foreach (var expected in new[] { "Device (_SB.PC00)", "EisaId (\"PNP0A08\")", "EisaId (\"PNP0A03\")", "Name (_SEG, 0x0000)",
                         "Method (_DSM, 4, NotSerialized)", "WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,",
                         "IO (Decode16,", "0x0CF8", "Memory32Fixed (ReadWrite,", "0xEEC00000", "0x00100000",
                         "0x00000000C0001000", "0x00000000EEBFFFFF", "0x0000004000000000", "0x0000007FFFFFFFFF",
                         "WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,", "0x0CF7", "0x0D00" })
                Assert.True(d.Contains(expected, StringComparison.Ordinal), $"DSDT disassembly lacks {expected}:\n{d}");
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// ACPICA's interpreter (acpiexec) runs the host bridge's _DSM as Linux calls it, with the UUID from ASL's ToUUID
    /// (so the mixed-endian byte order is checked too): function 0 lists functions 0 and 5, function 5 answers 0
    /// ("preserve the BARs the VMM placed"); an unknown UUID gets the empty answer.
    /// </summary>
    [SkippableFact]
    public void Acpiexec_runs_the_host_bridge_DSM_as_Linux_calls_it()
    {
        Skip.IfNot(File.Exists("/usr/bin/acpiexec") && File.Exists("/usr/bin/iasl"), "acpiexec/iasl not installed (apt-get install acpica-tools)");
        using var mem = Mem.Create(64 * Mem.MiB);
        MpTable.Write(mem, 1);
        var pci = new PciSegmentInfo(0xeec0_0000);
        byte[] body = DsdtDevices.Build([], new AcpiMemoryDevice(Layout.VmGenIdAddress, 5), new AcpiMemoryDevice(Layout.VmClockAddress, 6), Layout.VmClockSize, pci);
        var at = AcpiTableWriter.Write(mem, 1, body, pci);
        string dir = Directory.CreateTempSubdirectory("flint-acpi-").FullName;
        try
        {
            File.WriteAllBytes(Path.Combine(dir, "dsdt.aml"), Table(mem, at.Dsdt, "DSDT"));
            File.WriteAllText(Path.Combine(dir, "caller.asl"), """
                DefinitionBlock ("", "SSDT", 2, "FLINT", "DSMTEST", 0)
                {
                    External (\_SB.PC00._DSM, MethodObj)
                    Method (\TST0) { Return (\_SB.PC00._DSM (ToUUID ("e5c937d0-3553-4d7a-9117-ea4d19c3434d"), 1, 0, Package () {})) }
                    Method (\TST5) { Return (\_SB.PC00._DSM (ToUUID ("e5c937d0-3553-4d7a-9117-ea4d19c3434d"), 1, 5, Package () {})) }
                    Method (\TSTX) { Return (\_SB.PC00._DSM (ToUUID ("00000000-0000-0000-0000-000000000000"), 1, 5, Package () {})) }
                }
                """);
            var (rc, o) = Run("/usr/bin/iasl", dir, "caller.asl");
            Assert.True(rc == 0, "iasl caller.asl: " + o);
            (rc, o) = Run("/usr/bin/acpiexec", dir, "-b", "execute \\TST0; execute \\TST5; execute \\TSTX; execute \\_SB.PC00._SEG", "dsdt.aml", "caller.aml");
            Assert.True(rc == 0, "acpiexec: " + o);
            Assert.DoesNotContain("ACPI Error", o);
            var answers = System.Text.RegularExpressions.Regex.Matches(o, @"Evaluation of \\(\S+) returned[^\n]*\n\s*(\[[^\n]*)").ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
            Assert.True(answers.Count == 4, "acpiexec output:\n" + o);
            Assert.Contains("[Buffer] Length 01 =     0000: 21", answers["TST0"]);
            Assert.Equal("[Integer] = 0000000000000000", answers["TST5"].Trim());
            Assert.Contains("[Buffer] Length 01 =     0000: 00", answers["TSTX"]);
            Assert.Equal("[Integer] = 0000000000000000", answers["_SB.PC00._SEG"].Trim());
        }
        finally { Directory.Delete(dir, true); }
    }

    private static int CountOf(string s, string what)
    {
        int n = 0;
        for (int i = s.IndexOf(what, StringComparison.Ordinal); i >= 0; i = s.IndexOf(what, i + 1, StringComparison.Ordinal)) n++;
        return n;
    }

    private static (int, string) Run(string exe, string dir, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string o = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(30_000)) { p.Kill(); return (-1, "timeout"); }
        return (p.ExitCode, o + err.Result);
    }
}
