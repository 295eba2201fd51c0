namespace Flint.Arch.X86;

/// <summary>
/// The bit patterns of Firecracker's x86_64 static CPU templates (its static_cpu_templates/{c3,t2,t2s,t2cl,t2a}.rs,
/// which its unit test keeps equal to tests/data/custom_cpu_templates/*.json; this table was transcribed from those
/// JSON files). Each row: CPUID leaf, subleaf, KVM flags, register and Firecracker's bitmap (0 clear, 1 set, x keep).
/// </summary>
internal static class StaticCpuTemplateData
{
    public static readonly (uint Leaf, uint Subleaf, uint Flags, CpuidRegister Register, string Bitmap)[] C3Cpuid =
    [
        (0x1, 0x0, 0, CpuidRegister.Eax, "0bxxxx000000000011xx00011011100100"),
        (0x1, 0x0, 0, CpuidRegister.Ecx, "0bxxxxxxxxx0xxxxxx00x000x0xx0000xx"),
        (0x1, 0x0, 0, CpuidRegister.Edx, "0b0x0x0xxxx00xx0xxxxx1xxxx1xxxxxxx"),
        (0x7, 0x0, 1, CpuidRegister.Ebx, "0b000000000x0x000000x000x0xx0000xx"),
        (0x7, 0x0, 1, CpuidRegister.Ecx, "0bx0xxxxxxx0xxxxx0x0xx0xxxxxx0000x"),
        (0x7, 0x0, 1, CpuidRegister.Edx, "0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx00xx"),
        (0xd, 0x0, 1, CpuidRegister.Eax, "0bxxxxxxxxxxxxxxxxxxxxxx0x00000xxx"),
        (0xd, 0x1, 1, CpuidRegister.Eax, "0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx000x"),
        (0x80000001, 0x0, 0, CpuidRegister.Ecx, "0bxxxxxxxxxxxxxxxxxxxxxxx0xx0xxxxx"),
        (0x80000001, 0x0, 0, CpuidRegister.Edx, "0bxxxxx0xxxxxxxxxxxxxxxxxxxxxxxxxx"),
    ];

    public static readonly (uint Address, string Bitmap)[] C3Msrs =
    [
    ];

    public static readonly (uint Leaf, uint Subleaf, uint Flags, CpuidRegister Register, string Bitmap)[] T2Cpuid =
    [
        (0x1, 0x0, 0, CpuidRegister.Eax, "0bxxxx000000000011xx00011011110010"),
        (0x1, 0x0, 0, CpuidRegister.Ecx, "0bxxxxxxxxxxxxx0xx00xx00x0000000xx"),
        (0x1, 0x0, 0, CpuidRegister.Edx, "0b000x0xxxx00xx0xxxxx1xxxx1xxxxxxx"),
        (0x7, 0x0, 1, CpuidRegister.Ebx, "0b00000000000x000000x00x1xxxx0x0xx"),
        (0x7, 0x0, 1, CpuidRegister.Ecx, "0bx0xxxxxxx0xxxxx0x0x00000x0x0000x"),
        (0x7, 0x0, 1, CpuidRegister.Edx, "0bxxxxxxxxxxxxxxxxxxxxxxx0xxx000xx"),
        (0xd, 0x0, 1, CpuidRegister.Eax, "0bxxxxxxxxxxxxxxxxxxxxxx0x00000xxx"),
        (0xd, 0x1, 1, CpuidRegister.Eax, "0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx000x"),
        (0x80000001, 0x0, 0, CpuidRegister.Ecx, "0bxx0xxxxxxxxxxxxxxxxxxxx0xxxxxxxx"),
        (0x80000001, 0x0, 0, CpuidRegister.Edx, "0bxxxxx0xxxxxxxxxxxxxxxxxxxxxxxxxx"),
        (0x80000008, 0x0, 0, CpuidRegister.Ebx, "0bxxxxxxxxxxxxxxxxxxxxxx0xxxxxxxxx"),
    ];

    public static readonly (uint Address, string Bitmap)[] T2Msrs =
    [
    ];

