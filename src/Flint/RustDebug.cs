using System.Text;

namespace Flint;

/// <summary>
/// Rust's `{:?}` for a string: Firecracker prints its errors' Debug form to stderr (`Error: ParseArguments(...)`),
/// and scripts that match that text should see the same quoting and escapes from flint.
/// </summary>
public static class RustDebug
{
    /// <summary>The one implementation lives beside the API log lines, which quote request bodies the same way.</summary>
    public static string Quote(string s)
    {
        var sb = new StringBuilder(s.Length + 2);
        Flint.Vmm.Logging.ApiLogLines.AppendDebugQuoted(sb, s);
        return sb.ToString();
    }
}
