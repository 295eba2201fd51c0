using Flint.Sys;

namespace Flint.Jailer;

/// <summary>A cgroup filesystem mount found in /proc/mounts.</summary>
public sealed record CgroupMount(string Dir, bool V2, string[] Options);

/// <summary>One cgroup the jailer creates (or joins) in one hierarchy, with the files it writes there.</summary>
public sealed class CgroupTarget
{
    public required CgroupMount Mount;
    /// <summary>Path components below the mount: the parent cgroup's, then the id (empty for a move-only target).</summary>
    public required string[] Components;
    public List<(string File, string Value)> Properties = new();
    /// <summary>v2: the controllers to enable in cgroup.subtree_control from the root down to our parent.</summary>
    public HashSet<string> Controllers = new();
    /// <summary>Where the jailer was in this hierarchy before, for moving back on a rollback.</summary>
    public string? OriginalPath;
    public bool CreateDirs = true;

    public string Location => Path.Combine([Mount.Dir, .. Components]);
    public bool HasController(string c) => Mount.Options.Contains(c);
}

/// <summary>
/// Cgroup discovery, validation and placement (Firecracker's rules): v1 puts the process in
/// <c>&lt;controller mount&gt;/&lt;parent&gt;/&lt;id&gt;</c> of every hierarchy a <c>--cgroup</c> file names, v2 in
/// <c>&lt;unified mount&gt;/&lt;parent&gt;/&lt;id&gt;</c> with the controllers enabled down the tree. With v2 and no
/// <c>--cgroup</c>, an existing <c>&lt;unified&gt;/&lt;parent&gt;</c> is joined as is.
/// </summary>
public static class Cgroups
{
    public static List<CgroupMount> ReadMounts(string procMounts = "/proc/mounts")
    {
        var list = new List<CgroupMount>();
        foreach (string line in File.ReadLines(procMounts))
        {
            string[] f = line.Split(' ');
            if (f.Length < 4) continue;
            if (f[2] != "cgroup" && f[2] != "cgroup2") continue;
            list.Add(new CgroupMount(Unescape(f[1]), f[2] == "cgroup2", f[3].Split(',')));
        }
        return list;
    }

