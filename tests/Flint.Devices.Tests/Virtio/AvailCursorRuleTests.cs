using System.Text.RegularExpressions;

namespace Flint.Devices.Tests.Virtio;

/// <summary>
/// Devices move a queue's avail cursor only through <c>VirtQueue.TryPop</c>/<c>UndoPop</c>: a device that writes
/// <c>NextAvail</c> itself (the old <c>q.NextAvail--</c>) can skip or replay chains the queue does not know about.
/// </summary>
public sealed partial class AvailCursorRuleTests
{
    [GeneratedRegex(@"NextAvail\s*(=(?!=)|--|\+\+|[-+]=)")]
    private static partial Regex CursorWrite();

    [Fact]
    public void Only_the_queue_writes_NextAvail()
    {
        string root = RepoRoot();
        var offenders = Directory.EnumerateFiles(Path.Combine(root, "src"), "*.cs", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(root, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Where(f => !f.Contains("/obj/") && f != "src/Flint.Devices/Virtio/VirtQueue.cs")
            .Where(f => CursorWrite().IsMatch(File.ReadAllText(Path.Combine(root, f))))
            .ToList();
        Assert.Empty(offenders);
    }

    [Fact]
    public void The_rule_catches_the_old_vsock_write()
    {
        Assert.Matches(CursorWrite(), "q.NextAvail--; // nothing to say after all");
        Assert.Matches(CursorWrite(), "q.NextAvail = (ushort)(q.NextAvail - 1);");
        Assert.DoesNotMatch(CursorWrite(), "if (q.NextAvail == 0) return;");
    }

    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Flint.sln"))) return d.FullName;
        throw new InvalidOperationException("Flint.sln not found above " + AppContext.BaseDirectory);
    }
}
