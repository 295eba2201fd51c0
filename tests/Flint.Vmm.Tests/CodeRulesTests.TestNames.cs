using System.Text.RegularExpressions;

namespace Flint.Vmm.Tests;

/// <summary>
/// One naming style for tests (issue 16, docs/development.md): a test's name is its behaviour as a sentence in snake
/// case (<c>Rep_outs_writes_each_element_to_the_port</c>), in every test file. The older PascalCase names were renamed
/// by scripts/dev/rename-legacy-tests.py, which can be run again on a branch that still adds some.
/// </summary>
public sealed partial class CodeRulesTests
{
    private static readonly string Tests = Path.Combine(Repo.Root, "tests");

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

    [Fact]
    public void Test_names_are_snake_case_sentences_in_every_test_file()
    {
        var offenders = new List<string>();
        foreach (var file in Directory.EnumerateFiles(Tests, "*.cs", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            if (file.Contains("/obj/", StringComparison.Ordinal) || file.Contains("/bin/", StringComparison.Ordinal)) continue;
            var names = TestMethodNames(File.ReadLines(file)).Where(n => !IsSnakeCaseSentence(n)).ToList();
            if (names.Count > 0) offenders.Add($"  {Path.GetRelativePath(Tests, file).Replace('\\', '/')}: {string.Join(", ", names)}");
        }
        Assert.True(offenders.Count == 0,
            "tests not named as a snake-case sentence (Rep_outs_writes_each_element_to_the_port; docs/development.md; " +
            "scripts/dev/rename-legacy-tests.py renames them) in:\n" + string.Join("\n", offenders));
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
