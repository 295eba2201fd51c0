/*
 * Flint test guest: a tiny freestanding PVH guest that exercises the VMM's devices
 * by polling (no interrupts) and reports over the 16550 serial port at 0x3f8.
 *
 * Serial protocol (one line each, '\n' terminated):
 *   FLINT-TESTGUEST start
 *   PASS <name> | FAIL <name>: <reason>        one per (sub)test
 *   <informational lines>                      e.g. "blk id=...", "pio done N"
 *   FLINT-TESTGUEST done pass=<n> fail=<m>
 *
 * Kernel command line (from hvm_start_info.cmdline_paddr):
 *   virtio_mmio.device=<size>@<base>:<irq>[:<id>]   size 4K/512/0x200/... (any)
 *   tg.tests=<comma list>     default "serial,blk" (known: serial, blk, pio, rng, net,
 *                             balloon, vsock, blkbench, pmem, mem, pci, pcihp; see rng.c, net.c, balloon.c,
 *                             vsock.c, pmem.c (tg.pmem.ro=1: a read-only device), mem.c, pci.c, blkbench.c for tg.blk.bench=)
 *   tg.timeout=<ms>           bound of each wait in the new tests (default 5000)
 *   tg.tsc_khz=<kHz>          TSC frequency for those bounds (default: CPUID, else 2 GHz)
 *   tg.pio=<N>                N outb's to port 0x3ff (implies the pio test)
 *   tg.boottimer=0|1|first    default 1: write byte 123 to MMIO 0xC0000000 at the end; first: before
 *                             anything else (the VMM's Guest-boot-time is then InstanceStart -> first instructions)
 *   tg.hold=1                 after the done line, halt for good instead of resetting the VM
 *   tg.agent=<port>           after the done line (and the boot timer), serve the agent protocol
 *                             on that vsock port forever (agent.c; tg.agent.handler=<name>)
 *
 * Disk pattern (the host writes the disk file this way):
 *   byte j of sector s = (s*7 + j) & 0xff                 (checked on sectors 0..7)
 * Write pattern (read-write disks only, sector 3 gets overwritten):
 *   byte j of sector s = (s*13 + j + 1) & 0xff
 *
 * At the end the guest resets through the i8042 (outb 0x64, 0xFE); if it is still
 * running it forces a triple fault, so the VMM always sees a shutdown.
 */
#include "virtio.h"

void tg_main(u32 start_info) __attribute__((noreturn, used));
void tg_triple_fault(void) __attribute__((noreturn));

/* gcc may emit calls to these even when freestanding */
void *memset(void *d, int c, usize n)
{
	u8 *p = d;
	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, usize n)
{
	u8 *a = d;
	const u8 *b = s;
	while (n--)
		*a++ = *b++;
	return d;
}

/* ---------------------------------------------------------------- serial */

#define COM1 0x3f8

static void serial_init(void)
{
	outb(COM1 + 1, 0x00);	/* IER: no interrupts */
	outb(COM1 + 3, 0x03);	/* LCR: 8N1, DLAB off */
	outb(COM1 + 4, 0x03);	/* MCR: DTR | RTS */
}

void putc_(char c)
{
	/* wait for THR empty (LSR bit 5), bounded so a missing UART can't hang us */
	for (int i = 0; i < 100000; i++)
		if (inb(COM1 + 5) & 0x20)
			break;
	outb(COM1, (u8)c);
}

void puts_(const char *s)
{
	while (*s)
		putc_(*s++);
}

void putu(u64 v)
{
	char b[21];
	int i = 20;
	b[i] = 0;
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	puts_(&b[i]);
}

