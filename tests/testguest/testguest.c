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
 *   tg.tests=<comma list>     default "serial,blk" (known: serial, blk, pio)
 *   tg.pio=<N>                N outb's to port 0x3ff (implies the pio test)
 *   tg.boottimer=0|1          default 1: write byte 123 to MMIO 0xC0000000 at the end
 *
 * Disk pattern (the host writes the disk file this way):
 *   byte j of sector s = (s*7 + j) & 0xff                 (checked on sectors 0..7)
 * Write pattern (read-write disks only, sector 3 gets overwritten):
 *   byte j of sector s = (s*13 + j + 1) & 0xff
 *
 * At the end the guest resets through the i8042 (outb 0x64, 0xFE); if it is still
 * running it forces a triple fault, so the VMM always sees a shutdown.
 */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned long usize;

#define barrier() __asm__ __volatile__("" ::: "memory")

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

/* ---------------------------------------------------------------- port / mmio I/O */

static inline void outb(u16 port, u8 v) { __asm__ __volatile__("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
	u8 v;
	__asm__ __volatile__("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline u32 rd32(u64 a) { return *(volatile u32 *)a; }
static inline void wr32(u64 a, u32 v) { *(volatile u32 *)a = v; }
static inline void wr8(u64 a, u8 v) { *(volatile u8 *)a = v; }

/* ---------------------------------------------------------------- serial */

#define COM1 0x3f8

static void serial_init(void)
{
	outb(COM1 + 1, 0x00);	/* IER: no interrupts */
	outb(COM1 + 3, 0x03);	/* LCR: 8N1, DLAB off */
	outb(COM1 + 4, 0x03);	/* MCR: DTR | RTS */
}

static void putc_(char c)
{
	/* wait for THR empty (LSR bit 5), bounded so a missing UART can't hang us */
	for (int i = 0; i < 100000; i++)
		if (inb(COM1 + 5) & 0x20)
			break;
	outb(COM1, (u8)c);
}

static void puts_(const char *s)
{
	while (*s)
		putc_(*s++);
}

static void putu(u64 v)
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

static void putx(u64 v)
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

static unsigned n_pass, n_fail;

static void pass(const char *name)
{
	n_pass++;
	puts_("PASS ");
	puts_(name);
	puts_("\n");
}

static void fail(const char *name, const char *why)
{
	n_fail++;
	puts_("FAIL ");
	puts_(name);
	puts_(": ");
	puts_(why);
	puts_("\n");
}

/* FAIL <name>: <why> <value> */
static void failx(const char *name, const char *why, u64 v)
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

#define MAX_DEVS 16
#define CMDLINE_MAX 2048

static char cmdline[CMDLINE_MAX];
static u64 dev_base[MAX_DEVS];
static u32 dev_irq[MAX_DEVS];
static int n_devs;
static char opt_tests[256] = "serial,blk";
static u64 opt_pio;
static int opt_pio_set;
static int opt_boottimer = 1;

static int prefix(const char *s, const char *p)
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
static u64 parse_num(const char **sp, int *ok)
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
			opt_boottimer = tok[13] != '0';
		}
	}
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

#define VIRTIO_MAGIC 0x74726976u
#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_DEV_FEAT 0x010
#define R_DEV_FEAT_SEL 0x014
#define R_DRV_FEAT 0x020
#define R_DRV_FEAT_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_INT_STATUS 0x060
#define R_INT_ACK 0x064
#define R_STATUS 0x070
#define R_QUEUE_DESC_LO 0x080
#define R_QUEUE_DESC_HI 0x084
#define R_QUEUE_DRIVER_LO 0x090
#define R_QUEUE_DRIVER_HI 0x094
#define R_QUEUE_DEVICE_LO 0x0a0
#define R_QUEUE_DEVICE_HI 0x0a4
#define R_CONFIG_GEN 0x0fc
#define R_CONFIG 0x100

#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_FAILED 128

#define F_RO 5
#define F_FLUSH 9
#define F_VERSION_1 32

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_BOGUS 0x55

#define BS_OK 0
#define BS_IOERR 1
#define BS_UNSUPP 2

#define D_NEXT 1
#define D_WRITE 2

#define QMAX 16
#define SPIN_LIMIT 20000000u

struct vq_desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};
struct vq_avail {
	u16 flags;
	u16 idx;
	u16 ring[QMAX];
	u16 used_event;
};
struct vq_used_elem {
	u32 id;
	u32 len;
};
struct vq_used {
	u16 flags;
	u16 idx;
	struct vq_used_elem ring[QMAX];
	u16 avail_event;
};
struct blk_hdr {
	u32 type;
	u32 reserved;
	u64 sector;
};

