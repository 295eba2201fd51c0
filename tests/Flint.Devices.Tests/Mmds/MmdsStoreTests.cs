using Flint.Devices.Mmds;

namespace Flint.Devices.Tests.Mmds;

public sealed class MmdsStoreTests
{
    private const string Doc = """{"latest":{"meta-data":{"ami-id":"ami-1","reservation-id":"r-2","network":{"x":"y"},"n":5,"arr":["a","b"]}}}""";

    [Fact]
    public void PUT_GET_and_IMDS_rendering()
    {
        var s = new MmdsStore();
        Assert.Equal("{}", s.GetJson());
        Assert.Equal(404, s.Lookup("/latest", false).Status);
        s.Put(Doc);
        Assert.True(s.IsInitialized);
        Assert.Equal("meta-data/", s.Lookup("/latest", false).Body);
        Assert.Equal("ami-id\narr\nn\nnetwork/\nreservation-id", s.Lookup("/latest/meta-data", false).Body);
        Assert.Equal("ami-1", s.Lookup("/latest/meta-data/ami-id", false).Body);
        Assert.Equal("\"ami-1\"", s.Lookup("/latest/meta-data/ami-id", true).Body);
        Assert.Equal("{\"x\":\"y\"}", s.Lookup("/latest/meta-data/network", true).Body);
        Assert.Equal("b", s.Lookup("/latest/meta-data/arr/1", false).Body);
        Assert.Equal(501, s.Lookup("/latest/meta-data/n", false).Status);
        Assert.Equal(200, s.Lookup("/latest/meta-data/n", true).Status);
        Assert.Equal(404, s.Lookup("/latest/nope", false).Status);
        Assert.Equal(404, s.Lookup("/latest/meta-data/ami-id/deeper", false).Status);
    }

    [Fact]
    public void Merge_patch_follows_RFC_7396()
    {
        var s = new MmdsStore();
        Assert.Equal(400, Assert.Throws<MmdsStoreException>(() => s.Patch("{}")).StatusCode);
        s.Put("""{"a":"b","c":{"d":"e","f":"g"}}""");
        s.Patch("""{"a":"z","c":{"f":null},"h":[1]}""");
        Assert.Equal("""{"a":"z","c":{"d":"e"},"h":[1]}""", s.GetJson());
        s.Patch("""["x"]""");
        Assert.Equal("""["x"]""", s.GetJson());
    }

    [Fact]
    public void Invalid_JSON_is_400_and_too_big_is_413()
    {
        var s = new MmdsStore(sizeLimit: 64);
        Assert.Equal(400, Assert.Throws<MmdsStoreException>(() => s.Put("{nope")).StatusCode);
        s.Put("""{"a":"1"}""");
        var big = "{\"a\":\"" + new string('x', 100) + "\"}";
        Assert.Equal(413, Assert.Throws<MmdsStoreException>(() => s.Put(big)).StatusCode);
        Assert.Equal(413, Assert.Throws<MmdsStoreException>(() => s.Patch(big)).StatusCode);
        Assert.Equal("""{"a":"1"}""", s.GetJson()); // unchanged after failures
    }

    [Fact]
    public void Duplicate_keys_last_wins()
    {
        var s = new MmdsStore();
        s.Put("""{"a":"1","a":"2"}""");
        Assert.Equal("""{"a":"2"}""", s.GetJson());
    }
}
