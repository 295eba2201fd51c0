/*
 * tg.tests=acpi: the guest side of Flint's ACPI tables (docs/acpi.md).
 *   - finds the RSDP by scanning 0xE0000-0xFFFFF on 16-byte boundaries (what a kernel without boot_params does) and
 *     checks it against start_info's rsdp_paddr, checks both RSDP checksums;
 *   - walks the XSDT, checks every table's checksum, prints "acpi table <SIG> addr=0x.. len=<n>";
 *   - MADT: counts enabled local APICs ("acpi madt cpus=<n> ioapics=<n>");
 *   - FADT: X_DSDT -> DSDT (checksum, listed as a table too); finds _SB_.VGEN's ADDR package in the DSDT AML and prints
 *     the generation ID ("vmgenid <32 hex digits>", bytes in memory order).
 *   tg.acpi.watch=<ms>: afterwards, for that long, re-read the ID and VMClock's vm_generation_counter and print
 *     "vmgenid ..." / "vmclock gen=<n> marker=<m>" whenever one changes (a snapshot restore changes both).
 * PASS acpi-rsdp, acpi-xsdt, acpi-madt, acpi-dsdt, acpi-vmgenid, acpi (all of them).
 */
#include "tg.h"

#define RSDP_LO 0xE0000ull
#define RSDP_HI 0x100000ull

static u32 le32(const volatile u8 *p) { return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24; }
static u64 le64(const volatile u8 *p) { return le32(p) | (u64)le32(p + 4) << 32; }

static u8 sum(const volatile u8 *p, u32 n)
{
	u8 s = 0;
	for (u32 i = 0; i < n; i++)
		s += p[i];
	return s;
}

static int sig_is(const volatile u8 *p, const char *s)
{
	for (int i = 0; s[i]; i++)
		if (p[i] != (u8)s[i])
			return 0;
	return 1;
}

static void put_sig(const volatile u8 *p)
{
	for (int i = 0; i < 4; i++)
		putc_((char)p[i]);
}

static void put_hex_bytes(const volatile u8 *p, int n)
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < n; i++) {
		putc_(hex[p[i] >> 4]);
		putc_(hex[p[i] & 15]);
	}
}

/* a table's header checks out: checksum zero, length at least the header, below 4 GiB and inside low memory */
static const volatile u8 *table_at(u64 addr, const char *what)
{
	if (addr == 0 || addr >= 0xC0000000ull) {
		failx(what, "table address outside low RAM", addr);
		return 0;
	}
	const volatile u8 *t = (const volatile u8 *)addr;
	u32 len = le32(t + 4);
	if (len < 36 || len > 0x40000) {
		failx(what, "bad table length", len);
		return 0;
	}
	if (sum(t, len) != 0) {
		failx(what, "table checksum wrong at", addr);
		return 0;
	}
	puts_("acpi table ");
	put_sig(t);
	puts_(" addr=");
	putx(addr);
	puts_(" len=");
	putu(len);
	puts_("\n");
	return t;
}

/* AML integer term at *p (ZeroOp, OneOp, Byte/Word/DWord/QWordPrefix); advances *p; ok=0 if it is none of them */
static u64 aml_int(const volatile u8 **p, int *ok)
{
	const volatile u8 *q = *p;
	u64 v = 0;
	int n;
	switch (q[0]) {
	case 0x00: *p = q + 1; return 0;
	case 0x01: *p = q + 1; return 1;
	case 0x0a: n = 1; break;
	case 0x0b: n = 2; break;
	case 0x0c: n = 4; break;
	case 0x0e: n = 8; break;
	default: *ok = 0; return 0;
	}
	for (int i = 0; i < n; i++)
		v |= (u64)q[1 + i] << (8 * i);
	*p = q + 1 + n;
	return v;
}

/* the address in "Name (ADDR, Package (2) {lo, hi})" inside the DSDT, after the "VM_Gen_Counter" _CID; 0 if absent */
static u64 find_vmgenid(const volatile u8 *dsdt, u32 len)
{
	int seen_cid = 0;
	for (u32 i = 36; i + 20 < len; i++) {
		if (!seen_cid && sig_is(dsdt + i, "VM_Gen_Counter"))
			seen_cid = 1;
		if (!seen_cid || dsdt[i] != 0x08 || !sig_is(dsdt + i + 1, "ADDR") || dsdt[i + 5] != 0x12)
			continue;
		const volatile u8 *p = dsdt + i + 6;
		if (*p & 0xc0)	/* multi-byte PkgLength: our two integers never need one */
			return 0;
		p++;
		if (*p++ != 2)
			return 0;
		int ok = 1;
		u64 lo = aml_int(&p, &ok), hi = aml_int(&p, &ok);
		return ok ? (lo & 0xffffffffull) | hi << 32 : 0;
	}
	return 0;
}

/* VMClock's page: the QWordMemory descriptor (0x8a) after the "AMZNC10C" _HID; 0 if absent */
static u64 find_vmclock(const volatile u8 *dsdt, u32 len)
{
	for (u32 i = 36; i + 8 < len; i++) {
		if (!sig_is(dsdt + i, "AMZNC10C"))
			continue;
		for (u32 j = i; j + 46 < len && j < i + 200; j++)
			if (dsdt[j] == 0x8a && dsdt[j + 1] == 43 && dsdt[j + 2] == 0 && dsdt[j + 3] == 0)
				return le64(dsdt + j + 14);
		return 0;
	}
	return 0;
}

static void print_vmgenid(const volatile u8 *id)
{
	puts_("vmgenid ");
	put_hex_bytes(id, 16);
	puts_("\n");
}

