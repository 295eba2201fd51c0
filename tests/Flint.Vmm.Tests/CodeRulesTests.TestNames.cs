using System.Text.RegularExpressions;

namespace Flint.Vmm.Tests;

/// <summary>
/// One naming style for tests (issue 16, docs/development.md): a test's name is its behaviour as a sentence in snake
/// case (<c>Rep_outs_writes_each_element_to_the_port</c>). The older files written in PascalCase are listed in
/// tests/legacy-pascalcase-tests.txt (a test added to one follows its file); the list may only shrink.
/// </summary>
public sealed partial class CodeRulesTests
{
    private static readonly string Tests = Path.Combine(Repo.Root, "tests");
    private static readonly string LegacyList = Path.Combine(Tests, "legacy-pascalcase-tests.txt");

    [GeneratedRegex(@"^\s*\[(Fact|Theory|SkippableFact|SkippableTheory)\b")]
    private static partial Regex TestAttribute();

    [GeneratedRegex(@"\b(\w+)\s*\(")]
    private static partial Regex MethodName();

    /// <summary>A sentence in snake case has at least three words; PascalCase names have none or one underscore
    /// (<c>PipelinedRequestsInOneWrite</c>, <c>Clause_OtherClause</c>).</summary>
    internal static bool IsSnakeCaseSentence(string name) => name.Count(c => c == '_') >= 2;

    /// <summary>The test methods of one file: the name after each [Fact]/[Theory] and the attributes under it.</summary>
    internal static IEnumerable<string> TestMethodNames(IEnumerable<string> lines)
    {
        bool pending = false;
        foreach (var line in lines)
        {
            if (TestAttribute().IsMatch(line)) { pending = true; continue; }
            if (!pending) continue;
            string t = line.TrimStart();
            if (t.StartsWith('[') || t.StartsWith("//", StringComparison.Ordinal) || t.Length == 0) continue;
            var m = MethodName().Match(t);
            if (m.Success) { pending = false; yield return m.Groups[1].Value; }
        }
    }

    /// <summary>Each test file (relative to tests/, '/' separated) that holds a test not named as a snake-case sentence.</summary>
    private static SortedSet<string> FilesWithPascalCaseTests()
    {
        var files = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(Tests, "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains("/obj/", StringComparison.Ordinal) || file.Contains("/bin/", StringComparison.Ordinal)) continue;
            if (TestMethodNames(File.ReadLines(file)).Any(n => !IsSnakeCaseSentence(n)))
                files.Add(Path.GetRelativePath(Tests, file).Replace('\\', '/'));
        }
        return files;
    }

    [Fact]
    public void Test_names_are_snake_case_sentences_outside_the_listed_older_files()
    {
        var listed = new SortedSet<string>(
            File.ReadLines(LegacyList).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')), StringComparer.Ordinal);
        var actual = FilesWithPascalCaseTests();
        var unlisted = actual.Except(listed).ToList();
        var stale = listed.Except(actual).ToList();
        if (stale.Count > 0 && unlisted.Count == 0 && Environment.GetEnvironmentVariable("FLINT_UPDATE_DOCS") == "1")
        {
            var header = File.ReadLines(LegacyList).TakeWhile(l => l.StartsWith('#'));
            File.WriteAllLines(LegacyList, header.Concat(actual));
            return;
        }
        Assert.True(unlisted.Count == 0,
            "tests not named as a snake-case sentence (Rep_outs_writes_each_element_to_the_port; docs/development.md) in:\n" +
            string.Join("\n", unlisted.Select(f => $"  {f}: " +
                string.Join(", ", TestMethodNames(File.ReadLines(Path.Combine(Tests, f))).Where(n => !IsSnakeCaseSentence(n))))));
        Assert.True(stale.Count == 0,
            "tests/legacy-pascalcase-tests.txt lists files whose tests are all snake case now; drop them from the list " +
            "(FLINT_UPDATE_DOCS=1 rewrites it):\n  " + string.Join("\n  ", stale));
    }

    [Theory]
    [InlineData("Rep_outs_writes_each_element_to_the_port", true)]
    [InlineData("FlushMetrics_on_a_full_disk_answers_an_error", true)]
    [InlineData("PipelinedRequestsInOneWrite", false)]
    [InlineData("ConfigSpace_ReadsBackWrites", false)]
    public void A_snake_case_sentence_has_at_least_three_words(string name, bool snake) =>
        Assert.Equal(snake, IsSnakeCaseSentence(name));

    [Fact]
    public void Test_method_names_are_read_past_data_attributes_and_comments()
    {
        string[] lines =
        [
            "    [Theory]",
            "    [InlineData(1)] // one",
            "    [Trait(\"Needs\", \"kvm\")]",
            "    public void Some_named_test(int x) { }",
            "    private static void NotATest() { }",
            "    [Fact]",
            "    public async Task OlderStyle() { }",
        ];
        Assert.Equal(["Some_named_test", "OlderStyle"], TestMethodNames(lines).ToArray());
    }
}
