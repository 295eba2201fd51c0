/*
 * Flint test guest - PVH entry.
 *
 * PVH (XEN_ELFNOTE_PHYS32_ENTRY) entry state: 32-bit protected mode, paging off,
 * flat CS/DS, interrupts off, %ebx = physical address of struct hvm_start_info.
 * We load our own GDT, build identity page tables for the low 4 GiB (2 MiB pages,
 * the 3-4 GiB MMIO gap uncached), enable long mode (the same steps Linux's PVH
 * entry takes) and call tg_main(start_info) in 64-bit mode.
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

	.section .note.Xen, "a", @note
	.balign 4
	.long 4				/* namesz: "Xen\0" */
	.long 4				/* descsz: 32-bit entry address */
	.long XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.balign 4
	.long _start32
	.balign 4

	.section .text.entry, "ax"
	.code32
	.globl _start32
_start32:
	cli
	cld
	movl	%ebx, %esi		/* keep the start_info pointer */
	lgdt	gdt_desc
	movl	$0x10, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	movl	$stack_top, %esp

	/* zero .bss (page tables, rings, buffers, stack) */
	movl	$__bss_start, %edi
	movl	$__bss_end, %ecx
	subl	%edi, %ecx
	shrl	$2, %ecx
	xorl	%eax, %eax
	rep stosl

	/* PML4[0] -> PDPT; PDPT[0..3] -> PD0..PD3 */
	movl	$pdpt, %eax
	orl	$0x3, %eax
	movl	%eax, pml4
	movl	$pd, %eax
	orl	$0x3, %eax
	movl	$pdpt, %edi
	movl	$4, %ecx
1:	movl	%eax, (%edi)
	addl	$0x1000, %eax
	addl	$8, %edi
	decl	%ecx
	jnz	1b

	/* PD entries: 2048 x 2 MiB, P|RW|PS; PCD|PWT from 3 GiB up (MMIO) */
	movl	$pd, %edi
	xorl	%ecx, %ecx
2:	movl	%ecx, %eax
	shll	$21, %eax
	orl	$0x83, %eax
	cmpl	$1536, %ecx
	jb	3f
	orl	$0x18, %eax
3:	movl	%eax, (%edi)
	addl	$8, %edi
	incl	%ecx
	cmpl	$2048, %ecx
	jb	2b

	movl	%cr4, %eax
	orl	$0x20, %eax		/* PAE */
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$0xC0000080, %ecx	/* EFER */
	rdmsr
	orl	$0x100, %eax		/* LME */
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000001, %eax	/* PG | PE */
	movl	%eax, %cr0
	ljmp	$0x08, $start64

	.code64
start64:
	movl	$0x10, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	$stack_top, %esp
	movl	%esi, %edi		/* arg0: start_info physical address */
	call	tg_main
	/* tg_main does not return; if it does, halt forever */
4:	hlt
	jmp	4b

/* Last resort shutdown: zero-limit IDT, then an exception -> triple fault. */
	.globl tg_triple_fault
tg_triple_fault:
	lidt	null_idt
	ud2
5:	hlt
	jmp	5b

	.section .rodata
	.balign 16
gdt:
	.quad 0				/* 0x00 null */
	.quad 0x00af9a000000ffff	/* 0x08 64-bit code */
	.quad 0x00cf92000000ffff	/* 0x10 data */
	.quad 0x00cf9a000000ffff	/* 0x18 32-bit code */
gdt_end:
	.balign 8
	.word 0
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt
	.balign 8
	.word 0
null_idt:
	.word 0
	.quad 0

	.section .bss
	.balign 4096
pml4:	.skip 4096
pdpt:	.skip 4096
pd:	.skip 4 * 4096
stack:	.skip 16384
stack_top:

	.section .note.GNU-stack, "", @progbits
