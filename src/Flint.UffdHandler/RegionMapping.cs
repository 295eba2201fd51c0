using System.Text.Json;

namespace Flint.UffdHandler;

/// <summary>
/// One entry of the handshake's JSON array (Firecracker's GuestRegionUffdMapping): guest RAM region at
/// <see cref="Base"/> in the VMM's address space, <see cref="Size"/> bytes, whose contents are at
/// <see cref="Offset"/> in the memory file, served in <see cref="PageSize"/> units.
/// </summary>
public readonly record struct RegionMapping(ulong Base, ulong Size, ulong Offset, ulong PageSize)
{
    public bool Contains(ulong addr) => addr >= Base && addr - Base < Size;

    /// <summary>
    /// Parses and checks the VMM's message against the memory file: a non-empty array; each region page aligned,
    /// inside the file and not overlapping another; one power-of-two page size of at least 4 KiB; the regions cover the
    /// file exactly (as Firecracker's example handler asserts). page_size_kib (Firecracker's misnamed twin, in bytes) is
    /// taken when page_size is absent, as older Firecrackers send only that one.
    /// </summary>
    public static RegionMapping[] Parse(ReadOnlySpan<byte> json, ulong fileSize)
    {
        using var doc = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 4 });
        if (doc.RootElement.ValueKind != JsonValueKind.Array || doc.RootElement.GetArrayLength() == 0)
            throw new FormatException("the mappings are not a non-empty JSON array");
        var list = new List<RegionMapping>();
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            ulong page = e.TryGetProperty("page_size", out var ps) ? ps.GetUInt64() : Field(e, "page_size_kib");
            var r = new RegionMapping(Field(e, "base_host_virt_addr"), Field(e, "size"), Field(e, "offset"), page);
            if (r.PageSize < 4096 || (r.PageSize & (r.PageSize - 1)) != 0) throw new FormatException($"page size {r.PageSize} is not a power of two of at least 4096");
            if (list.Count > 0 && r.PageSize != list[0].PageSize) throw new FormatException("the regions have different page sizes");
            if (r.Size == 0 || r.Base % r.PageSize != 0 || r.Size % r.PageSize != 0 || r.Offset % r.PageSize != 0)
                throw new FormatException($"region 0x{r.Base:x}+0x{r.Size:x} at offset 0x{r.Offset:x} is not page aligned");
            if (r.Base + r.Size < r.Base || r.Offset + r.Size < r.Offset || r.Offset + r.Size > fileSize)
                throw new FormatException($"region 0x{r.Base:x}+0x{r.Size:x} at offset 0x{r.Offset:x} lies outside the {fileSize}-byte memory file");
            foreach (var o in list)
                if (r.Base < o.Base + o.Size && o.Base < r.Base + r.Size) throw new FormatException($"region 0x{r.Base:x} overlaps region 0x{o.Base:x}");
            list.Add(r);
        }
        ulong total = 0;
        foreach (var r in list) total += r.Size;
        if (total != fileSize) throw new FormatException($"the regions hold {total} bytes, the memory file {fileSize}");
        return list.ToArray();
    }

    private static ulong Field(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.TryGetUInt64(out ulong x) ? x
            : throw new FormatException($"a mapping lacks a valid {name}");
}
