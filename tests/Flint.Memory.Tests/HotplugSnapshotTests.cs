using System.Text.Json;
using Flint.Memory;
using Flint.Sys;
using Flint.UffdHandler;

namespace Flint.Memory.Tests;

/// <summary>
/// The virtio-mem hotplug area in snapshot memory files (Firecracker's docs/memory-hotplug.md "Snapshots"): the file
/// is boot RAM then the whole area; a plugged slot's data is written, an unplugged slot is a hole; a restore maps the
/// area back from the file at that offset, all PROT_NONE until its slots are plugged again; a Diff asks for each
/// plugged slot's dirty log under its KVM slot number; the Uffd handshake sends the area as one more region.
/// Slots of 16 pages here (the layout rules are the same as with 128 MiB ones, the files small).
/// </summary>
[Collection(UffdCollection.Name)]
public sealed unsafe class HotplugSnapshotTests : IDisposable
{
    private const ulong P = GuestMemory.PageSize;
    private const ulong Boot = 64 * P, AreaBase = 512UL << 30, Slot = 16 * P, AreaSize = 4 * Slot;
    private readonly string _dir = Directory.CreateTempSubdirectory("flint-hpsnap-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    private static List<(long, long)> Pages(params (ulong First, ulong Count)[] runs) =>
        runs.Select(r => ((long)(r.First * P), (long)((r.First + r.Count) * P))).ToList();

    /// <summary>Boot RAM with one data page, and an area with slots 1 and 3 plugged, each with a pattern in two pages.</summary>
    private static GuestMemory Sample(bool tracking = false)
    {
        var mem = GuestMemory.Create([(0UL, Boot)]);
        if (tracking) mem.EnableDirtyTracking();
        var area = mem.AddHotplugArea(AreaBase, AreaSize, Slot);
        area.FirstSlot = 16;
        mem.Fill(3 * P, P, 0x33);
        foreach (int s in new[] { 1, 3 })
        {
            area.SetSlotAccessible(s, true);
            mem.Fill(AreaBase + (ulong)s * Slot + 2 * P, 2 * P, (byte)(0xa0 + s));
        }
        return mem;
    }

    private const ulong AreaPage = Boot / P; // the area's first page in the memory file

    [Fact]
    public void A_full_dump_holds_boot_RAM_then_the_area_with_unplugged_slots_as_holes()
    {
        using var mem = Sample();
        string f = PathOf("full.mem");
        ulong written = mem.DumpToFile(f);

        Assert.Equal((long)(Boot + AreaSize), new FileInfo(f).Length);
        Assert.Equal(Boot + AreaSize, mem.MemoryFileSize);
        Assert.Equal(5UL, written);
        // Boot page 3; slot 1's pages 2-3; slot 3's pages 2-3. Slots 0 and 2 (unplugged) and every zero page: holes.
        Assert.Equal(Pages((3, 1), (AreaPage + 16 + 2, 2), (AreaPage + 48 + 2, 2)), SparseFile.DataExtents(f));
        Assert.True(SparseFile.AllocatedBytes(f) <= 16 * (long)P, $"allocated {SparseFile.AllocatedBytes(f)} bytes");
    }

    [Fact]
    public void A_full_dump_over_the_file_it_was_restored_from_leaves_no_stale_data_in_slots_unplugged_since()
    {
        string f = PathOf("full.mem");
        using (var mem = Sample()) mem.DumpToFile(f);
        using var restored = GuestMemory.CreateFromFile([(0UL, Boot)], f, new HotplugLayout(AreaBase, AreaSize, Slot));
        var area = restored.AddHotplugArea(AreaBase, AreaSize, Slot);
        area.SetSlotAccessible(1, true);
        // Slot 3 stays unplugged in this VM: the dump over its own source file must drop the old pattern there.
        restored.DumpToFile(f);
        var bytes = File.ReadAllBytes(f);
        Assert.All(bytes.AsSpan((int)(Boot + 3 * Slot), (int)Slot).ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(0xa1, bytes[Boot + Slot + 2 * P]);
    }

    [Fact]
    public void A_restore_maps_the_area_from_the_file_unplugged_until_its_slots_are_plugged_again()
    {
        string f = PathOf("full.mem");
        using (var mem = Sample()) mem.DumpToFile(f);

        using var restored = GuestMemory.CreateFromFile([(0UL, Boot)], f, new HotplugLayout(AreaBase, AreaSize, Slot));
        Assert.Equal(Boot, restored.TotalSize);
        var area = restored.AddHotplugArea(AreaBase, AreaSize, Slot); // the builder takes the restored area
        Assert.Same(restored.Hotplug, area);
        Assert.Equal((long)Boot, area.FileOffset);
        for (int s = 0; s < 4; s++) Assert.False(area.IsSlotPlugged(s));
        Assert.True(restored.TryGetHostPointer(AreaBase + Slot, 8) == null);

        area.SetSlotAccessible(1, true);
        area.SetSlotAccessible(3, true);
        Assert.Equal(0xa1, restored.Read<byte>(AreaBase + Slot + 2 * P));
        Assert.Equal(0xa3, restored.Read<byte>(AreaBase + 3 * Slot + 3 * P + P - 1));
        Assert.Equal(0, restored.Read<byte>(AreaBase + 3 * Slot)); // a hole reads as zeroes
        Assert.Equal(0x33, restored.Read<byte>(3 * P));
        // A second area of another geometry is refused: the restored one is the configured one or nothing.
        Assert.Throws<InvalidOperationException>(() => restored.AddHotplugArea(AreaBase, AreaSize, Slot));
    }

    [Fact]
    public void A_restored_area_of_another_geometry_is_refused_by_the_builder()
    {
        string f = PathOf("full.mem");
        using (var mem = Sample()) mem.DumpToFile(f);
        using var restored = GuestMemory.CreateFromFile([(0UL, Boot)], f, new HotplugLayout(AreaBase, AreaSize, Slot));
        Assert.Throws<InvalidOperationException>(() => restored.AddHotplugArea(AreaBase, AreaSize, 2 * Slot));
    }

    [Fact]
    public void A_memory_file_without_room_for_the_area_is_refused()
    {
        string f = PathOf("boot-only.mem");
        using (var mem = GuestMemory.Create([(0UL, Boot)])) mem.DumpToFile(f);
        Assert.Throws<GuestMemoryFileException>(() => GuestMemory.CreateFromFile([(0UL, Boot)], f, new HotplugLayout(AreaBase, AreaSize, Slot)));
    }

    [Fact]
    public void Discard_in_a_restored_area_reads_zeroes_not_the_file_and_keeps_unplugged_slots_inaccessible()
    {
        string f = PathOf("full.mem");
        using (var mem = Sample()) mem.DumpToFile(f);
        using var restored = GuestMemory.CreateFromFile([(0UL, Boot)], f, new HotplugLayout(AreaBase, AreaSize, Slot));
        var area = restored.AddHotplugArea(AreaBase, AreaSize, Slot);
        area.SetSlotAccessible(1, true);
        area.Discard(AreaBase + Slot, 2 * Slot); // slot 1 (plugged) and slot 2 (unplugged)
        Assert.Equal(0, restored.Read<byte>(AreaBase + Slot + 2 * P));
        Assert.True(restored.TryGetHostPointer(AreaBase + 2 * Slot, 8) == null);
        // Slot 2 is PROT_NONE still: plugging makes it accessible, and it reads zeroes.
        area.SetSlotAccessible(2, true);
        Assert.Equal(0, restored.Read<byte>(AreaBase + 2 * Slot));
    }

    [Fact]
    public void A_diff_writes_the_dirty_pages_of_plugged_slots_asking_for_their_logs_by_KVM_slot()
    {
        using var mem = Sample(tracking: true);
        mem.ResetDirty();
        mem.Write<ulong>(AreaBase + 3 * Slot + 5 * P, 0xfeed); // VMM write: the area's own bitmap
        var asked = new List<int>();
        string f = PathOf("diff.mem");
        ulong pages = mem.DumpDirtyToFile(f, (slot, region, bits) =>
        {
            asked.Add(slot);
            if (slot == 17) bits[0] |= 1UL << 7; // "KVM" saw the guest write slot 1's page 7
        });
        Assert.Equal([0, 17, 19], asked); // boot region 0, then hotplug slots 1 and 3 (FirstSlot 16); no log of unplugged ones
        Assert.Equal(2UL, pages);
        Assert.Equal((long)(Boot + AreaSize), new FileInfo(f).Length);
        Assert.Equal(Pages((AreaPage + 16 + 7, 1), (AreaPage + 48 + 5, 1)), SparseFile.DataExtents(f));
        Assert.Equal(0UL, mem.Hotplug!.Dirty!.CountDirty());
    }

    [Fact]
    public void A_failed_diff_keeps_the_hotplug_slots_logs_for_the_next_one()
    {
        using var mem = Sample(tracking: true);
        mem.ResetDirty();
        Assert.ThrowsAny<Exception>(() => mem.DumpDirtyToFile(Path.Combine(_dir, "no-such-dir", "diff.mem"), (slot, _, bits) =>
        {
            if (slot == 19) bits[0] |= 1UL << 9;
        }));
        Assert.True(mem.Hotplug!.Dirty!.IsDirty(3 * Slot / P + 9));
    }

    [Fact]
    public void Uffd_restore_the_real_handler_serves_the_area_plugged_slots_from_the_file_and_a_discard_reads_zero()
    {
        string f = PathOf("full.mem"), sock = PathOf("uffd.sock");
        using (var mem = Sample()) mem.DumpToFile(f);
        using var h = new UffdHandlerProcess(sock, f);
        var restored = GuestMemory.CreateForUffd([(0UL, Boot)], sock, UffdSource.SyscallThenDevice, hotplug: new HotplugLayout(AreaBase, AreaSize, Slot));
        try
        {
            var area = restored.AddHotplugArea(AreaBase, AreaSize, Slot);
            Assert.False(area.IsSlotPlugged(3));
            Assert.True(restored.TryGetHostPointer(AreaBase + 3 * Slot, 8) == null);
            area.SetSlotAccessible(3, true);
            h.Bounded(() =>
            {
                Assert.Equal(0xa3, restored.Read<byte>(AreaBase + 3 * Slot + 2 * P));  // served from the file
                Assert.Equal(0, restored.Read<byte>(AreaBase + 3 * Slot + 9 * P));     // a hole: zeroes
                Assert.Equal(0x33, restored.Read<byte>(3 * P));
                // An unplug's discard: the handler hears of it (remove event), the next touch reads zeroes.
                area.Discard(AreaBase + 3 * Slot, Slot);
                Assert.Equal(0, restored.Read<byte>(AreaBase + 3 * Slot + 2 * P));
            });
        }
        finally { restored.Dispose(); }
        var (code, output) = h.WaitExit();
        Assert.Equal(0, code);
        Assert.Contains("serving 2 region(s)", output);
        // Two pages copied from the file, the hole answered with a zero page (UFFDIO_ZEROPAGE, counted apart).
        Assert.True(UffdHandlerProcess.Served(output) >= 2, output);
        Assert.Contains("(1 zero pages for holes", output);
    }

    [Fact]
    public void Uffd_restore_an_unplug_after_the_handler_died_returns_and_keeps_the_slot()
    {
        // As UffdTests' discard test, for the hotplug area (virtio-mem's unplug): the madvise would wait forever.
        string f = PathOf("full.mem"), sock = PathOf("uffd.sock");
        using (var mem = Sample()) mem.DumpToFile(f);
        var h = new UffdHandlerProcess(sock, f);
        using var restored = GuestMemory.CreateForUffd([(0UL, Boot)], sock, UffdSource.SyscallThenDevice, hotplug: new HotplugLayout(AreaBase, AreaSize, Slot));
        var area = restored.AddHotplugArea(AreaBase, AreaSize, Slot);
        area.SetSlotAccessible(3, true);
        h.Bounded(() => Assert.Equal(0xa3, restored.Read<byte>(AreaBase + 3 * Slot + 2 * P)));
        h.Dispose();
        h.Bounded(() => area.Discard(AreaBase + 3 * Slot, Slot), 5_000, "the unplug's discard waited on a page fault handler that is gone");
        Assert.False(restored.FaultHandlerAlive);
        Assert.Equal(0xa3, restored.Read<byte>(AreaBase + 3 * Slot + 2 * P));
    }

    [Fact]
    public void The_uffd_handshake_covers_the_whole_area_after_boot_RAM_and_the_handler_accepts_it()
    {
        using var mem = Sample();
        byte[] json = GuestMemory.HandshakeJson(mem, P);
        using var doc = JsonDocument.Parse(json);
        var regions = doc.RootElement.EnumerateArray().ToArray();
        Assert.Equal(2, regions.Length);
        var area = regions[1];
        Assert.Equal((ulong)mem.Hotplug!.Host, area.GetProperty("base_host_virt_addr").GetUInt64());
        Assert.Equal(AreaSize, area.GetProperty("size").GetUInt64());
        Assert.Equal(Boot, area.GetProperty("offset").GetUInt64());
        Assert.Equal(P, area.GetProperty("page_size").GetUInt64());
        Assert.Equal(P, area.GetProperty("page_size_kib").GetUInt64());
        // flint-uffd-handler checks the regions cover the memory file exactly: boot RAM plus the area.
        var parsed = RegionMapping.Parse(json, Boot + AreaSize);
        Assert.Equal(2, parsed.Length);
        Assert.Throws<FormatException>(() => RegionMapping.Parse(json, Boot));
    }
}