    public static readonly (uint Leaf, uint Subleaf, uint Flags, CpuidRegister Register, string Bitmap)[] T2SCpuid =
    [
        (0x1, 0x0, 0, CpuidRegister.Eax, "0bxxxx000000000011xx00011011110010"),
        (0x1, 0x0, 0, CpuidRegister.Ecx, "0bxxxxxxxxxxxxx0xx00xx00x0000000xx"),
        (0x1, 0x0, 0, CpuidRegister.Edx, "0b000x0xxxx00xx0xxxxx1xxxx1xxxxxxx"),
        (0x7, 0x0, 1, CpuidRegister.Ebx, "0b00000000000x000000x00x1xxxx0x0xx"),
        (0x7, 0x0, 1, CpuidRegister.Ecx, "0bx0xxxxxxx0xxxxx0x0x00000x0x0000x"),
        (0x7, 0x0, 1, CpuidRegister.Edx, "0bxxxxxxxxxxxxxxxxxxxxxxx0xxx000xx"),
        (0xd, 0x0, 1, CpuidRegister.Eax, "0bxxxxxxxxxxxxxxxxxxxxxx0x00000xxx"),
        (0xd, 0x1, 1, CpuidRegister.Eax, "0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx000x"),
        (0x80000001, 0x0, 0, CpuidRegister.Ecx, "0bxx0xxxxxxxxxxxxxxxxxxxx0xxxxxxxx"),
        (0x80000001, 0x0, 0, CpuidRegister.Edx, "0bxxxxx0xxxxxxxxxxxxxxxxxxxxxxxxxx"),
        (0x80000008, 0x0, 0, CpuidRegister.Ebx, "0bxxxxxxxxxxxxxxxxxxxxxx0xxxxxxxxx"),
    ];

    public static readonly (uint Address, string Bitmap)[] T2SMsrs =
    [
        (0x10a, "0b0000000000000000000000000000000000001100000010100000110001001100"),
    ];

    public static readonly (uint Leaf, uint Subleaf, uint Flags, CpuidRegister Register, string Bitmap)[] T2CLCpuid =
    [
        (0x1, 0x0, 0, CpuidRegister.Eax, "0bxxxx000000000011xx00011011110010"),
        (0x1, 0x0, 0, CpuidRegister.Ecx, "0bxxxxxxxxxxxxx0xx00xx00x0000000xx"),
        (0x1, 0x0, 0, CpuidRegister.Edx, "0b000x0xxxx00xx0xxxxx1xxxx1xxxxxxx"),
        (0x7, 0x0, 1, CpuidRegister.Ebx, "0b00000000000x000000x00x1xxxx0x0xx"),
        (0x7, 0x0, 1, CpuidRegister.Ecx, "0bx0xxxxxxx0xxxxx0x0x00000x0x0000x"),
        (0x7, 0x0, 1, CpuidRegister.Edx, "0bxxxxxxxxxxxxxxxxxxxxxxx0xxx000xx"),
        (0xd, 0x0, 1, CpuidRegister.Eax, "0bxxxxxxxxxxxxxxxxxxxxxx0x00000xxx"),
        (0xd, 0x1, 1, CpuidRegister.Eax, "0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx000x"),
        (0x80000001, 0x0, 0, CpuidRegister.Ecx, "0bxx0xxxxxxxxxxxxxxxxxxxx000xxxxxx"),
        (0x80000001, 0x0, 0, CpuidRegister.Edx, "0bxxxxx00000xxxxxxxxxxxxxxxxxxxxxx"),
        (0x80000008, 0x0, 0, CpuidRegister.Ebx, "0bxxxxxxxxxxxxxxxxxxxxxx0xxxxxxxxx"),
    ];

    public static readonly (uint Address, string Bitmap)[] T2CLMsrs =
    [
        (0x10a, "0b00000000000000000000000000000000000xxx0x0000x0x0xxx0000xxxxxxxxx"),
    ];

    public static readonly (uint Leaf, uint Subleaf, uint Flags, CpuidRegister Register, string Bitmap)[] T2ACpuid =
    [
        (0x1, 0x0, 0, CpuidRegister.Eax, "0bxxxx000000000011xx00011011110010"),
        (0x1, 0x0, 0, CpuidRegister.Ecx, "0bxxxxxxxxxxxxx0xx00xx00x0000000xx"),
        (0x1, 0x0, 0, CpuidRegister.Edx, "0b000x0xxxx00xx0xxxxx1xxxx1xxxxxxx"),
        (0x7, 0x0, 1, CpuidRegister.Ebx, "0b00000000000x000000x00x1xxxx0x0xx"),
        (0x7, 0x0, 1, CpuidRegister.Ecx, "0bx0xxxxxxx0xxxxx0x0x00000x0x0000x"),
        (0x7, 0x0, 1, CpuidRegister.Edx, "0bxxxxxxxxxxxxxxxxxxxxxxx0xxx000xx"),
        (0xd, 0x0, 1, CpuidRegister.Eax, "0bxxxxxxxxxxxxxxxxxxxxxx0x00000xxx"),
        (0xd, 0x1, 1, CpuidRegister.Eax, "0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx000x"),
        (0x80000001, 0x0, 0, CpuidRegister.Ecx, "0bxx0xxxxxxxxxxxxxxxxxxxx000xxx0xx"),
        (0x80000001, 0x0, 0, CpuidRegister.Edx, "0bxxxxx00xx0xxxxxxxxxxxxxxxxxxxxxx"),
        (0x80000008, 0x0, 0, CpuidRegister.Ebx, "0bxxxxxxxxxxx111xxxxxxxx0xxxxxx1x0"),
    ];

    public static readonly (uint Address, string Bitmap)[] T2AMsrs =
    [
    ];
}
