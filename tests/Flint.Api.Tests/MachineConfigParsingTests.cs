using Flint.Vmm.Rpc;

namespace Flint.Api.Tests;

/// <summary>
/// PUT /machine-config has an allocation-free reader for the usual bodies, and the general JSON path for the rest.
/// A key with an escaped character always takes the general path, so each body is parsed both ways and the two
/// must agree; bodies the fast reader must not accept still get the general path's serde-worded error.
/// </summary>
public class MachineConfigParsingTests
{
    private static ParsedRequest Put(string body) => ApiRequestParser.Parse("PUT", "/machine-config", body);

    /// <summary>The same body with "vcpu_count" spelled "vcpu\u005fcount": same JSON, general path only.</summary>
    private static string Escaped(string body) => body.Replace("\"vcpu_count\"", "\"vcpu\\u005fcount\"");

    [Theory]
    [InlineData("{\"vcpu_count\": 2, \"mem_size_mib\": 1024}")]
    [InlineData("{\"mem_size_mib\":0,\"vcpu_count\":0}")]
    [InlineData(" \r\n\t{ \"vcpu_count\" : 255 , \"mem_size_mib\" : 9223372036854775807 } \n")]
    [InlineData("{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"smt\": true, \"track_dirty_pages\": false, \"huge_pages\": \"2M\", \"cpu_template\": \"T2S\"}")]
    [InlineData("{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"smt\": null, \"track_dirty_pages\": null, \"huge_pages\": null, \"cpu_template\": null}")]
    [InlineData("{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"cpu_template\": \"None\", \"huge_pages\": \"Transparent\"}")]
    public void Fast_and_general_paths_agree(string body)
    {
        var fast = Put(body);
        var general = Put(Escaped(body));
        Assert.Null(general.Error);
        var a = Assert.IsType<PutMachineConfig>(fast.Action).Config;
        var b = Assert.IsType<PutMachineConfig>(general.Action).Config;
        Assert.Equal((b.VcpuCount, b.MemSizeMib, b.Smt, b.TrackDirtyPages, b.HugePages, b.CpuTemplate),
            (a.VcpuCount, a.MemSizeMib, a.Smt, a.TrackDirtyPages, a.HugePages, a.CpuTemplate));
        Assert.Equal(general.Deprecation, fast.Deprecation);
        Assert.Equal(general.Route, fast.Route);
    }

    [Theory]
    [InlineData("{\"vcpu_count\": 2}", "missing field `mem_size_mib` at line 1 column 17")]
    [InlineData("{}", "missing field `vcpu_count` at line 1 column 2")]
    [InlineData("{\"vcpu_count\": 2, \"mem_size_mib\": 1024,}", "trailing comma at line 1 column 40")]
    [InlineData("{\"vcpu_count\": 02, \"mem_size_mib\": 1024}", "invalid number at line 1 column 17")]
    [InlineData("{\"vcpu_count\": -1, \"mem_size_mib\": 1024}", "invalid value: integer `-1`, expected u8 at line 1 column 17")]
    [InlineData("{\"vcpu_count\": 2.0, \"mem_size_mib\": 1024}", "invalid type: floating point `2.0`, expected u8 at line 1 column 18")]
    [InlineData("{\"vcpu_count\": 256, \"mem_size_mib\": 1024}", "invalid value: integer `256`, expected u8 at line 1 column 18")]
    [InlineData("{\"vcpu_count\": 2, \"vcpu_count\": 2, \"mem_size_mib\": 1024}", "duplicate field `vcpu_count` at line 1 column 30")]
    [InlineData("{\"vcpu_count\": 2, \"mem_size_mib\": 1024, \"foo\": 1}", "unknown field `foo`, expected one of `vcpu_count`, `mem_size_mib`, `smt`, `cpu_template`, `track_dirty_pages`, `huge_pages` at line 1 column 45")]
    [InlineData("{\"vcpu_count\": 2, \"mem_size_mib\": 1024, \"smt\": 1}", "invalid type: integer `1`, expected a boolean at line 1 column 48")]
    [InlineData("{\"vcpu_count\": null, \"mem_size_mib\": 1024}", "invalid type: null, expected u8 at line 1 column 19")]
    [InlineData("{\"vcpu_count\": 2, \"mem_size_mib\": 1024, \"huge_pages\": \"none\"}", "unknown variant `none`, expected one of `None`, `Transparent`, `2M` at line 1 column 60")]
    [InlineData("{\"vcpu_count\": 2, \"mem_size_mib\": 1024} x", "trailing characters at line 1 column 41")]
    public void Bodies_the_fast_reader_refuses_get_the_general_paths_error(string body, string serdeText)
    {
        var p = Put(body);
        Assert.Null(p.Action);
        Assert.Equal("An error occurred when deserializing the json body of a request: " + serdeText + ".", p.Error!.Message);
    }

    [Fact]
    public void A_memory_size_beyond_i64_is_refused_not_wrapped()
    {
        // usize takes it, MachineConfig's long does not: an error either way, never a negative size.
        var p = Put("{\"vcpu_count\": 2, \"mem_size_mib\": 9223372036854775808}");
        Assert.Null(p.Action);
        Assert.NotNull(p.Error);
    }
}
