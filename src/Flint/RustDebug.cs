using System.Text;

namespace Flint;

/// <summary>
/// Rust's `{:?}` for a string: Firecracker prints its errors' Debug form to stderr (`Error: ParseArguments(...)`),
/// and scripts that match that text should see the same quoting and escapes from flint.
/// </summary>
public static class RustDebug
{
    public static string Quote(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\0': sb.Append("\\0"); break;
                default:
                    if (char.IsControl(c)) sb.Append("\\u{").Append(((int)c).ToString("x")).Append('}');
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }
}
