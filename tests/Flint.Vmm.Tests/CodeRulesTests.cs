using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Flint.Vmm.Tests;

/// <summary>
/// Rules about the source tree that a reviewer would otherwise have to remember (issue 16): every unsafe context says
/// why it is sound, the projects form no cycle and the device model never references KVM, and docs/architecture.md's
/// dependency picture is the csproj references as they are. (P/Invoke placement: Flint.Devices.Tests' InteropLayerTests.)
/// </summary>
public sealed partial class CodeRulesTests
{
    private static readonly string Src = Path.Combine(Repo.Root, "src");

    private static IEnumerable<string> SourceFiles() =>
        Directory.EnumerateFiles(Src, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/obj/") && !f.Contains("/bin/"))
            .OrderBy(f => f, StringComparer.Ordinal);

    [GeneratedRegex(@"\bunsafe\b")]
    private static partial Regex UnsafeKeyword();

    /// <summary>The code part of a line: before a // comment, with string literals blanked (crude, enough for this tree).</summary>
    private static string CodeOf(string line)
    {
        var sb = new StringBuilder();
        bool inString = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (!inString && c == '/' && i + 1 < line.Length && line[i + 1] == '/') break;
            if (c == '"') inString = !inString;
            sb.Append(inString ? ' ' : c);
        }
        return sb.ToString();
    }

    private static bool IsCommentOrAttribute(string line)
    {
        string t = line.TrimStart();
        return t.StartsWith("//", StringComparison.Ordinal) || t.StartsWith('[');
    }

    /// <summary>
    /// Every `unsafe` (type, member or block) in src/ carries a one-line `// SAFETY:` reason: on its line, in the
    /// comments and attributes directly above it, or (for a block) on the first lines inside it. Cloud Hypervisor
    /// refuses undocumented unsafe the same way.
    /// </summary>
    [Fact]
    public void Every_unsafe_context_in_src_says_why_it_is_sound()
    {
        var missing = new List<string>();
        foreach (var file in SourceFiles())
        {
            var lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
            {
                if (!UnsafeKeyword().IsMatch(CodeOf(lines[i]))) continue;
                bool documented = lines[i].Contains("SAFETY:", StringComparison.Ordinal);
                for (int j = i - 1; !documented && j >= 0 && IsCommentOrAttribute(lines[j]); j--)
                    documented = lines[j].Contains("SAFETY:", StringComparison.Ordinal);
                for (int j = i + 1; !documented && j < lines.Length && j <= i + 2; j++)
                    documented = lines[j].Contains("// SAFETY:", StringComparison.Ordinal);
                if (!documented) missing.Add($"{Path.GetRelativePath(Repo.Root, file)}:{i + 1}: {lines[i].Trim()}");
            }
        }
        Assert.True(missing.Count == 0, "unsafe without a `// SAFETY:` reason:\n" + string.Join("\n", missing));
    }

    /// <summary>Each src/ project and the src/ projects it references, from the csproj files.</summary>
    internal static SortedDictionary<string, SortedSet<string>> ProjectReferences()
    {
        var graph = new SortedDictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var csproj in Directory.EnumerateFiles(Src, "*.csproj", SearchOption.AllDirectories))
        {
            var refs = XDocument.Load(csproj).Descendants("ProjectReference")
                .Select(r => Path.GetFileNameWithoutExtension((string)r.Attribute("Include")!.Value.Replace('\\', '/')));
            graph[Path.GetFileNameWithoutExtension(csproj)] = new SortedSet<string>(refs, StringComparer.Ordinal);
        }
        return graph;
    }

    [Fact]
    public void Projects_form_no_cycle_and_the_device_model_never_reaches_kvm()
    {
        var graph = ProjectReferences();
        IEnumerable<string> Reach(string from)
        {
            var seen = new HashSet<string>();
            var todo = new Stack<string>(graph[from]);
            while (todo.TryPop(out var p))
                if (seen.Add(p)) foreach (var q in graph.GetValueOrDefault(p) ?? []) todo.Push(q);
            return seen;
        }
        foreach (var p in graph.Keys) Assert.DoesNotContain(p, Reach(p));
        Assert.DoesNotContain("Flint.Kvm", Reach("Flint.Devices"));
    }

    /// <summary>The mermaid picture of <see cref="ProjectReferences"/>: one edge per reference, sorted.</summary>
    internal static string DependencyPicture()
    {
        var sb = new StringBuilder("```mermaid\ngraph TD\n");
        foreach (var (project, refs) in ProjectReferences())
        {
            if (refs.Count == 0) sb.Append($"    {Node(project)}\n");
            foreach (var r in refs) sb.Append($"    {Node(project)} --> {Node(r)}\n");
        }
        return sb.Append("```\n").ToString();
        static string Node(string p) => $"{p.Replace('.', '_')}[{p}]";
    }

    private const string Begin = "<!-- project-references: generated by CodeRulesTests; FLINT_UPDATE_DOCS=1 rewrites it -->\n";
    private const string End = "<!-- end project-references -->";

    /// <summary>
    /// docs/architecture.md shows the projects exactly as their csproj files reference each other. After changing a
    /// reference, run this test with FLINT_UPDATE_DOCS=1 to rewrite the picture.
    /// </summary>
    [Fact]
    public void Architecture_page_shows_the_project_references_as_they_are()
    {
        string path = Path.Combine(Repo.Root, "docs", "architecture.md");
        string doc = File.ReadAllText(path);
        int b = doc.IndexOf(Begin, StringComparison.Ordinal), e = doc.IndexOf(End, StringComparison.Ordinal);
        Assert.True(b >= 0 && e > b, $"docs/architecture.md lacks the generated block ({Begin.Trim()} ... {End})");
        string current = doc[(b + Begin.Length)..e], expected = DependencyPicture();
        if (current != expected && Environment.GetEnvironmentVariable("FLINT_UPDATE_DOCS") == "1")
        {
            File.WriteAllText(path, doc[..(b + Begin.Length)] + expected + doc[e..]);
            return;
        }
        Assert.True(current == expected, "docs/architecture.md's dependency picture is stale; it should read:\n" + expected);
    }
}
