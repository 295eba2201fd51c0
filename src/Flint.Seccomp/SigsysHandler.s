# The SIGSYS handler in SigsysHandler.cs (Code), and a no-op handler. Assemble: as -o h.o SigsysHandler.s && objcopy -O binary -j .text h.o h.bin
# rbx = data block: +0 fault count, +8 log fd, +12 prefix length, +16 flush callback, +24 message prefix.
.intel_syntax noprefix
.globl handler
handler:
    push rbx
    movabs rbx, 0x1122334455667788
    lock inc qword ptr [rbx]
    mov r8d, dword ptr [rsi+24]
    sub rsp, 128
    lea rsi, [rbx+24]
    mov rdi, rsp
    movzx ecx, byte ptr [rbx+12]
    cld
    rep movsb
    mov eax, r8d
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
    mov byte ptr [rdi], 41
    mov byte ptr [rdi+1], 10
    lea rdx, [rdi+2]
    sub rdx, rsp
    mov r8, rdx
    mov eax, 1
    mov edi, 2
    mov rsi, rsp
    syscall
    movsxd rdi, dword ptr [rbx+8]
    test edi, edi
    js 2f
    cmp edi, 2
    je 2f
    mov eax, 1
    mov rsi, rsp
    mov rdx, r8
    syscall
2:
    mov rax, qword ptr [rbx+16]
    test rax, rax
    jz 3f
    call rax
3:
    mov eax, 231
    mov edi, 148
    syscall
    ud2
.globl noop
noop:
    ret
