using System.Buffers.Binary;
using Flint.Snapshot;
using Xunit;

namespace Flint.Snapshot.Tests;

public class SnapshotFileTests
{
    private static byte[] Sample()
    {
        var f = new SnapshotFile();
        var w = new StateWriter();
        w.U32(7); w.U64(0x1122334455667788); w.String("rootfs"); w.String(null); w.Bool(true); w.Bytes([1, 2, 3]);
        f.Add("vcpu/0", w);
        f.Add("empty", new StateWriter());
        return f.Serialize();
    }

    private static void Recrc(byte[] b)
    {
        int end = b.Length - 8;
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(end), Crc64.Compute(b.AsSpan(0, end)));
    }

    private static string Fails(byte[] b) => Assert.Throws<SnapshotFormatException>(() => SnapshotFile.Parse(b)).Message;

    [Fact]
    public void Round_trips_sections_and_fields()
    {
        var f = SnapshotFile.Parse(Sample());
        Assert.Equal(["vcpu/0", "empty"], f.Sections.Select(s => s.Name));
        var r = f.Open("vcpu/0");
        Assert.Equal(7u, r.U32());
        Assert.Equal(0x1122334455667788UL, r.U64());
        Assert.Equal("rootfs", r.String());
        Assert.Null(r.String());
        Assert.True(r.Bool());
        Assert.Equal([1, 2, 3], r.Bytes());
        r.ExpectEnd();
        f.Open("empty").ExpectEnd();
    }

    [Fact]
    public void CRC64_matches_the_xz_check_value() => Assert.Equal(0x995DC9BBDF1939FAUL, Crc64.Compute("123456789"u8));

    [Fact]
    public void Every_truncation_is_refused_with_a_clear_error()
    {
        var b = Sample();
        for (int n = 0; n < b.Length; n++)
        {
            var e = Assert.Throws<SnapshotFormatException>(() => SnapshotFile.Parse(b[..n]));
            Assert.False(string.IsNullOrWhiteSpace(e.Message));
        }
        Assert.Contains("truncated", Fails(b[..10]));
    }

    [Fact]
    public void Every_flipped_bit_is_refused()
    {
        var good = Sample();
        for (int i = 0; i < good.Length; i++)
            for (int bit = 0; bit < 8; bit++)
            {
                var b = (byte[])good.Clone();
                b[i] ^= (byte)(1 << bit);
                Assert.Throws<SnapshotFormatException>(() => SnapshotFile.Parse(b));
            }
        var c = (byte[])good.Clone();
        c[30] ^= 1;
        Assert.Equal("CRC64 validation failed", Fails(c));
    }

    [Fact]
    public void Wrong_magic_is_refused()
    {
        var b = Sample();
        b[0] = (byte)'X';
        Recrc(b);
        Assert.StartsWith("Magic value does not match arch", Fails(b));
    }

    [Fact]
    public void Other_major_or_newer_minor_version_is_refused()
    {
        var b = Sample();
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(8), 2);
        Recrc(b);
        Assert.Equal("Invalid data version: 2.0.0", Fails(b));
        b = Sample();
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(10), 1);
        Recrc(b);
        Assert.Equal("Invalid data version: 1.1.0", Fails(b));
        b = Sample();
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(12), 9); // a patch level never changes the layout
        Recrc(b);
        SnapshotFile.Parse(b);
    }

    [Fact]
    public void Wrong_architecture_is_refused()
    {
        var b = Sample();
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16), 0xAAAA);
        Recrc(b);
        var m = Fails(b);
        Assert.StartsWith("Magic value does not match arch", m);
        Assert.Contains("0xaaaa", m);
    }

    [Fact]
    public void Lying_lengths_with_a_valid_CRC_are_refused()
    {
        // A section length past the end of the file, with a CRC recomputed over the lie.
        var b = Sample();
        int lenAt = SnapshotFormat.HeaderSize + 2 + "vcpu/0".Length;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(lenAt), 0x0010_0000);
        Recrc(b);
        Assert.Contains("truncated", Fails(b));

        b = Sample();
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(20), 100_000); // section count
        Recrc(b);
        Assert.Contains("more than", Fails(b));

        b = Sample();
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(20), 1); // fewer sections than present: trailing bytes
        Recrc(b);
        Assert.Contains("trailing", Fails(b));
    }

    [Fact]
    public void Reader_refuses_short_fields_and_huge_counts()
    {
        var w = new StateWriter();
        w.U32(5);
        var r = new StateReader("dev", w.ToArray());
        Assert.Throws<SnapshotFormatException>(() => r.U64());
        r = new StateReader("dev", w.ToArray());
        Assert.Contains("more than 4", Assert.Throws<SnapshotFormatException>(() => r.Count(4)).Message);
        r = new StateReader("dev", [2]);
        Assert.Contains("boolean", Assert.Throws<SnapshotFormatException>(() => r.Bool()).Message);
        r = new StateReader("dev", [4, 0, 0, 0, 0xff, 0xfe, 0xfd, 0xfc]);
        Assert.Contains("UTF-8", Assert.Throws<SnapshotFormatException>(() => r.String()).Message);

    }

    /// <summary>
    /// A string that is not UTF-8 is refused without a decoder exception on the way (the fuzz targets count any other
    /// exception, caught or not, as a finding: hostile input must not drive control flow through exceptions).
    /// </summary>
    [Fact]
    public void Non_UTF_8_string_is_refused_without_a_decoder_exception()
    {
        int others = 0, thread = Environment.CurrentManagedThreadId;
        void Count(object? _, System.Runtime.ExceptionServices.FirstChanceExceptionEventArgs e)
        {
            if (e.Exception is not SnapshotFormatException && Environment.CurrentManagedThreadId == thread) Interlocked.Increment(ref others);
        }
        AppDomain.CurrentDomain.FirstChanceException += Count;
        try
        {
            var r = new StateReader("dev", [4, 0, 0, 0, 0x41, 0xa3, 0x42, 0x43]);
            Assert.Contains("UTF-8", Assert.Throws<SnapshotFormatException>(() => r.String()).Message);
        }
        finally { AppDomain.CurrentDomain.FirstChanceException -= Count; }
        Assert.Equal(0, others);
    }

    [Fact]
    public void Missing_section_is_a_format_error() =>
        Assert.Contains("no vm section", Assert.Throws<SnapshotFormatException>(() => SnapshotFile.Parse(Sample()).Open("vm")).Message);

    [Fact]
    public void Describe_version_reads_the_header_only()
    {
        Assert.Equal(SnapshotFormat.VersionText, SnapshotFile.DescribeVersion(Sample()));
        Assert.Throws<SnapshotFormatException>(() => SnapshotFile.DescribeVersion(new byte[3]));
    }

    [Fact]
    public void Oversized_file_is_refused_before_reading()
    {
        string p = Path.Combine(Path.GetTempPath(), $"flint-snap-{Guid.NewGuid():N}");
        try
        {
            using (var f = File.Create(p)) f.SetLength(SnapshotFormat.MaxFileSize + 1L);
            Assert.StartsWith("Snapshot size exceeds limit", Assert.Throws<SnapshotFormatException>(() => SnapshotFile.Load(p)).Message);
        }
        finally { File.Delete(p); }
    }

    [Fact]
    public void Save_then_load_round_trips()
    {
        string p = Path.Combine(Path.GetTempPath(), $"flint-snap-{Guid.NewGuid():N}");
        try
        {
            var f = new SnapshotFile();
            var w = new StateWriter(); w.U16(9);
            f.Add("a", w);
            f.Save(p);
            Assert.Equal(9, SnapshotFile.Load(p).Open("a").U16());
        }
        finally { File.Delete(p); }
    }
}
