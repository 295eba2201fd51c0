using System.Globalization;
using System.Text.Json;
using Flint.Arch.X86;

namespace Flint.Vmm.Config;

/// <summary>
/// Reads a Firecracker custom CPU template (the "cpu-config" section, PUT /cpu-config) into a
/// <see cref="CustomCpuTemplate"/>. Field presence and types were checked by the API schema; this checks the values
/// (leaf numbers, bitmaps, capability strings) and throws <see cref="ConfigException"/> naming the bad one.
/// </summary>
public static class CpuTemplateConfig
{
    public static CustomCpuTemplate Parse(JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Object) throw new ConfigException("cpu-config: expected a JSON object.");
        foreach (var aarch64 in new[] { "reg_modifiers", "vcpu_features" })
            if (e.TryGetProperty(aarch64, out var a) && a.ValueKind == JsonValueKind.Array && a.GetArrayLength() > 0)
                throw new ConfigException($"cpu-config: {aarch64} is for aarch64 hosts; this is x86_64.");
        try
        {
            var cpuid = new List<CpuidLeafModifier>();
            foreach (var m in Array(e, "cpuid_modifiers"))
            {
                var regs = new List<(CpuidRegister, BitModifier)>();
                foreach (var r in Array(m, "modifiers"))
                {
                    var reg = Str(r, "register") switch
                    {
                        "eax" => CpuidRegister.Eax,
                        "ebx" => CpuidRegister.Ebx,
                        "ecx" => CpuidRegister.Ecx,
                        "edx" => CpuidRegister.Edx,
                        var other => throw new FormatException($"Invalid register \"{other}\" (eax, ebx, ecx or edx)."),
                    };
                    regs.Add((reg, BitModifier.Parse(Str(r, "bitmap"), 32)));
                }
                uint flags = m.TryGetProperty("flags", out var f) && f.ValueKind == JsonValueKind.Number ? f.GetUInt32() : 0;
                cpuid.Add(new CpuidLeafModifier(U32(Str(m, "leaf"), "leaf"), U32(Str(m, "subleaf"), "subleaf"), flags, regs));
            }
            var msrs = Array(e, "msr_modifiers")
                .Select(m => new MsrModifier(U32(Str(m, "addr"), "addr"), BitModifier.Parse(Str(m, "bitmap"), 64))).ToList();
            var required = new List<int>();
            var waived = new List<int>();
            foreach (var c in Array(e, "kvm_capabilities"))
            {
                string s = c.GetString() ?? "";
                bool off = s.StartsWith('!');
                if (!int.TryParse(off ? s[1..] : s, NumberStyles.None, CultureInfo.InvariantCulture, out int cap))
                    throw new FormatException($"Invalid KVM capability \"{s}\": a decimal number, or ! and one to remove it.");
                (off ? waived : required).Add(cap);
            }
            return new CustomCpuTemplate { Cpuid = cpuid, Msrs = msrs, RequiredKvmCapabilities = required, WaivedKvmCapabilities = waived };
        }
        catch (Exception x) when (x is FormatException or InvalidOperationException or OverflowException)
        {
            throw new ConfigException($"cpu-config: {x.Message}");
        }
    }

    private static IEnumerable<JsonElement> Array(JsonElement e, string name) =>
        e.TryGetProperty(name, out var a) && a.ValueKind == JsonValueKind.Array ? a.EnumerateArray() : [];

    private static string Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new FormatException($"\"{name}\" must be a string.");

    /// <summary>Firecracker writes leaves, subleaves and MSR addresses as strings holding a number: hex with 0x, else decimal.</summary>
    private static uint U32(string s, string what)
    {
        bool ok = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? uint.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint v)
            : uint.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out v);
        return ok ? v : throw new FormatException($"Invalid {what} \"{s}\": a 32-bit number, hex (0x...) or decimal.");
    }
}
