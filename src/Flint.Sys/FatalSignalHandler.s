# Native fatal-signal handler used by Flint.Sys.FatalSignals. Assemble:
#   as -o h.o FatalSignalHandler.s && objcopy -O binary -j .text h.o h.bin
# One copy per signal; its movabs operand (offset 2) points at that signal's data block:
#   +0 u64 count  +8 i32 log fd  +12 u8 prefix length  +13 u8 siginfo offset of the number to print
#   +14 u8 suffix (0: ")", 1: ".")  +15 u8 exit code  +16 u64 chained handler (0: none)
#   +24 i32 notify fd (-1: none)  +32 message prefix
# In: rdi = signo, rsi = siginfo, rdx = ucontext (SA_SIGINFO). Makes only write, nanosleep and exit_group.
# A second run of the same handler (the watcher's metrics flush raised the signal again) exits at once.
.intel_syntax noprefix
.globl handler
handler:
    movabs rax, 0x1122334455667788
    mov r11, qword ptr [rax+16]
    test r11, r11
    jz 5f
    mov ecx, dword ptr [rsi+8]          # si_code <= 0: sent by kill/tgkill, not a fault
    test ecx, ecx
    jle 5f
    cmp qword ptr [rsi+16], 0x10000     # si_addr in the null area: the runtime's NullReferenceException
    jae 5f
    jmp r11
5:
    push rbx
    mov rbx, rax
    mov r12d, 1
    lock xadd qword ptr [rbx], r12      # r12 = the count before this one
    movzx eax, byte ptr [rbx+13]
    mov r8d, dword ptr [rsi+rax]
    sub rsp, 128
    lea rsi, [rbx+32]
    mov rdi, rsp
    movzx ecx, byte ptr [rbx+12]
    cld
    rep movsb
    mov eax, r8d
    test eax, eax
    jns 8f
    neg eax
    mov byte ptr [rdi], 45              # '-'
    inc rdi
8:
    lea r9, [rsp+120]
    mov r10, r9
    mov ecx, 10
1:
    xor edx, edx
    div ecx
    add dl, 48
    dec r9
    mov byte ptr [r9], dl
    test eax, eax
    jnz 1b
    mov rsi, r9
    mov rcx, r10
    sub rcx, r9
    rep movsb
    mov byte ptr [rdi], 41              # ')'
    cmp byte ptr [rbx+14], 0
    je 7f
    mov byte ptr [rdi], 46              # '.'
7:
    mov byte ptr [rdi+1], 10
    lea rdx, [rdi+2]
    sub rdx, rsp
    mov r8, rdx
    mov eax, 1                          # write(2, msg, len)
    mov edi, 2
    mov rsi, rsp
    syscall
    movsxd rdi, dword ptr [rbx+8]       # and to the log fd, unless none or stderr
    test edi, edi
    js 2f
    cmp edi, 2
    je 2f
    mov eax, 1
    mov rsi, rsp
    mov rdx, r8
    syscall
2:
    test r12, r12                       # again (e.g. SIGXFSZ from the watcher's own metrics flush): exit now
    jnz 3f
    movsxd rdi, dword ptr [rbx+24]      # wake the watchers (eventfd += 1): one flushes the metrics and exits
    test edi, edi
    js 3f
    mov qword ptr [rsp], 1
    mov eax, 1
    mov rsi, rsp
    mov edx, 8
    syscall
    mov qword ptr [rsp], 2              # and give it 2 s to exit with our code
    mov qword ptr [rsp+8], 0
    mov eax, 35                         # nanosleep
    mov rdi, rsp
    xor esi, esi
    syscall
3:
    movzx edi, byte ptr [rbx+15]
    mov eax, 231                        # exit_group(code)
    syscall
    ud2
.globl noop
noop:
    ret
