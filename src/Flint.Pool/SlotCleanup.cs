namespace Flint.Pool;

/// <summary>Removes what a stopped slot leaves on the host: its jail directory and its cgroup directories.</summary>
public static class SlotCleanup
{
    /// <summary>The slot's cgroup directories that exist: &lt;root&gt;/[&lt;controller&gt;/]&lt;parent&gt;/&lt;id&gt;.</summary>
    public static IEnumerable<string> CgroupDirs(PoolOptions o, string slotId)
    {
        if (!Directory.Exists(o.CgroupRoot)) yield break;
        string direct = Path.Combine(o.CgroupRoot, o.ParentCgroup, slotId);
        if (Directory.Exists(direct)) yield return direct;
        IEnumerable<string> mounts;
        try { mounts = Directory.GetDirectories(o.CgroupRoot); }
        catch (IOException) { yield break; }
        catch (UnauthorizedAccessException) { yield break; }
        foreach (var m in mounts)
        {
            string d = Path.Combine(m, o.ParentCgroup, slotId);
            if (Directory.Exists(d)) yield return d;
        }
    }

    /// <summary>
    /// Call after the slot's process is gone. A cgroup directory is removed with rmdir (its files are the kernel's);
    /// the kernel refuses while the exiting process is still accounted to it, so each is retried for up to a second.
    /// Returns what could not be removed (empty when all is clean).
    /// </summary>
    public static async Task<List<string>> RemoveAsync(PoolOptions o, JailLayout jail)
    {
        var left = new List<string>();
        foreach (var d in CgroupDirs(o, jail.SlotId).ToArray())
        {
            bool gone = false;
            for (int i = 0; i < 50 && !gone; i++)
            {
                try { Directory.Delete(d, recursive: false); gone = true; }
                catch (DirectoryNotFoundException) { gone = true; }
                catch (IOException) { await Task.Delay(20); }
                catch (UnauthorizedAccessException) { break; }
            }
            if (!gone) left.Add(d);
        }
        try { if (Directory.Exists(jail.JailDir)) Directory.Delete(jail.JailDir, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { left.Add(jail.JailDir); }
        return left;
    }
}