void putx(u64 v)
{
	char b[17];
	int i = 16;
	b[i] = 0;
	do {
		b[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	puts_("0x");
	puts_(&b[i]);
}

unsigned n_pass, n_fail;

void pass(const char *name)
{
	n_pass++;
	puts_("PASS ");
	puts_(name);
	puts_("\n");
}

void fail(const char *name, const char *why)
{
	n_fail++;
	puts_("FAIL ");
	puts_(name);
	puts_(": ");
	puts_(why);
	puts_("\n");
}

/* FAIL <name>: <why> <value> */
void failx(const char *name, const char *why, u64 v)
{
	n_fail++;
	puts_("FAIL ");
	puts_(name);
	puts_(": ");
	puts_(why);
	puts_(" ");
	putx(v);
	puts_("\n");
}

/* ---------------------------------------------------------------- cmdline */

#define CMDLINE_MAX 2048
#define MAX_TOKENS 64

static char cmdline[CMDLINE_MAX];
static const char *tokens[MAX_TOKENS];
static int n_tokens;
u64 dev_base[MAX_DEVS];
u32 dev_irq[MAX_DEVS];
int n_devs;
static u64 memmap_pa;
static u32 memmap_n;
static char opt_tests[256] = "serial,blk";
static u64 opt_pio;
static int opt_pio_set;
static int opt_boottimer = 1;

int prefix(const char *s, const char *p)
{
	while (*p)
		if (*s++ != *p++)
			return 0;
	return 1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* number: decimal or 0x-hex; *ok = 0 when no digits */
u64 parse_num(const char **sp, int *ok)
{
	const char *s = *sp;
	u64 v = 0;
	*ok = 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		while (hexval(*s) >= 0) {
			v = v * 16 + (u64)hexval(*s++);
			*ok = 1;
		}
	} else {
		while (*s >= '0' && *s <= '9') {
			v = v * 10 + (u64)(*s++ - '0');
			*ok = 1;
		}
	}
	*sp = s;
	return v;
}

/* "<size>[KMG]@<base>:<irq>[:<id>]" */
static void parse_virtio_dev(const char *s)
{
	int ok;
	parse_num(&s, &ok);
	if (!ok)
		return;
	if (*s == 'K' || *s == 'k' || *s == 'M' || *s == 'm' || *s == 'G' || *s == 'g')
		s++;
	if (*s++ != '@')
		return;
	u64 base = parse_num(&s, &ok);
	if (!ok || *s++ != ':')
		return;
	u64 irq = parse_num(&s, &ok);
	if (!ok || n_devs >= MAX_DEVS)
		return;
	dev_base[n_devs] = base;
	dev_irq[n_devs] = (u32)irq;
	n_devs++;
}

static void parse_cmdline(u32 start_info)
{
	const volatile u8 *si = (const volatile u8 *)(u64)start_info;
	if (start_info == 0 || *(const volatile u32 *)si != 0x336ec578u) {
		puts_("start_info: bad magic\n");
		return;
	}
	if (*(const volatile u32 *)(si + 4) >= 1) {	/* version 1: memory map */
		memmap_pa = *(const volatile u64 *)(si + 40);
		memmap_n = *(const volatile u32 *)(si + 48);
	}
	u64 pa = *(const volatile u64 *)(si + 24);
	if (pa == 0)
		return;
	const volatile char *src = (const volatile char *)pa;
	int n = 0;
	while (n < CMDLINE_MAX - 1 && src[n])
		n++;
	for (int i = 0; i < n; i++)
		cmdline[i] = src[i];
	cmdline[n] = 0;
	puts_("cmdline: ");
	puts_(cmdline);
	puts_("\n");

	/* tokenize on whitespace */
	char *p = cmdline;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			*p++ = 0;
		if (!*p)
			break;
		char *tok = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n')
			p++;
		if (*p)
			*p++ = 0;

		const char *v;
		int ok;
		if (n_tokens < MAX_TOKENS)
			tokens[n_tokens++] = tok;
		if (prefix(tok, "virtio_mmio.device=")) {
			parse_virtio_dev(tok + 19);
		} else if (prefix(tok, "tg.tests=")) {
			v = tok + 9;
			int i = 0;
			while (v[i] && i < (int)sizeof(opt_tests) - 1) {
				opt_tests[i] = v[i];
				i++;
			}
			opt_tests[i] = 0;
		} else if (prefix(tok, "tg.pio=")) {
			v = tok + 7;
			opt_pio = parse_num(&v, &ok);
			opt_pio_set = ok;
		} else if (prefix(tok, "tg.boottimer=")) {
			opt_boottimer = tok[13] == 'f' ? 2 : tok[13] != '0';
		}
	}
}

int streq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

const char *opt_str(const char *key)
{
	const char *r = 0;
	for (int i = 0; i < n_tokens; i++)	/* the last one wins */
		if (prefix(tokens[i], key)) {
			const char *k = key;
			r = tokens[i];
			while (*k++)
				r++;
		}
	return r;
}

u64 opt_num(const char *key, u64 def)
{
	const char *v = opt_str(key);
	int ok;
	if (!v)
		return def;
	u64 n = parse_num(&v, &ok);
	return ok && !*v ? n : def;
}

static int parse_ip(const char *s, u8 ip[4])
{
	for (int i = 0; i < 4; i++) {
		int ok;
		u64 n = 0;
		ok = 0;
		while (*s >= '0' && *s <= '9') {
			n = n * 10 + (u64)(*s++ - '0');
			ok = 1;
		}
		if (!ok || n > 255 || *s != (i < 3 ? '.' : 0))
			return 0;
		ip[i] = (u8)n;
		s++;
	}
	return 1;
}

void opt_ip(const char *key, const char *def, u8 ip[4])
{
	const char *v = opt_str(key);
	if (!v || !parse_ip(v, ip))
		parse_ip(def, ip);
}

u64 ram_end_at(u64 addr)
{
	/* hvm_memmap_table_entry: u64 addr, u64 size, u32 type (1 = RAM), u32 reserved */
	for (u32 i = 0; memmap_pa && i < memmap_n && i < 128; i++) {
		const volatile u64 *e = (const volatile u64 *)(memmap_pa + 24ull * i);
		u32 type = *(const volatile u32 *)(e + 2);
		if (type == 1 && addr >= e[0] && addr < e[0] + e[1])
			return e[0] + e[1];
	}
	return 0;
}

/* ---------------------------------------------------------------- time (TSC) */

static u64 tsc_khz_v, tsc_t0;

static void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d)
{
	__asm__ __volatile__("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

/* tg.tsc_khz=, else CPUID 0x40000010 (hypervisor TSC kHz), 0x15 (crystal), 0x16 (base MHz),
 * else 2 GHz. Only bounds waits, so an estimate is good enough. */
u64 tsc_khz(void)
{
	if (tsc_khz_v)
		return tsc_khz_v;
	u32 a, b, c, d;
	const char *src = "option";
	u64 k = opt_num("tg.tsc_khz=", 0);
	if (!k) {
		cpuid(0x40000000, &a, &b, &c, &d);
		if (a >= 0x40000010 && a < 0x40010000) {
			cpuid(0x40000010, &a, &b, &c, &d);
			k = a;
			src = "cpuid 0x40000010";
		}
	}
	cpuid(0, &a, &b, &c, &d);
	u32 maxleaf = a;
	if (!k && maxleaf >= 0x15) {
		cpuid(0x15, &a, &b, &c, &d);
		if (a && b && c) {
			k = (u64)c * b / a / 1000;
			src = "cpuid 0x15";
		}
	}
	if (!k && maxleaf >= 0x16) {
		cpuid(0x16, &a, &b, &c, &d);
		if (a & 0xffff) {
			k = (u64)(a & 0xffff) * 1000;
			src = "cpuid 0x16";
		}
	}
	if (!k) {
		k = 2000000;
		src = "assumed";
	}
	tsc_khz_v = k;
	tsc_t0 = rdtsc();
	puts_("tsc khz=");
	putu(k);
	puts_(" (");
	puts_(src);
	puts_(")\n");
	return k;
}

u64 now_ms(void)
{
	u64 k = tsc_khz();
	return (rdtsc() - tsc_t0) / k;
}

/* is `name` in the comma separated opt_tests list? */
static int test_enabled(const char *name)
{
	const char *s = opt_tests;
	while (*s) {
		const char *a = s, *b = name;
		while (*b && *a == *b) {
			a++;
			b++;
		}
		if (!*b && (*a == ',' || *a == 0))
			return 1;
		while (*s && *s != ',')
			s++;
		if (*s == ',')
			s++;
	}
	return 0;
}

/* ---------------------------------------------------------------- serial test */

static void test_serial(void)
{
	/* scratch register round trip, and THR empty in LSR */
	outb(COM1 + 7, 0x5a);
	u8 a = inb(COM1 + 7);
	outb(COM1 + 7, 0xa5);
	u8 b = inb(COM1 + 7);
	u8 lsr = inb(COM1 + 5);
	if (a != 0x5a || b != 0xa5)
		failx("serial", "scratch register readback", (u64)a << 8 | b);
	else if (!(lsr & 0x20))
		failx("serial", "LSR THR not empty", lsr);
	else
		pass("serial");
}

/* ---------------------------------------------------------------- virtio-mmio blk */

#define F_RO 5
#define F_FLUSH 9

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_BOGUS 0x55

#define BS_OK 0
#define BS_IOERR 1
#define BS_UNSUPP 2

#define BLK_QMAX 16

struct blk_hdr {
	u32 type;
	u32 reserved;
	u64 sector;
};

static struct vq_ring blk_ring;
static struct vdev blkdev;
static struct vq blkq;
static struct blk_hdr req_hdr __attribute__((aligned(64)));
static volatile u8 req_status __attribute__((aligned(64)));
static u8 buf[4096] __attribute__((aligned(4096)));

static u32 isr_ok, isr_bad;

/* Submit the chain and wait for it. Returns 0 on completion, -1 on timeout. */
static int blk_kick_wait(const struct vbuf *b, int n)
{
	int head = vq_add(&blkq, b, n);
	if (head < 0)
		return -2;
	vq_kick(&blkq);
	int id = vq_wait(&blkq, 0, SPIN_LIMIT);
	if (id == -1)
		return -1;

	/* InterruptStatus bit 0 (used buffer) must be set after a completion; ack it */
	u32 isr = 0;
	for (int i = 0; i < 10000; i++) {
		isr = rd32(blkdev.base + R_INT_STATUS);
		if (isr & 1)
			break;
	}
	if (isr & 1)
		isr_ok++;
	else
		isr_bad++;
	if (isr)
		wr32(blkdev.base + R_INT_ACK, isr);
	if (id != head)
		return -2;
	return 0;
}

/*
 * One request: header, optional data buffer, status byte.
 * data_dev_writes: the device writes the data buffer (IN, GET_ID, ...).
 * Returns the status byte, or a negative value on timeout / bad used element.
 */
static int blk_req(u32 type, u64 sector, void *data, u32 len, int data_dev_writes)
{
	req_hdr.type = type;
	req_hdr.reserved = 0;
	req_hdr.sector = sector;
	req_status = 0xff;

	struct vbuf b[3];
	int n = 0;
	b[n++] = (struct vbuf){&req_hdr, sizeof(req_hdr), 0};
	if (len)
		b[n++] = (struct vbuf){data, len, data_dev_writes};
	b[n++] = (struct vbuf){(void *)&req_status, 1, 1};
	barrier();

	int r = blk_kick_wait(b, n);
	if (r < 0)
		return r;
	return req_status;
}

static u8 disk_pat(u64 s, u32 j) { return (u8)((s * 7 + j) & 0xff); }
static u8 write_pat(u64 s, u32 j) { return (u8)((s * 13 + j + 1) & 0xff); }

static void blk_fail_req(const char *name, int st)
{
	if (st == -1)
		fail(name, "timeout waiting for used ring");
	else if (st < 0)
		fail(name, "bad used element id");
	else
		failx(name, "status", (u64)st);
}

static void test_blk(void)
{
	unsigned fails0 = n_fail;
	int di = virtio_find(VID_BLK, 0, 1);
	if (di < 0) {
		fail("blk", n_devs ? "no virtio-blk (magic, version 2, id 2) among cmdline devices"
				   : "no virtio_mmio.device= on the cmdline");
		return;
	}

	/* --- init (virtio 1.x, 3.1.1): VERSION_1 + FLUSH + RO when offered */
	if (virtio_begin(&blkdev, di, (1ull << F_FLUSH) | (1ull << F_RO), "blk-init") < 0)
		return;
	u64 blk = blkdev.base;
	u64 feat = blkdev.offered;
	int ro = (blkdev.features >> F_RO) & 1;
	int has_flush = (blkdev.features >> F_FLUSH) & 1;
	if (vq_setup(&blkdev, &blkq, 0, &blk_ring, BLK_QMAX, "blk-init") < 0)
		return;
	u16 qsz = blkq.size;
	wr32(blk + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);

	/* capacity (u64 at config 0), read consistently against ConfigGeneration */
	u64 cap = vcfg64(&blkdev, 0);

	puts_("blk dev=");
	putx(blk);
	puts_(" irq=");
	putu(dev_irq[di]);
	puts_(" features=");
	putx(feat);
	puts_(" qsz=");
	putu(qsz);
	puts_(" capacity=");
	putu(cap);
	puts_(ro ? " ro\n" : " rw\n");
	if (rd32(blk + R_STATUS) & 0x40) {	/* DEVICE_NEEDS_RESET */
		fail("blk-init", "device needs reset");
		return;
	}
	if (cap < 8) {
		failx("blk-init", "capacity below 8 sectors", cap);
		return;
	}
	pass("blk-init");

	/* --- read sectors 0..7: one 4 KiB request, then one request per sector */
	int st, bad = 0;
	for (u32 j = 0; j < 4096; j++)
		buf[j] = 0xee;
	st = blk_req(T_IN, 0, buf, 4096, 1);
	if (st != BS_OK) {
		blk_fail_req("blk-read", st);
		return;
	}
	for (u32 j = 0; j < 4096 && !bad; j++)
		if (buf[j] != disk_pat(j / 512, j % 512)) {
			failx("blk-read", "pattern mismatch in 4K read at byte", j);
			bad = 1;
		}
	for (u64 s = 0; s < 8 && !bad; s++) {
		for (u32 j = 0; j < 512; j++)
			buf[j] = 0xee;
		st = blk_req(T_IN, s, buf, 512, 1);
		if (st != BS_OK) {
			blk_fail_req("blk-read", st);
			return;
		}
		for (u32 j = 0; j < 512; j++)
			if (buf[j] != disk_pat(s, j)) {
				failx("blk-read", "pattern mismatch in sector", s);
				bad = 1;
				break;
			}
	}
	if (!bad)
		pass("blk-read");

	/* --- GET_ID */
	for (u32 j = 0; j < 21; j++)
		buf[j] = 0;
	st = blk_req(T_GET_ID, 0, buf, 20, 1);
	if (st != BS_OK) {
		blk_fail_req("blk-id", st);
	} else {
		puts_("blk id=");
		for (u32 j = 0; j < 20 && buf[j]; j++)
			putc_(buf[j] >= 0x20 && buf[j] < 0x7f ? (char)buf[j] : '?');
		puts_("\n");
		pass("blk-id");
	}

	if (!ro) {
		/* --- write sector 3, read it back, flush */
		for (u32 j = 0; j < 512; j++)
			buf[j] = write_pat(3, j);
		st = blk_req(T_OUT, 3, buf, 512, 0);
		if (st != BS_OK) {
			blk_fail_req("blk-write", st);
		} else {
			for (u32 j = 0; j < 512; j++)
				buf[j] = 0xee;
			st = blk_req(T_IN, 3, buf, 512, 1);
			if (st != BS_OK) {
				blk_fail_req("blk-write", st);
			} else {
				bad = 0;
				for (u32 j = 0; j < 512; j++)
					if (buf[j] != write_pat(3, j)) {
						failx("blk-write", "readback mismatch at byte", j);
						bad = 1;
						break;
					}
				if (!bad)
					pass("blk-write");
			}
		}
		if (has_flush) {
			st = blk_req(T_FLUSH, 0, 0, 0, 0);
			if (st != BS_OK)
				blk_fail_req("blk-flush", st);
			else
				pass("blk-flush");
		} else {
			puts_("blk flush not offered\n");
		}
	} else {
		/* --- read-only: a write must fail with IOERR and leave the data alone */
		for (u32 j = 0; j < 512; j++)
			buf[j] = write_pat(3, j);
		st = blk_req(T_OUT, 3, buf, 512, 0);
		if (st != BS_IOERR) {
			blk_fail_req("blk-ro", st);
		} else {
			st = blk_req(T_IN, 3, buf, 512, 1);
			bad = st != BS_OK;
			for (u32 j = 0; j < 512 && !bad; j++)
				if (buf[j] != disk_pat(3, j))
					bad = 1;
			if (bad)
				fail("blk-ro", "sector 3 changed or unreadable after rejected write");
			else
				pass("blk-ro");
		}
	}

	/* --- unknown request type -> UNSUPP */
	st = blk_req(T_BOGUS, 0, buf, 512, 1);
	if (st != BS_UNSUPP)
		blk_fail_req("blk-unsupp", st);
	else
		pass("blk-unsupp");

	/* --- InterruptStatus bit 0 after every completion */
	if (isr_bad || !isr_ok)
		failx("blk-irq", "InterruptStatus bit 0 missing after completions, count", isr_bad);
	else
		pass("blk-irq");

	if (n_fail == fails0)
		pass("blk");
	else
		fail("blk", "sub-test failed");
}

/* ---------------------------------------------------------------- pio */

static void test_pio(u64 n)
{
	for (u64 i = 0; i < n; i++)
		outb(COM1 + 7, (u8)i);
	puts_("pio done ");
	putu(n);
	puts_("\n");
	pass("pio");
}

/* ---------------------------------------------------------------- seq */

/*
 * tg.seq=<N>: N lines "seq <i> sum=<s>", each after tg.seq.spin=<K> outb's to the scratch register (the work between
 * two lines) folded into s = s*31 + k. The host can compute every line, so a VM snapshotted between two lines and
 * restored elsewhere shows whether it continued exactly where it stopped. With blk enabled, sector 0 is then read
 * again on the queue set up before (no re-init): the restored virtio-blk still serves it.
 */
static void test_seq(u64 n)
{
	u64 spin = opt_num("tg.seq.spin=", 10000), sum = 0;
	for (u64 i = 1; i <= n; i++) {
		for (u64 k = 0; k < spin; k++) {
			outb(COM1 + 7, (u8)k);
			sum = sum * 31 + k;
		}
		puts_("seq ");
		putu(i);
		puts_(" sum=");
		putu(sum);
		puts_("\n");
	}
	pass("seq");
	if (!test_enabled("blk"))
		return;
	int st = blk_req(T_IN, 0, buf, 512, 1);
	for (u32 j = 0; st == 0 && j < 512; j++)
		if (buf[j] != disk_pat(0, j))
			st = 0x100 + j;
	if (st)
		failx("seq-blk-read", "read of sector 0 after the sequence failed, status", st);
	else
		pass("seq-blk-read");
}

/* ---------------------------------------------------------------- main */

/* 1 if the PVH command line holds `word` (read straight from start_info, before anything is set up) */
static int cmdline_has(u32 start_info, const char *word)
{
	const volatile u8 *si = (const volatile u8 *)(u64)start_info;
	if (start_info == 0 || *(const volatile u32 *)si != 0x336ec578u)
		return 0;
	const volatile char *c = (const volatile char *)*(const volatile u64 *)(si + 24);
	if (!c)
		return 0;
	for (int i = 0; i < CMDLINE_MAX && c[i]; i++) {
		int j = 0;
		while (word[j] && c[i + j] == word[j])
			j++;
		if (!word[j])
			return 1;
	}
	return 0;
}

void tg_main(u32 start_info)
{
	if (cmdline_has(start_info, "tg.boottimer=first"))
		wr8(0xC0000000ull, 123);
	serial_init();
	puts_("FLINT-TESTGUEST start\n");
	parse_cmdline(start_info);

	/* run tests in a fixed order; report unknown names */
	const char *known[] = {"serial", "blk", "pio", "rng", "net", "balloon", "vsock", "seq", "blkbench", "acpi", "pmem", "mem", "pci", "pcihp"};
	const char *s = opt_tests;
	while (*s) {
		char name[32];
		int n = 0;
		while (*s && *s != ',') {
			if (n < 31)
				name[n++] = *s;
			s++;
		}
		name[n] = 0;
		if (*s == ',')
			s++;
		int k = 0;
		for (unsigned i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
			const char *a = name, *b = known[i];
			while (*a && *a == *b) {
				a++;
				b++;
			}
			if (!*a && !*b)
				k = 1;
		}
		if (n && !k)
			fail(name, "unknown test");
	}
	if (test_enabled("serial"))
		test_serial();
	if (test_enabled("blk"))
		test_blk();
	if (test_enabled("blkbench"))
		test_blkbench();
	if (opt_pio_set || test_enabled("pio"))
		test_pio(opt_pio_set ? opt_pio : 1000);
	if (test_enabled("seq"))
		test_seq(opt_num("tg.seq=", 10));
	if (test_enabled("rng"))
		test_rng();
	if (test_enabled("balloon"))
		test_balloon();
	if (test_enabled("net"))
		test_net();
	if (test_enabled("vsock"))
		test_vsock();
	if (test_enabled("acpi"))
		test_acpi(start_info ? *(const volatile u64 *)((u64)start_info + 32) : 0);
	if (test_enabled("pmem"))
		test_pmem();
	if (test_enabled("mem"))
		test_mem();
	if (test_enabled("pci"))
		test_pci();	/* pci.c: virtio-blk over virtio-pci + MSI-X (flint --enable-pci) */
	if (test_enabled("pcihp"))
		test_pcihp();	/* pci.c: a drive hot-plugged after the start, used, then unplugged */

	puts_("FLINT-TESTGUEST done pass=");
	putu(n_pass);
	puts_(" fail=");
	putu(n_fail);
	puts_("\n");

	/* wait for the last byte to leave the UART (LSR bit 6: transmitter empty) */
	for (int i = 0; i < 100000; i++)
		if (inb(COM1 + 5) & 0x40)
			break;

	if (opt_boottimer == 1)
		wr8(0xC0000000ull, 123);

	u64 agent_port = opt_num("tg.agent=", 0);
	if (agent_port && agent_port <= 0xffffffffull)
		agent_serve((u32)agent_port);	/* returns only when it could not start */

	/* tg.hold=1: stay halted instead of resetting, so the host can still talk to the VMM after the done line (a
	 * test's last API requests raced the guest's reset and found flint gone). */
	if (opt_num("tg.hold=", 0))
		for (;;)
			__asm__ __volatile__("cli; hlt");

	outb(0x64, 0xFE);	/* i8042 reset */
	for (volatile int i = 0; i < 1000; i++)
		;
	tg_triple_fault();
}