    /// <summary>/proc/mounts escapes space, tab, newline and backslash as \ooo.</summary>
    private static string Unescape(string s)
    {
        if (!s.Contains('\\')) return s;
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && IsOct(s, i + 1))
            {
                sb.Append((char)Convert.ToInt32(s.Substring(i + 1, 3), 8));
                i += 3;
            }
            else sb.Append(s[i]);
        }
        return sb.ToString();
    }

    private static bool IsOct(string s, int i) =>
        i + 3 <= s.Length && s[i] is >= '0' and <= '7' && s[i + 1] is >= '0' and <= '7' && s[i + 2] is >= '0' and <= '7';

    /// <summary>The controller a cgroup file belongs to: the part before the first '.'.</summary>
    public static string ControllerOf(string file)
    {
        if (file.Contains('/') || file.Contains('\0'))
            throw new JailerException($"Invalid cgroup file: '{file}' (a file name, not a path).");
        int dot = file.IndexOf('.');
        if (dot <= 0 || dot == file.Length - 1)
            throw new JailerException($"Invalid cgroup file: '{file}' (expected <controller>.<property>).");
        return file[..dot];
    }

    /// <summary>Validates the parent cgroup path: relative, no '.', '..' or empty components.</summary>
    public static string[] ParentComponents(string parent)
    {
        if (parent.Length == 0 || parent.StartsWith('/'))
            throw new JailerException($"Invalid --parent-cgroup '{parent}': must be a relative path.");
        string[] parts = parent.TrimEnd('/').Split('/');
        foreach (string p in parts)
            if (p.Length == 0 || p == "." || p == "..")
                throw new JailerException($"Invalid --parent-cgroup '{parent}': '.', '..' and empty components are not allowed.");
        return parts;
    }

    /// <summary>Builds and checks the cgroup targets; creates nothing (a probe cgroup is made and removed at once
    /// when that is the only way to see whether a controller file exists).</summary>
    public static List<CgroupTarget> Plan(JailerOptions o, string execName)
    {
        var targets = new List<CgroupTarget>();
        string[] parent = ParentComponents(o.ParentCgroup ?? execName);
        if (o.Cgroups.Count == 0 && o.CgroupVersion == 1) return targets;

        List<CgroupMount> mounts = ReadMounts();
        Dictionary<string, string> own = ReadOwnCgroups();

        if (o.CgroupVersion == 2)
        {
            CgroupMount unified = mounts.FirstOrDefault(m => m.V2)
                ?? throw new JailerException("No cgroup v2 (unified) hierarchy is mounted.");
            if (o.Cgroups.Count == 0)
            {
                // Firecracker: with v2 and no --cgroup, join an existing <parent> as is; do nothing otherwise.
                if (Directory.Exists(Path.Combine([unified.Dir, .. parent])))
                    targets.Add(new CgroupTarget
                    {
                        Mount = unified, Components = parent, CreateDirs = false,
                        OriginalPath = own.GetValueOrDefault("0"),
                    });
                return targets;
            }
            HashSet<string> available = ReadWords(Path.Combine(unified.Dir, "cgroup.controllers"));
            HashSet<string> rootEnabled = ReadWords(Path.Combine(unified.Dir, "cgroup.subtree_control"));
            var t = new CgroupTarget
            {
                Mount = unified, Components = [.. parent, o.Id], OriginalPath = own.GetValueOrDefault("0"),
            };
            foreach (var (file, value) in o.Cgroups)
            {
                string c = ControllerOf(file);
                if (!available.Contains(c))
                    throw new JailerException($"Cgroup controller '{c}' (for '{file}') is not available in the cgroup v2 hierarchy at {unified.Dir} (available: {string.Join(' ', available.Order())}).");
                // A controller's files only show in children once the parent enables it; check when that is so.
                if (rootEnabled.Contains(c) && !FileExistsInChild(unified, file))
                    throw new JailerException($"Unknown cgroup file '{file}' for controller '{c}'.");
                t.Controllers.Add(c);
                t.Properties.Add((file, value));
            }
            targets.Add(t);
            return targets;
        }

        foreach (var (file, value) in o.Cgroups)
        {
            string c = ControllerOf(file);
            CgroupMount m = mounts.FirstOrDefault(x => !x.V2 && x.Options.Contains(c))
                ?? throw new JailerException($"Cgroup controller '{c}' (for '{file}') is not available: no cgroup v1 hierarchy mounts it.");
            CgroupTarget? t = targets.FirstOrDefault(x => x.Mount.Dir == m.Dir);
            if (t == null)
            {
                string? origin = null;
                foreach (var (ctrls, path) in own)
                    if (ctrls.Split(',').Any(x => x.Length > 0 && m.Options.Contains(x))) { origin = path; break; }
                t = new CgroupTarget { Mount = m, Components = [.. parent, o.Id], OriginalPath = origin };
                targets.Add(t);
            }
            if (!FileExistsInChild(m, file))
                throw new JailerException($"Unknown cgroup file '{file}' for controller '{c}' (not in {m.Dir}).");
            t.Properties.Add((file, value));
        }
        return targets;
    }

    /// <summary>Whether a non-root cgroup of this hierarchy has <paramref name="file"/>: looks in an existing child,
    /// else makes a probe cgroup and removes it.</summary>
    private static bool FileExistsInChild(CgroupMount m, string file)
    {
        foreach (string d in Directory.EnumerateDirectories(m.Dir).Take(8))
            if (File.Exists(Path.Combine(d, file))) return true;
        string probe = Path.Combine(m.Dir, $"flint-jailer-probe-{Environment.ProcessId}");
        try
        {
            Directory.CreateDirectory(probe);
            return File.Exists(Path.Combine(probe, file));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new JailerException($"Cannot create a cgroup in {m.Dir}: {e.Message}");
        }
        finally
        {
            try { Directory.Delete(probe); } catch (Exception) { /* never created */ }
        }
    }

    /// <summary>/proc/self/cgroup as controller list -> path ("0" for the v2 line).</summary>
    private static Dictionary<string, string> ReadOwnCgroups()
    {
        var d = new Dictionary<string, string>();
        foreach (string line in File.ReadLines("/proc/self/cgroup"))
        {
            string[] f = line.Split(':', 3);
            if (f.Length != 3) continue;
            d[f[0] == "0" && f[1] == "" ? "0" : f[1]] = f[2];
        }
        return d;
    }

    private static HashSet<string> ReadWords(string path)
    {
        try { return File.ReadAllText(path).Split([' ', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries).ToHashSet(); }
        catch (IOException) { return new HashSet<string>(); }
    }

    /// <summary>Creates the cgroups, writes the files and moves this process in; everything created is recorded
    /// in <paramref name="rb"/> so a later failure can undo it.</summary>
    public static void Apply(List<CgroupTarget> targets, Rollback rb)
    {
        foreach (CgroupTarget t in targets)
        {
            if (!t.CreateDirs) continue;
            string dir = t.Mount.Dir;
            foreach (string comp in t.Components)
            {
                string parentDir = dir;
                dir = Path.Combine(dir, comp);
                if (Jail.MkDir(dir, 0x1ED /* 0755 */)) rb.CgroupDirs.Add(dir);
                if (!t.Mount.V2 && t.HasController("cpuset"))
                {
                    // v1 cpuset starts with empty cpus/mems and then refuses tasks: inherit the parent's.
                    InheritIfEmpty(parentDir, dir, "cpuset.cpus");
                    InheritIfEmpty(parentDir, dir, "cpuset.mems");
                }
            }
            if (t.Mount.V2)
            {
                // Enable the controllers from the root down to the parent of our cgroup.
                string level = t.Mount.Dir;
                for (int i = 0; i < t.Components.Length; i++)
                {
                    HashSet<string> enabled = ReadWords(Path.Combine(level, "cgroup.subtree_control"));
                    foreach (string c in t.Controllers.Order())
                        if (!enabled.Contains(c)) WriteFile(Path.Combine(level, "cgroup.subtree_control"), "+" + c);
                    level = Path.Combine(level, t.Components[i]);
                }
            }
            foreach (var (file, value) in t.Properties)
            {
                string path = Path.Combine(t.Location, file);
                if (!File.Exists(path))
                    throw new JailerException($"Unknown cgroup file '{file}': {path} does not exist.");
                WriteFile(path, value);
            }
        }
        string pid = Environment.ProcessId.ToString();
        foreach (CgroupTarget t in targets)
        {
            WriteFile(Path.Combine(t.Location, "cgroup.procs"), pid);
            rb.Attached.Add(t);
        }
    }

    private static void InheritIfEmpty(string parentDir, string dir, string file)
    {
        string mine = Path.Combine(dir, file);
        if (File.ReadAllText(mine).Trim().Length != 0) return;
        string value = File.ReadAllText(Path.Combine(parentDir, file)).Trim();
        if (value.Length == 0)
            throw new JailerException($"Cannot inherit {file} for {dir}: the parent's is empty.");
        WriteFile(mine, value);
    }

    /// <summary>Writes a value to a cgroup (or proc) file with one write(), reporting errno.</summary>
    // SAFETY: write(2) gets a pinned byte array with its length.
    public static unsafe void WriteFile(string path, string value)
    {
        int fd = Libc.Open(path, Libc.O_WRONLY);
        if (fd < 0) throw new JailerException($"Cannot open {path}: {Libc.StrError(Libc.Errno)}");
        try
        {
            byte[] b = System.Text.Encoding.UTF8.GetBytes(value + "\n");
            fixed (byte* p = b)
                if (Libc.write(fd, p, (nuint)b.Length) < 0)
                    throw new JailerException($"Cannot write '{value}' to {path}: {Libc.StrError(Libc.Errno)}");
        }
        finally { Libc.close(fd); }
    }
}
