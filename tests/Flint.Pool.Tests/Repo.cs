namespace Flint.Pool.Tests;

internal static class Repo
{
    public static readonly string Root = FindRoot();
    public static string Bin(string name) => Path.Combine(Root, "artifacts", "bin", name);
    public static string GuestDir => Path.Combine(Root, "artifacts", "guest");

    private static string FindRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d != null && !File.Exists(Path.Combine(d.FullName, "Flint.sln"))) d = d.Parent;
        return d?.FullName ?? throw new InvalidOperationException("Flint.sln not found above " + AppContext.BaseDirectory);
    }

    public static bool IsRoot => Environment.UserName == "root";

    /// <summary>Processes whose command line mentions <paramref name="needle"/> (a pool directory): none may outlive a drain.</summary>
    public static int[] ProcessesMentioning(string needle)
    {
        var found = new List<int>();
        foreach (var d in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(d), out int pid) || pid == Environment.ProcessId) continue;
            try
            {
                var cmd = File.ReadAllText(Path.Combine(d, "cmdline")).Replace('\0', ' ');
                if (cmd.Contains(needle, StringComparison.Ordinal)) found.Add(pid);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return [.. found];
    }
}
