using Flint.Devices.Mmds;

namespace Flint.Fuzz;

/// <summary>The metadata every MMDS target serves: nested objects, a list, strings and numbers (each path kind).</summary>
public static class MmdsSeedData
{
    public const string Json = """
        {"latest": {"meta-data": {"ami-id": "ami-123", "tags": {"a": "b", "n": 1, "list": [1, "x", {"k": null}]},
          "network": {"interfaces": {"macs": {"06:00:ac:10:00:02": {"local-ipv4s": "172.16.0.2"}}}}}, "user-data": "abc"}}
        """;

    public static MmdsStore Store()
    {
        var s = new MmdsStore();
        s.Put(Json);
        return s;
    }
}