void test_acpi(u64 start_info_rsdp)
{
	int bad = n_fail;

	const volatile u8 *rsdp = 0;
	for (u64 a = RSDP_LO; a < RSDP_HI; a += 16)
		if (sig_is((const volatile u8 *)a, "RSD PTR ")) {
			rsdp = (const volatile u8 *)a;
			break;
		}
	if (!rsdp) {
		fail("acpi-rsdp", "no \"RSD PTR \" in 0xE0000-0xFFFFF");
		fail("acpi", "sub-test failed");
		return;
	}
	puts_("acpi rsdp addr=");
	putx((u64)rsdp);
	puts_(" rev=");
	putu(rsdp[15]);
	puts_(" start_info=");
	putx(start_info_rsdp);
	puts_("\n");
	if (sum(rsdp, 20) != 0 || rsdp[15] < 2 || le32(rsdp + 20) != 36 || sum(rsdp, 36) != 0)
		fail("acpi-rsdp", "checksum, revision or length wrong");
	else if (start_info_rsdp != (u64)rsdp)
		failx("acpi-rsdp", "start_info rsdp_paddr differs from the scanned RSDP:", start_info_rsdp);
	else
		pass("acpi-rsdp");

	const volatile u8 *xsdt = table_at(le64(rsdp + 24), "acpi-xsdt");
	if (!xsdt || !sig_is(xsdt, "XSDT")) {
		fail("acpi", "sub-test failed");
		return;
	}
	const volatile u8 *fadt = 0, *madt = 0;
	u32 n = (le32(xsdt + 4) - 36) / 8, tables_ok = 1;
	for (u32 i = 0; i < n; i++) {
		const volatile u8 *t = table_at(le64(xsdt + 36 + 8 * i), "acpi-xsdt");
		if (!t)
			tables_ok = 0;
		else if (sig_is(t, "FACP"))
			fadt = t;
		else if (sig_is(t, "APIC"))
			madt = t;
	}
	if (tables_ok && fadt && madt)
		pass("acpi-xsdt");
	else if (tables_ok)
		fail("acpi-xsdt", "no FACP or no APIC table");

	if (madt) {
		u32 len = le32(madt + 4), cpus = 0, ioapics = 0;
		for (u32 o = 44; o + 2 <= len && madt[o + 1] >= 2; o += madt[o + 1]) {
			if (madt[o] == 0 && (le32(madt + o + 4) & 1))
				cpus++;
			if (madt[o] == 1)
				ioapics++;
		}
		puts_("acpi madt cpus=");
		putu(cpus);
		puts_(" ioapics=");
		putu(ioapics);
		puts_("\n");
		if (cpus && ioapics == 1)
			pass("acpi-madt");
		else
			fail("acpi-madt", "no enabled local APIC or not one IOAPIC");
	}

	const volatile u8 *dsdt = fadt ? table_at(le64(fadt + 140), "acpi-dsdt") : 0;
	if (dsdt && sig_is(dsdt, "DSDT"))
		pass("acpi-dsdt");
	else if (fadt)
		fail("acpi-dsdt", "FADT X_DSDT does not point at a DSDT");

	u64 genid = dsdt ? find_vmgenid(dsdt, le32(dsdt + 4)) : 0;
	u64 clock = dsdt ? find_vmclock(dsdt, le32(dsdt + 4)) : 0;
	if (!genid || (genid & 7) || genid >= 0xC0000000ull) {
		failx("acpi-vmgenid", "no usable VGEN ADDR in the DSDT:", genid);
	} else {
		const volatile u8 *id = (const volatile u8 *)genid;
		int zero = 1;
		for (int i = 0; i < 16; i++)
			if (id[i])
				zero = 0;
		puts_("acpi vmgenid addr=");
		putx(genid);
		puts_(" vmclock addr=");
		putx(clock);
		puts_("\n");
		print_vmgenid(id);
		if (zero)
			fail("acpi-vmgenid", "generation ID is all zero");
		else
			pass("acpi-vmgenid");
	}
	if (n_fail == (unsigned)bad)
		pass("acpi");
	else
		fail("acpi", "sub-test failed");

	u64 watch = opt_num("tg.acpi.watch=", 0);
	if (!watch || !genid)
		return;
	const volatile u8 *id = (const volatile u8 *)genid;
	u8 last[16];
	for (int i = 0; i < 16; i++)
		last[i] = id[i];
	const volatile u8 *vc = clock && clock < 0xC0000000ull ? (const volatile u8 *)clock : 0;
	u64 gen = vc ? le64(vc + 104) : 0;
	if (vc) {
		puts_("vmclock gen=");
		putu(gen);
		puts_(" marker=");
		putu(le64(vc + 16));
		puts_("\n");
	}
	puts_("acpi watching\n");
	u64 dl = deadline_ms(watch);
	while (!expired(dl)) {
		int changed = 0;
		for (int i = 0; i < 16; i++)
			if (id[i] != last[i])
				changed = 1;
		if (changed) {
			for (int i = 0; i < 16; i++)
				last[i] = id[i];
			print_vmgenid(last);
		}
		if (vc && (le32(vc + 12) & 1) == 0 && le64(vc + 104) != gen) {
			gen = le64(vc + 104);
			puts_("vmclock gen=");
			putu(gen);
			puts_(" marker=");
			putu(le64(vc + 16));
			puts_("\n");
		}
		for (int i = 0; i < 1000; i++)
			cpu_relax();
	}
	puts_("acpi watch done\n");
}
