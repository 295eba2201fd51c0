namespace Flint.Seccomp.Tests;

public class CompilerTests
{
    private const uint Allow = Bpf.SECCOMP_RET_ALLOW, Trap = Bpf.SECCOMP_RET_TRAP, Kill = Bpf.SECCOMP_RET_KILL_PROCESS;

    private static SockFilter[] CompileOne(string filterJson) => BpfCompiler.CompileJson($"{{\"t\": {filterJson}}}")["t"];

    private static string Filter(string rules, string def = "\"trap\"", string act = "\"allow\"")
        => $"{{\"default_action\": {def}, \"filter_action\": {act}, \"filter\": [{rules}]}}";

    [Fact]
    public void Small_filter_compiles_to_exact_program()
    {
        var prog = CompileOne(Filter("""{"syscall": "read"}, {"syscall": "ioctl", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 44672, "comment": "KVM_RUN"}]}"""));
        SockFilter[] expected =
        [
            new(0x20, 0, 0, 4),                    // ld arch
            new(0x15, 1, 0, 0xC000003E),           // jeq AUDIT_ARCH_X86_64
            new(0x06, 0, 0, Kill),                 // ret kill_process
            new(0x20, 0, 0, 0),                    // ld nr
            new(0x15, 2, 0, 0),                    // jeq read -> 7
            new(0x15, 2, 0, 16),                   // jeq ioctl -> 8
            new(0x06, 0, 0, Trap),                 // default
            new(0x06, 0, 0, Allow),                // read: allow
            new(0x20, 0, 0, 24),                   // ioctl: ld args[1].lo
            new(0x15, 0, 1, 44672),                // jeq KVM_RUN
            new(0x06, 0, 0, Allow),
            new(0x06, 0, 0, Trap),
        ];
        Assert.Equal(expected, prog);
        Assert.Equal(Allow, BpfInterpreter.Run(prog, 0));
        Assert.Equal(Allow, BpfInterpreter.Run(prog, 16, [3, 44672]));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, 16, [3, 44673]));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, 1));
        Assert.Equal(Kill, BpfInterpreter.Run(prog, 0, arch: 0x40000003 /* i386 */));
    }

    [Fact]
    public void Actions_map_to_kernel_return_values()
    {
        Assert.Equal(Bpf.SECCOMP_RET_ERRNO | 1, BpfInterpreter.Run(CompileOne(Filter("""{"syscall": "read"}""", "{\"errno\": 1}")), 1));
        Assert.Equal(Bpf.SECCOMP_RET_ERRNO | 13, BpfInterpreter.Run(CompileOne(Filter("""{"syscall": "read"}""", "\"errno(13)\"")), 1));
        Assert.Equal(Bpf.SECCOMP_RET_KILL_THREAD, BpfInterpreter.Run(CompileOne(Filter("""{"syscall": "read"}""", "\"kill_thread\"")), 1));
        Assert.Equal(Kill, BpfInterpreter.Run(CompileOne(Filter("""{"syscall": "read"}""", "\"kill_process\"")), 1));
        Assert.Equal(Kill, BpfInterpreter.Run(CompileOne(Filter("""{"syscall": "read"}""", "\"kill\"")), 1));
        Assert.Equal(Bpf.SECCOMP_RET_LOG, BpfInterpreter.Run(CompileOne(Filter("""{"syscall": "read"}""", "\"log\"")), 1));
        Assert.Equal(Bpf.SECCOMP_RET_LOG, BpfInterpreter.Run(CompileOne(Filter("""{"syscall": "read"}""", "\"trap\"", "\"log\"")), 0));
        Assert.Equal(Bpf.SECCOMP_RET_TRACE | 7, BpfInterpreter.Run(CompileOne(Filter("""{"syscall": "read"}""", "{\"trace\": 7}")), 1));
    }

    private static readonly ulong[] Interesting =
    [
        0, 1, 2, 5, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x1_0000_0000, 0x1_0000_0001, 0x1_ffff_ffff,
        0x2_0000_0000, 0x1234_5678_9abc_def0, 0xffff_ffff_0000_0000, 0xffff_ffff_ffff_fffe, ulong.MaxValue,
    ];

    private static bool Reference(string op, ulong arg, ulong val, ulong mask) => op switch
    {
        "eq" => arg == val,
        "ne" => arg != val,
        "lt" => arg < val,
        "le" => arg <= val,
        "gt" => arg > val,
        "ge" => arg >= val,
        "masked_eq" => (arg & mask) == val,
        _ => throw new ArgumentException(op),
    };

    [Theory]
    [InlineData("eq")]
    [InlineData("ne")]
    [InlineData("lt")]
    [InlineData("le")]
    [InlineData("gt")]
    [InlineData("ge")]
    [InlineData("masked_eq")]
    public void Qword_compares_match_reference_semantics(string op)
    {
        foreach (ulong val in Interesting)
        {
            ulong mask = 0xffff_0000_ffff_00ff;
            ulong v = op == "masked_eq" ? val & mask : val;
            string opJson = op == "masked_eq" ? $"{{\"masked_eq\": {mask}}}" : $"\"{op}\"";
            var prog = CompileOne(Filter($$"""{"syscall": "mmap", "args": [{"index": 4, "type": "qword", "op": {{opJson}}, "val": {{v}}}]}"""));
            foreach (ulong arg in Interesting.Concat([v, v + 1, v - 1]))
            {
                uint expected = Reference(op, arg, v, mask) ? Allow : Trap;
                Assert.True(expected == BpfInterpreter.Run(prog, 9, [0, 0, 0, 0, arg, 0]), $"{op}: arg 0x{arg:x} vs 0x{v:x}");
            }
        }
    }

    [Theory]
    [InlineData("eq")]
    [InlineData("ne")]
    [InlineData("lt")]
    [InlineData("le")]
    [InlineData("gt")]
    [InlineData("ge")]
    [InlineData("masked_eq")]
    public void Dword_compares_look_only_at_the_low_word(string op)
    {
        foreach (ulong val in Interesting.Where(x => x <= uint.MaxValue))
        {
            ulong mask = 0xf0f0_ff00;
            ulong v = op == "masked_eq" ? val & mask : val;
            string extra = op == "masked_eq" ? $", \"mask\": {mask}" : "";
            var prog = CompileOne(Filter($$"""{"syscall": "socket", "args": [{"index": 0, "type": "dword", "op": "{{op}}", "val": {{v}}{{extra}}}]}"""));
            foreach (ulong arg in Interesting)
            {
                uint expected = Reference(op, arg & 0xffff_ffff, v, mask) ? Allow : Trap;
                Assert.True(expected == BpfInterpreter.Run(prog, 41, [arg]), $"{op}: arg 0x{arg:x} vs 0x{v:x}");
            }
        }
    }

    [Fact]
    public void Conditions_are_anded_and_rules_ored()
    {
        var prog = CompileOne(Filter("""
            {"syscall": "socket", "args": [{"index": 0, "type": "dword", "op": "eq", "val": 1}, {"index": 1, "type": "dword", "op": "eq", "val": 524289}]},
            {"syscall": "socket", "args": [{"index": 0, "type": "dword", "op": "eq", "val": 40}]}
            """));
        Assert.Equal(Allow, BpfInterpreter.Run(prog, 41, [1, 524289]));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, 41, [1, 1]));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, 41, [2, 524289]));
        Assert.Equal(Allow, BpfInterpreter.Run(prog, 41, [40, 5]));
    }

    [Fact]
    public void Far_jumps_with_many_rules_resolve()
    {
        // 300 syscalls, each allowed only when arg0 == its number: the dispatch chain and the rule blocks are far apart.
        var names = Enumerable.Range(0, 335).Select(SyscallTable.GetName).Where(n => n != null).Take(300).ToList();
        string rules = string.Join(",\n", names.Select(n =>
        {
            SyscallTable.TryGetNumber(n!, out int nr);
            return $$"""{"syscall": "{{n}}", "args": [{"index": 0, "type": "qword", "op": "eq", "val": {{nr + 1000}}}]}""";
        }));
        var prog = CompileOne(Filter(rules));
        Assert.True(prog.Length > 1000, $"only {prog.Length} instructions");
        Assert.Contains(prog, i => i.Code == Bpf.Ja);
        foreach (var n in names)
        {
            SyscallTable.TryGetNumber(n!, out int nr);
            Assert.Equal(Allow, BpfInterpreter.Run(prog, nr, [(ulong)nr + 1000]));
            Assert.Equal(Trap, BpfInterpreter.Run(prog, nr, [(ulong)nr]));
        }
        Assert.Equal(Trap, BpfInterpreter.Run(prog, 400));
    }

    [Fact]
    public void Far_jumps_inside_one_long_rule_resolve()
    {
        // One rule with 80 qword conditions (~400 instructions): an early failure must jump past all of them.
        string conds = string.Join(",", Enumerable.Range(0, 80).Select(i => $$"""{"index": {{i % 6}}, "type": "qword", "op": "ne", "val": {{i + 100}}}"""));
        var prog = CompileOne(Filter($$"""{"syscall": "read", "args": [{{conds}}]}, {"syscall": "read", "args": [{"index": 0, "type": "dword", "op": "eq", "val": 100}, {"index": 1, "type": "dword", "op": "eq", "val": 7}]}"""));
        Assert.True(prog.Length > 300);
        Assert.Equal(Allow, BpfInterpreter.Run(prog, 0, [1, 2, 3, 4, 5, 6]));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, 0, [100, 2, 3, 4, 5, 6]));   // first condition fails, second rule fails
        Assert.Equal(Allow, BpfInterpreter.Run(prog, 0, [100, 7, 3, 4, 5, 6]));  // first rule fails, second matches
        Assert.Equal(Trap, BpfInterpreter.Run(prog, 0, [1, 2, 3, 4, 5, 177]));  // a late condition (index 5 != 177) fails
    }

    [Theory]
    [InlineData("""{"syscall": "no_such_syscall"}""", "unknown syscall 'no_such_syscall'")]
    [InlineData("""{"syscall": "read", "args": [{"index": 6, "type": "dword", "op": "eq", "val": 1}]}""", "argument index 6 is out of range")]
    [InlineData("""{"syscall": "read", "args": [{"index": 0, "type": "dword", "op": "equals", "val": 1}]}""", "bad op \"equals\"")]
    [InlineData("""{"syscall": "read", "args": [{"index": 0, "type": "word", "op": "eq", "val": 1}]}""", "bad argument type \"word\"")]
    [InlineData("""{"syscall": "read", "args": [{"index": 0, "type": "dword", "op": "eq"}]}""", "missing 'val'")]
    [InlineData("""{"syscall": "read", "args": [{"index": 0, "type": "dword", "op": "eq", "val": 4294967296}]}""", "does not fit a dword")]
    [InlineData("""{"syscall": "read", "args": [{"index": 0, "type": "dword", "op": "eq", "val": -1}]}""", "'val' must be a non-negative integer")]
    [InlineData("""{"syscall": "read", "args": [{"index": 0, "type": "dword", "op": "masked_eq", "val": 1}]}""", "masked_eq needs a mask")]
    [InlineData("""{"syscall": "read", "argz": []}""", "unknown field 'argz'")]
    [InlineData("""{"comment": "no name"}""", "missing 'syscall'")]
    public void Invalid_rules_are_rejected_with_clear_errors(string rule, string expected)
    {
        var e = Assert.Throws<SeccompConfigException>(() => BpfCompiler.CompileJson($"{{\"vmm\": {Filter(rule)}}}"));
        Assert.Contains(expected, e.Message);
        Assert.Contains("vmm.filter[0]", e.Message);
    }

    [Theory]
    [InlineData("""{"vmm": {"default_action": "explode", "filter_action": "allow", "filter": []}}""", "unknown action \"explode\"")]
    [InlineData("""{"vmm": {"filter_action": "allow", "filter": []}}""", "missing 'default_action'")]
    [InlineData("""{"vmm": {"default_action": "trap", "filter_action": "allow", "filter": {}}}""", "must be an array")]
    [InlineData("""{"vmm": {"default_action": "trap", "filter_action": "allow", "filter": [] """, "Invalid seccomp filter JSON")]
    [InlineData("""[1, 2]""", "top level must be an object")]
    public void Invalid_documents_are_rejected(string json, string expected)
    {
        var e = Assert.Throws<SeccompConfigException>(() => BpfCompiler.CompileJson(json));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Firecracker_style_field_names_and_masked_eq_object_are_accepted()
    {
        var prog = CompileOne(Filter("""{"syscall": "mmap", "args": [{"arg_index": 3, "arg_type": "dword", "op": {"masked_eq": 255}, "val": 34}]}"""));
        Assert.Equal(Allow, BpfInterpreter.Run(prog, 9, [0, 0, 0, 0x1234_5622]));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, 9, [0, 0, 0, 0x23]));
    }

    [Fact]
    public void Syscall_table_is_complete()
    {
        Assert.True(SyscallTable.Count > 360);
        Assert.True(SyscallTable.TryGetNumber("read", out int r) && r == 0);
        Assert.True(SyscallTable.TryGetNumber("ioctl", out r) && r == 16);
        Assert.True(SyscallTable.TryGetNumber("seccomp", out r) && r == 317);
        Assert.True(SyscallTable.TryGetNumber("clone3", out r) && r == 435);
        Assert.True(SyscallTable.TryGetNumber("futex_waitv", out r) && r == 449);
        Assert.Equal("exit_group", SyscallTable.GetName(231));
        Assert.False(SyscallTable.TryGetNumber("fork2", out _));
    }
}
