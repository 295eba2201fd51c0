using System.Text;
using System.Text.Json;
using Flint.Devices.RateLimiting;

namespace Flint.Devices.Tests.RateLimiting;

public sealed class RateLimiterJsonTests
{
    private static RateLimiterConfig Parse(string json) => RateLimiterJson.Parse(Encoding.UTF8.GetBytes(json));

    [Fact]
    public void Parses_Firecracker_shape()
    {
        var c = Parse("""{"bandwidth": {"size": 1000, "one_time_burst": 5000, "refill_time": 100}, "ops": {"size": 10, "refill_time": 1000}}""");
        Assert.Equal(new TokenBucketConfig(1000, 5000, 100), c.Bandwidth);
        Assert.Equal(new TokenBucketConfig(10, null, 1000), c.Ops);
    }

    [Fact]
    public void Absent_and_null_buckets_are_null()
    {
        Assert.Equal(RateLimiterConfig.None, Parse("{}"));
        Assert.Equal(RateLimiterConfig.None, Parse("null"));
        var c = Parse("""{"bandwidth": null, "ops": {"size": 1, "refill_time": 1, "one_time_burst": null}}""");
        Assert.Null(c.Bandwidth);
        Assert.Equal(new TokenBucketConfig(1, null, 1), c.Ops);
    }

    [Fact]
    public void Zero_size_is_a_valid_disabled_bucket()
    {
        var c = Parse("""{"ops": {"size": 0, "refill_time": 0}}""");
        Assert.True(c.Ops!.IsDisabled);
    }

    [Theory]
    [InlineData("""{"bandwidth": {"size": 1}}""")]
    [InlineData("""{"bandwidth": {"refill_time": 1}}""")]
    [InlineData("""{"bandwidth": {"size": -1, "refill_time": 1}}""")]
    [InlineData("""{"bandwidth": {"size": 1.5, "refill_time": 1}}""")]
    [InlineData("""{"bandwidth": {"size": "1", "refill_time": 1}}""")]
    [InlineData("""{"bandwidth": {"size": 18446744073709551616, "refill_time": 1}}""")]
    [InlineData("""{"bandwidth": {"size": 1, "refill_time": 1, "burst": 1}}""")]
    [InlineData("""{"bytes": {"size": 1, "refill_time": 1}}""")]
    [InlineData("""{"bandwidth": 5}""")]
    [InlineData("""[1]""")]
    [InlineData("""{"bandwidth": """)]
    public void Rejects_malformed_bodies(string json)
    {
        Assert.Throws<RateLimiterConfigException>(() => Parse(json));
    }

    [Fact]
    public void Writes_what_it_reads()
    {
        var c = new RateLimiterConfig(new TokenBucketConfig(ulong.MaxValue, 7, 100), new TokenBucketConfig(10, null, 1000));
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms)) RateLimiterJson.Write(w, c);
        string json = Encoding.UTF8.GetString(ms.ToArray());
        Assert.Equal("""{"bandwidth":{"size":18446744073709551615,"one_time_burst":7,"refill_time":100},"ops":{"size":10,"refill_time":1000}}""", json);
        Assert.Equal(c, Parse(json));
    }

    [Fact]
    public void Parses_an_element_from_a_larger_document()
    {
        using var doc = JsonDocument.Parse("""{"drive_id": "rootfs", "rate_limiter": {"ops": {"size": 3, "refill_time": 30}}}""");
        var c = RateLimiterJson.Parse(doc.RootElement.GetProperty("rate_limiter"));
        Assert.Equal(new TokenBucketConfig(3, null, 30), c.Ops);
        using var rl = new RateLimiter(c, new FakeClock());
        Assert.Equal(c, rl.Config);
    }
}