static struct vq_desc vq_desc[QMAX] __attribute__((aligned(4096)));
static struct vq_avail vq_avail __attribute__((aligned(4096)));
static struct vq_used vq_used __attribute__((aligned(4096)));
static struct blk_hdr req_hdr __attribute__((aligned(64)));
static volatile u8 req_status __attribute__((aligned(64)));
static u8 buf[4096] __attribute__((aligned(4096)));

static u64 blk;		/* MMIO base */
static u16 qsz, avail_idx, used_seen;
static u32 isr_ok, isr_bad;
static u32 last_used_len;

/* Submit desc chain 0.. and wait for it. Returns 0 on completion, -1 on timeout. */
static int vq_kick_wait(void)
{
	vq_avail.ring[avail_idx % qsz] = 0;
	barrier();
	avail_idx++;
	*(volatile u16 *)&vq_avail.idx = avail_idx;
	barrier();
	wr32(blk + R_QUEUE_NOTIFY, 0);

	u32 spins = 0;
	while (*(volatile u16 *)&vq_used.idx == used_seen) {
		if (++spins >= SPIN_LIMIT)
			return -1;
		__asm__ __volatile__("pause");
	}
	barrier();
	struct vq_used_elem e = *(volatile struct vq_used_elem *)&vq_used.ring[used_seen % qsz];
	used_seen++;
	last_used_len = e.len;

	/* InterruptStatus bit 0 (used buffer) must be set after a completion; ack it */
	u32 isr = 0;
	for (int i = 0; i < 10000; i++) {
		isr = rd32(blk + R_INT_STATUS);
		if (isr & 1)
			break;
	}
	if (isr & 1)
		isr_ok++;
	else
		isr_bad++;
	if (isr)
		wr32(blk + R_INT_ACK, isr);
	if (e.id != 0)
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

	int d = 0;
	vq_desc[d].addr = (u64)&req_hdr;
	vq_desc[d].len = sizeof(req_hdr);
	vq_desc[d].flags = D_NEXT;
	vq_desc[d].next = 1;
	d++;
	if (len) {
		vq_desc[d].addr = (u64)data;
		vq_desc[d].len = len;
		vq_desc[d].flags = D_NEXT | (data_dev_writes ? D_WRITE : 0);
		vq_desc[d].next = (u16)(d + 1);
		d++;
	}
	vq_desc[d].addr = (u64)&req_status;
	vq_desc[d].len = 1;
	vq_desc[d].flags = D_WRITE;
	vq_desc[d].next = 0;
	barrier();

	int r = vq_kick_wait();
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

/* find the first virtio-mmio device with version 2, device id 2 */
static int blk_find(void)
{
	for (int i = 0; i < n_devs; i++) {
		u64 b = dev_base[i];
		puts_("virtio dev=");
		putx(b);
		puts_(" magic=");
		putx(rd32(b + R_MAGIC));
		puts_(" version=");
		putu(rd32(b + R_VERSION));
		puts_(" id=");
		putu(rd32(b + R_DEVICE_ID));
		puts_("\n");
		if (rd32(b + R_MAGIC) == VIRTIO_MAGIC && rd32(b + R_VERSION) == 2 &&
		    rd32(b + R_DEVICE_ID) == 2)
			return i;
	}
	return -1;
}

static void test_blk(void)
{
	unsigned fails0 = n_fail;
	int di = blk_find();
	if (di < 0) {
		fail("blk", n_devs ? "no virtio-blk (magic, version 2, id 2) among cmdline devices"
				   : "no virtio_mmio.device= on the cmdline");
		return;
	}
	blk = dev_base[di];

	/* --- init (virtio 1.x, 3.1.1) */
	wr32(blk + R_STATUS, 0);
	if (rd32(blk + R_STATUS) != 0) {
		fail("blk-init", "status not 0 after reset");
		return;
	}
	wr32(blk + R_STATUS, S_ACK);
	wr32(blk + R_STATUS, S_ACK | S_DRIVER);
	wr32(blk + R_DEV_FEAT_SEL, 0);
	u32 f_lo = rd32(blk + R_DEV_FEAT);
	wr32(blk + R_DEV_FEAT_SEL, 1);
	u32 f_hi = rd32(blk + R_DEV_FEAT);
	u64 feat = (u64)f_hi << 32 | f_lo;
	if (!(feat & (1ull << F_VERSION_1))) {
		failx("blk-init", "VERSION_1 not offered, features", feat);
		wr32(blk + R_STATUS, S_FAILED);
		return;
	}
	u64 want = (1ull << F_VERSION_1) | (feat & ((1ull << F_FLUSH) | (1ull << F_RO)));
	int ro = (want >> F_RO) & 1;
	int has_flush = (want >> F_FLUSH) & 1;
	wr32(blk + R_DRV_FEAT_SEL, 0);
	wr32(blk + R_DRV_FEAT, (u32)want);
	wr32(blk + R_DRV_FEAT_SEL, 1);
	wr32(blk + R_DRV_FEAT, (u32)(want >> 32));
	wr32(blk + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd32(blk + R_STATUS) & S_FEATURES_OK)) {
		fail("blk-init", "FEATURES_OK not accepted");
		wr32(blk + R_STATUS, S_FAILED);
		return;
	}

	wr32(blk + R_QUEUE_SEL, 0);
	if (rd32(blk + R_QUEUE_READY) != 0) {
		fail("blk-init", "queue 0 already ready");
		return;
	}
	u32 qmax = rd32(blk + R_QUEUE_NUM_MAX);
	if (qmax == 0) {
		fail("blk-init", "QueueNumMax is 0");
		return;
	}
	qsz = (u16)(qmax < QMAX ? qmax : QMAX);
	avail_idx = used_seen = 0;
	wr32(blk + R_QUEUE_NUM, qsz);
	wr32(blk + R_QUEUE_DESC_LO, (u32)(u64)vq_desc);
	wr32(blk + R_QUEUE_DESC_HI, (u32)((u64)vq_desc >> 32));
	wr32(blk + R_QUEUE_DRIVER_LO, (u32)(u64)&vq_avail);
	wr32(blk + R_QUEUE_DRIVER_HI, (u32)((u64)&vq_avail >> 32));
	wr32(blk + R_QUEUE_DEVICE_LO, (u32)(u64)&vq_used);
	wr32(blk + R_QUEUE_DEVICE_HI, (u32)((u64)&vq_used >> 32));
	wr32(blk + R_QUEUE_READY, 1);
	wr32(blk + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);

	/* capacity (u64 at config 0), read consistently against ConfigGeneration */
	u32 gen, lo, hi;
	do {
		gen = rd32(blk + R_CONFIG_GEN);
		lo = rd32(blk + R_CONFIG);
		hi = rd32(blk + R_CONFIG + 4);
	} while (gen != rd32(blk + R_CONFIG_GEN));
	u64 cap = (u64)hi << 32 | lo;

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

/* ---------------------------------------------------------------- main */

void tg_main(u32 start_info)
{
	serial_init();
	puts_("FLINT-TESTGUEST start\n");
	parse_cmdline(start_info);

	/* run tests in a fixed order; report unknown names */
	const char *known[] = {"serial", "blk", "pio"};
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
	if (opt_pio_set || test_enabled("pio"))
		test_pio(opt_pio_set ? opt_pio : 1000);

	puts_("FLINT-TESTGUEST done pass=");
	putu(n_pass);
	puts_(" fail=");
	putu(n_fail);
	puts_("\n");

	/* wait for the last byte to leave the UART (LSR bit 6: transmitter empty) */
	for (int i = 0; i < 100000; i++)
		if (inb(COM1 + 5) & 0x40)
			break;

	if (opt_boottimer)
		wr8(0xC0000000ull, 123);

	outb(0x64, 0xFE);	/* i8042 reset */
	for (volatile int i = 0; i < 1000; i++)
		;
	tg_triple_fault();
}
