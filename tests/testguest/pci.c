/*
 * pci: virtio-blk over virtio-pci with MSI-X (flint --enable-pci). Polled like every test here, interrupts
 * stay disabled (IF=0): an MSI the device sends lands in the local APIC's IRR, where this test looks for it.
 *   pci dev=00:<nn>.0 id=<vendor>:<device> bar=0x<addr>           (info)
 *   PASS pci-enum        host bridge 8086:0d57 at 00:00.0 through ECAM, and a virtio-blk function (1af4:1042)
 *   PASS pci-cf8         the 0xCF8/0xCFC mechanism reads the same ids
 *   PASS pci-bar         BAR0 is a 64-bit memory BAR of 512 KiB; a write of another address does not move it
 *   PASS pci-caps        common, notify, ISR, device cfg and MSI-X capabilities found, all in BAR0
 *   PASS pci-blk-read    sector 4 read over the queue holds the disk pattern
 *   PASS pci-msix-irq    that completion set the queue vector's bit in the LAPIC IRR
 *   PASS pci-blk-write   sector 5 written with the write pattern and read back
 *   PASS pci-msix-mask   with the entry masked a completion sets the PBA bit, no IRR bit; unmasking delivers it
 *   PASS pci
 * Options: tg.pci.ecam=<addr> (default Firecracker's 0xEEC00000: IOAPIC - 256 MiB).
 * tg.pci.seq=<N>: then queue vector 0x54 is programmed and N lines "seq <i> sum=<s>" are printed as tg.seq prints them
 * (tg.seq.spin=), then sector 4 is read and sector 6 written and read back on the same queue, with no re-init:
 *   PASS pci-seq-blk     both requests done, data right, and the completion raised vector 0x54 in the IRR
 * A VM snapshotted during the sequence and restored in another process shows its virtio-pci function, queue and
 * MSI-X route (the vector was programmed before the snapshot) came back.
 */
#include "virtio.h"

#define ECAM_DEFAULT 0xEEC00000ull
#define LAPIC 0xFEE00000ull
#define MMIO64 0x4000000000ull	/* 256 GiB: Firecracker's 64-bit MMIO window */
#define VEC_QUEUE 0x51
#define VEC_CONFIG 0x52
#define VEC_MASKED 0x53
#define VEC_AFTER_SEQ 0x54

/* common cfg offsets (virtio 1.x 4.1.4.3) */
#define C_DFSEL 0x00
#define C_DF 0x04
#define C_GFSEL 0x08
#define C_GF 0x0c
#define C_MSIX 0x10
#define C_NUMQ 0x12
#define C_STATUS 0x14
#define C_QSEL 0x16
#define C_QSIZE 0x18
#define C_QMSIX 0x1a
#define C_QENABLE 0x1c
#define C_QNOFF 0x1e
#define C_QDESC 0x20
#define C_QDRIVER 0x28
#define C_QDEVICE 0x30

static inline u16 rd16(u64 a) { return *(volatile u16 *)a; }
static inline void wr16(u64 a, u16 v) { *(volatile u16 *)a = v; }

static u64 pd_hi[512] __attribute__((aligned(4096)));
static struct vq_ring pq_ring;
static struct vq pq;
static u8 sect[512] __attribute__((aligned(512)));
static struct {
	u32 type, reserved;
	u64 sector;
} __attribute__((packed)) hdr;
static u8 status;

static u64 ecam, bar, common, notify, isr_at, devcfg, msix_table, msix_pba;
static u32 notify_mult;
static u16 notify_off;
static int msix_cap;
static int slot;

static u64 cfg_addr(int dev, int reg) { return ecam + ((u64)dev << 15) + (u64)reg; }

/* Identity-map [256 GiB, 257 GiB) uncached with 2 MiB pages: entry.S maps only the low 4 GiB. */
static void map_mmio64(void)
{
	u64 cr3;
	__asm__ __volatile__("mov %%cr3, %0" : "=r"(cr3));
	u64 *pml4 = (u64 *)(cr3 & ~0xfffull);
	u64 *pdpt = (u64 *)(pml4[0] & 0x000ffffffffff000ull);
	for (int i = 0; i < 512; i++)
		pd_hi[i] = (MMIO64 + ((u64)i << 21)) | 0x9b;	/* P RW PWT PCD PS */
	pdpt[MMIO64 >> 30] = (u64)pd_hi | 0x3;
	__asm__ __volatile__("mov %0, %%cr3" : : "r"(cr3) : "memory");
}

static int irr(int vec) { return (rd32(LAPIC + 0x200 + 0x10 * (vec / 32)) >> (vec % 32)) & 1; }

static int wait_irr(int vec, u64 ms)
{
	u64 dl = deadline_ms(ms);
	while (!expired(dl))
		if (irr(vec))
			return 1;
		else
			cpu_relax();
	return irr(vec);
}

static u32 cf8_read(int dev, int reg)
{
	u32 addr = 0x80000000u | ((u32)dev << 11) | (u32)reg;
	__asm__ __volatile__("outl %0, %1" : : "a"(addr), "Nd"((u16)0xcf8));
	u32 v;
	__asm__ __volatile__("inl %1, %0" : "=a"(v) : "Nd"((u16)0xcfc));
	return v;
}

/* one request: type 0 read / 1 write of one sector; returns the status byte or -1 on timeout */
static int blk_rq(u32 type, u64 sector)
{
	hdr.type = type;
	hdr.reserved = 0;
	hdr.sector = sector;
	status = 0xff;
	struct vbuf b[3] = {{&hdr, 16, 0}, {sect, 512, type == 0}, {&status, 1, 1}};
	if (vq_add(&pq, b, 3) < 0)
		return -2;
	barrier();
	wr16(notify + (u64)notify_off * notify_mult, 0);
	u32 len;
	if (vq_wait_until(&pq, &len, deadline_ms(opt_num("tg.timeout=", 5000))) < 0)
		return -1;
	return status;
}

static int find_caps(void)
{
	int found = 0, guard = 0;
	int at = rd8(cfg_addr(slot, 0x34));
	while (at && guard++ < 48) {
		u8 id = rd8(cfg_addr(slot, at));
		if (id == 0x09) {
			u8 type = rd8(cfg_addr(slot, at + 3));
			u8 b = rd8(cfg_addr(slot, at + 4));
			u32 off = rd32(cfg_addr(slot, at + 8));
			if (b != 0)
				return 0;
			if (type == 1) { common = bar + off; found |= 1; }
			if (type == 2) { notify = bar + off; notify_mult = rd32(cfg_addr(slot, at + 16)); found |= 2; }
			if (type == 3) { isr_at = bar + off; found |= 4; }
			if (type == 4) { devcfg = bar + off; found |= 8; }
		} else if (id == 0x11) {
			msix_cap = at;
			u32 t = rd32(cfg_addr(slot, at + 4)), p = rd32(cfg_addr(slot, at + 8));
			if ((t & 7) || (p & 7))
				return 0;
			msix_table = bar + (t & ~7u);
			msix_pba = bar + (p & ~7u);
			found |= 16;
		}
		at = rd8(cfg_addr(slot, at + 1));
	}
	return found == 31;
}

static void msix_entry(int i, u8 vec, int masked)
{
	u64 e = msix_table + 16ull * i;
	u32 apic = rd32(LAPIC + 0x20) >> 24;
	wr32(e + 12, 1);	/* mask while rewriting */
	wr32(e, 0xFEE00000u | (apic << 12));
	wr32(e + 4, 0);
	wr32(e + 8, vec);
	wr32(e + 12, masked ? 1 : 0);
}

/* one split queue of the function: rings in *r, size min(device's, VQ_MAX); its notify offset in *noff */
static int queue_setup(u16 index, struct vq *q, struct vq_ring *r, u16 *noff)
{
	wr16(common + C_QSEL, index);
	u16 size = rd16(common + C_QSIZE);
	if (size == 0)
		return -6;
	u16 want = VQ_MAX;
	while (want > size)
		want >>= 1;
	wr16(common + C_QSIZE, want);
	q->dev = 0;
	q->r = r;
	q->index = index;
	q->size = want;
	q->avail_idx = q->used_seen = 0;
	q->free_head = 0;
	q->num_free = want;
	memset(r, 0, sizeof(*r));
	for (u16 i = 0; i < want; i++)
		r->desc[i].next = (u16)(i + 1);
	u64 d = (u64)&r->desc, a = (u64)&r->avail, u = (u64)&r->used;
	wr32(common + C_QDESC, (u32)d); wr32(common + C_QDESC + 4, (u32)(d >> 32));
	wr32(common + C_QDRIVER, (u32)a); wr32(common + C_QDRIVER + 4, (u32)(a >> 32));
	wr32(common + C_QDEVICE, (u32)u); wr32(common + C_QDEVICE + 4, (u32)(u >> 32));
	wr16(common + C_QMSIX, 0);
	if (rd16(common + C_QMSIX) != 0)
		return -7;
	*noff = rd16(common + C_QNOFF);
	wr16(common + C_QENABLE, 1);
	return 0;
}

/* reset, VERSION_1 + (offered & want_lo), MSI-X config vector 1, nq queues (qs[i] on rings[i]), DRIVER_OK */
static int virtio_setup_queues(u32 want_lo, int nq, struct vq *qs, struct vq_ring *rings, u16 *noffs)
{
	wr8(common + C_STATUS, 0);
	if (rd8(common + C_STATUS) != 0)
		return -1;
	wr8(common + C_STATUS, S_ACK);
	wr8(common + C_STATUS, S_ACK | S_DRIVER);
	wr32(common + C_DFSEL, 1);
	if (!(rd32(common + C_DF) & 1))
		return -2;	/* VERSION_1 */
	wr32(common + C_DFSEL, 0);
	u32 lo = rd32(common + C_DF) & want_lo;
	wr32(common + C_GFSEL, 0);
	wr32(common + C_GF, lo);
	wr32(common + C_GFSEL, 1);
	wr32(common + C_GF, 1);
	wr8(common + C_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd8(common + C_STATUS) & S_FEATURES_OK))
		return -3;
	wr16(common + C_MSIX, 1);
	if (rd16(common + C_MSIX) != 1)
		return -4;
	if (rd16(common + C_NUMQ) < nq)
		return -5;
	for (int i = 0; i < nq; i++) {
		int e = queue_setup((u16)i, &qs[i], &rings[i], &noffs[i]);
		if (e)
			return e;
	}
	wr8(common + C_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	if (rd8(common + C_STATUS) & S_NEEDS_RESET)
		return -8;
	return 0;
}

static int virtio_setup(void) { return virtio_setup_queues(0, 1, &pq, &pq_ring, &notify_off); }

/* tg.pci.seq: the sequence a snapshot is taken in, then the function used again as it was set up before */
static void pci_seq(u64 n)
{
	msix_entry(0, VEC_AFTER_SEQ, 0);
	u64 spin = opt_num("tg.seq.spin=", 10000), sum = 0;
	for (u64 i = 1; i <= n; i++) {
		for (u64 k = 0; k < spin; k++) {
			outb(0x3f8 + 7, (u8)k);	/* the UART scratch register, as tg.seq */
			sum = sum * 31 + k;
		}
		puts_("seq ");
		putu(i);
		puts_(" sum=");
		putu(sum);
		puts_("\n");
	}
	pass("seq");
	int st = blk_rq(0, 4);
	int match = st == 0;
	for (int j = 0; match && j < 512; j++)
		match = sect[j] == (u8)(4 * 7 + j);
	for (int j = 0; j < 512; j++)
		sect[j] = (u8)(6 * 13 + j + 1);
	int st2 = blk_rq(1, 6);
	memset(sect, 0, 512);
	int st3 = blk_rq(0, 6);
	match = match && st2 == 0 && st3 == 0;
	for (int j = 0; match && j < 512; j++)
		match = sect[j] == (u8)(6 * 13 + j + 1);
	int raised = wait_irr(VEC_AFTER_SEQ, 1000);
	if (match && raised)
		pass("pci-seq-blk");
	else {
		puts_("pci seq: status="); putu((u64)(st & 0xff)); puts_(","); putu((u64)(st2 & 0xff)); puts_(","); putu((u64)(st3 & 0xff));
		puts_(" data="); putu((u64)match); puts_(" irr="); putu((u64)raised); puts_("\n");
		fail("pci-seq-blk", "the virtio-pci function did not serve the requests after the sequence");
	}
}

void test_pci(void)
{
	ecam = opt_num("tg.pci.ecam=", ECAM_DEFAULT);
	int ok = 1;

	/* enumeration through ECAM */
	if (rd32(cfg_addr(0, 0)) != 0x0d578086u || (rd32(cfg_addr(0, 8)) >> 16) != 0x0600u) {
		failx("pci-enum", "no host bridge 8086:0d57 at 00:00.0, read", rd32(cfg_addr(0, 0)));
		return;
	}
	slot = -1;
	for (int dev = 1; dev < 32; dev++) {
		u32 id = rd32(cfg_addr(dev, 0));
		if (id == 0xffffffffu)
			continue;
		puts_("pci dev=00:"); putx((u64)dev); puts_(".0 id="); putx(id & 0xffff); puts_(":"); putx(id >> 16); puts_("\n");
		if (id == 0x10421af4u && slot < 0)
			slot = dev;
	}
	if (slot < 0) {
		fail("pci-enum", "no virtio-blk (1af4:1042) function");
		return;
	}
	pass("pci-enum");

	if (cf8_read(0, 0) == 0x0d578086u && cf8_read(slot, 0) == 0x10421af4u)
		pass("pci-cf8");
	else {
		fail("pci-cf8", "ids through 0xCF8 differ");
		ok = 0;
	}

	/* BAR0: size it, then try to move it */
	u64 b0 = cfg_addr(slot, 0x10), b1 = cfg_addr(slot, 0x14);
	u32 lo = rd32(b0), hi = rd32(b1);
	wr32(b0, 0xffffffffu);
	u32 szlo = rd32(b0);
	wr32(b0, lo);
	wr32(b1, 0xffffffffu);
	u32 szhi = rd32(b1);
	wr32(b1, hi);
	bar = ((u64)hi << 32) | (lo & ~0xfu);
	u64 size = ~(((u64)szhi << 32) | (szlo & ~0xfu)) + 1;
	puts_("pci dev=00:"); putx((u64)slot); puts_(".0 bar=0x"); putx(bar); puts_(" size=0x"); putx(size); puts_("\n");
	wr32(b0, 0x10000000u);	/* a hostile move onto low memory: ignored */
	if ((lo & 7) != 4 || size != 0x80000 || rd32(b0) != lo || bar < MMIO64 || bar >= MMIO64 + (1ull << 30)) {
		failx("pci-bar", "unexpected BAR0, size", size);
		return;
	}
	pass("pci-bar");
	map_mmio64();
	wr16(cfg_addr(slot, 4), 0x6);	/* memory space + bus master */

	if (!find_caps()) {
		fail("pci-caps", "virtio or MSI-X capability missing or not in BAR0");
		return;
	}
	pass("pci-caps");

	/* MSI-X: entry 0 for the queue, 1 for config changes; LAPIC software-enabled so it accepts them */
	wr32(LAPIC + 0xf0, rd32(LAPIC + 0xf0) | 0x100);
	msix_entry(0, VEC_QUEUE, 0);
	msix_entry(1, VEC_CONFIG, 0);
	wr16(cfg_addr(slot, msix_cap + 2), 0x8000);	/* MSI-X enable */

	int e = virtio_setup();
	if (e) {
		failx("pci", "virtio-pci setup failed at step", (u64)-e);
		return;
	}

	int st = blk_rq(0, 4);
	int match = st == 0;
	for (int j = 0; match && j < 512; j++)
		match = sect[j] == (u8)(4 * 7 + j);
	if (match)
		pass("pci-blk-read");
	else {
		failx("pci-blk-read", "status or data wrong, status", (u64)st);
		ok = 0;
	}
	if (wait_irr(VEC_QUEUE, 1000))
		pass("pci-msix-irq");
	else {
		fail("pci-msix-irq", "queue vector not raised in the LAPIC IRR");
		ok = 0;
	}

	for (int j = 0; j < 512; j++)
		sect[j] = (u8)(5 * 13 + j + 1);
	st = blk_rq(1, 5);
	memset(sect, 0, 512);
	int st2 = blk_rq(0, 5);
	match = st == 0 && st2 == 0;
	for (int j = 0; match && j < 512; j++)
		match = sect[j] == (u8)(5 * 13 + j + 1);
	if (match)
		pass("pci-blk-write");
	else {
		failx("pci-blk-write", "write/read-back failed, status", (u64)(st < 0 ? 0xff : st));
		ok = 0;
	}

	/* masking: a fresh vector number so an earlier IRR bit cannot fake the result */
	msix_entry(0, VEC_MASKED, 1);
	st = blk_rq(0, 4);
	/* The PBA bit may follow the used entry a moment later (a vhost-user backend's completion reaches the VMM
	 * through an eventfd after the backend wrote the used ring): wait for it, boundedly. */
	u64 pdl = deadline_ms(1000);
	while (!(rd32(msix_pba) & 1) && !expired(pdl))
		cpu_relax();
	int pending = (int)(rd32(msix_pba) & 1);
	int early = wait_irr(VEC_MASKED, 50);
	wr32(msix_table + 12, 0);	/* unmask: the pending message goes out now */
	int late = wait_irr(VEC_MASKED, 1000);
	int cleared = !(rd32(msix_pba) & 1);
	if (st == 0 && pending && !early && late && cleared)
		pass("pci-msix-mask");
	else {
		puts_("pci mask: status="); putu((u64)(st & 0xff)); puts_(" pending="); putu((u64)pending);
		puts_(" early="); putu((u64)early); puts_(" late="); putu((u64)late); puts_(" cleared="); putu((u64)cleared); puts_("\n");
		fail("pci-msix-mask", "masked vector not held in the PBA and delivered on unmask");
		ok = 0;
	}
	(void)isr_at;
	if (ok)
		pass("pci");
	u64 lines = opt_num("tg.pci.seq=", 0);
	if (ok && lines)
		pci_seq(lines);
}

/*
 * pcihp: PCI device hotplug (flint --enable-pci; the host PUTs a drive after InstanceStart, then DELETEs it).
 * Firecracker sends no hotplug notification, so the guest rescans the bus, as Linux's /sys/bus/pci/rescan does.
 *   pcihp waiting             the bus as booted has been seen: the host may PUT the drive now
 *   PASS pcihp-found          a rescan found a virtio-blk (1af4:1042) in a slot that was empty at boot
 *   PASS pcihp-use            its BAR sized, MSI-X programmed, sector 4 read (disk pattern), sector 5 written and read back
 *   pcihp released            the driver reset the device (as Linux's remove does): the host may DELETE it now
 *   PASS pcihp-gone           a rescan finds that slot empty (vendor 0xFFFF) and the other functions still there
 *   PASS pcihp
 * Options: tg.pcihp.wait=<ms> for each wait on the host (default 60000).
 * With tg.pcihp.net=1 the host plugs a network interface (on a TAP at tg.net.hostip=, default 172.16.0.1) instead:
 *   PASS pcihp-found          a rescan found a virtio-net (1af4:1041) in a slot that was empty at boot
 *   pcihp net mac=<mac> qsz=<rx>/<tx>                        (info)
 *   pcihp net arp-reply <mac>                                 (info)
 *   PASS pcihp-use            rx and tx queues set up over virtio-pci, an ARP request for the host's address sent
 *                             (tg.net.ip=, default 172.16.0.2) and the host's ARP reply received
 *   then released / gone as above.
 * With tg.pcihp.snap=1 the drive is kept instead of released (a snapshot after hotplug and unplug):
 *   pcihp snap-ready          the host may unplug another drive, snapshot, load in a new process and resume
 *   pcihp marker              sector 7 of the hot-plugged drive (polled over its queue) holds "FLINT-GO", which the
 *                             host writes only after the restore: the queue and device work in the new process
 *   pcihp snap slots=<mask>   the functions on the bus now (the host checks the unplugged one stays gone)
 *   PASS pcihp-snap-bus       the hot-plugged function is in its slot at the BAR it had before the snapshot
 *   PASS pcihp-snap-io        sector 6 written and read back over it
 */
static void pcihp_snap(u64 wait)
{
	u64 bar_before = bar;
	puts_("pcihp snap-ready\n");
	int seen = 0;
	u64 dl = deadline_ms(wait);
	while (!seen && !expired(dl)) {
		int st = blk_rq(0, 7);
		static const char marker[] = "FLINT-GO";
		seen = st == 0;
		for (int j = 0; seen && j < 8; j++)
			seen = sect[j] == (u8)marker[j];
		for (int i = 0; i < 100000 && !seen; i++)
			cpu_relax();
	}
	if (!seen) {
		fail("pcihp-snap-io", "no marker from the host in sector 7");
		return;
	}
	puts_("pcihp marker\n");
	u32 now = 0;
	for (int dev = 1; dev < 32; dev++)
		if (rd32(cfg_addr(dev, 0)) != 0xffffffffu)
			now |= 1u << dev;
	puts_("pcihp snap slots="); putx(now); puts_("\n");
	u32 lo = rd32(cfg_addr(slot, 0x10)), hi = rd32(cfg_addr(slot, 0x14));
	u64 bar_now = ((u64)hi << 32) | (lo & ~0xfu);
	if (rd32(cfg_addr(slot, 0)) != 0x10421af4u || bar_now != bar_before) {
		failx("pcihp-snap-bus", "the hot-plugged function moved; BAR now", bar_now);
		return;
	}
	pass("pcihp-snap-bus");
	for (int j = 0; j < 512; j++)
		sect[j] = (u8)(6 * 13 + j + 1);
	int st1 = blk_rq(1, 6);
	memset(sect, 0, 512);
	int st2 = blk_rq(0, 6);
	int match = st1 == 0 && st2 == 0;
	for (int j = 0; match && j < 512; j++)
		match = sect[j] == (u8)(6 * 13 + j + 1);
	if (!match) {
		failx("pcihp-snap-io", "write/read-back after the restore failed, status", (u64)(st1 & 0xff));
		return;
	}
	pass("pcihp-snap-io");
	pass("pcihp");
}

/* release the function (reset, as Linux's remove does), let the host unplug it, see its slot empty */
static void pcihp_release(u64 wait, u32 booted)
{
	wr8(common + C_STATUS, 0);	/* release the device, as a guest must before the host unplugs it */
	wr16(cfg_addr(slot, 4), 0);
	puts_("pcihp released\n");
	u64 dl = deadline_ms(wait);
	while (rd32(cfg_addr(slot, 0)) != 0xffffffffu && !expired(dl))
		cpu_relax();
	u32 after = 0;
	for (int dev = 1; dev < 32; dev++)
		if (rd32(cfg_addr(dev, 0)) != 0xffffffffu)
			after |= 1u << dev;
	if (after != booted) {
		failx("pcihp-gone", "the bus after the unplug differs from the booted one, slots", after);
		return;
	}
	pass("pcihp-gone");
	pass("pcihp");
}

/* pcihp net: the hot-plugged virtio-net, polled; rx queue 0, tx queue 1, 12-byte virtio_net_hdr_v1 */
#define PN_HDR 12
#define PN_FRAME 1514
#define PN_NRX 4
#define PN_F_MAC (1u << 5)
static struct vq_ring pn_ring[2];
static struct vq pn_q[2];
static u16 pn_noff[2];
static u8 pn_rx[PN_NRX][PN_HDR + PN_FRAME] __attribute__((aligned(16)));
static u8 pn_tx[PN_HDR + 60] __attribute__((aligned(64)));
static u8 pn_mac[6], pn_ip[4], pn_hostip[4];

static void pn_kick(int q) { barrier(); wr16(notify + (u64)pn_noff[q] * notify_mult, (u16)q); }

static void pn_put_mac(const u8 *m)
{
	for (int i = 0; i < 6; i++) {
		if (i)
			putc_(':');
		putc_("0123456789abcdef"[m[i] >> 4]);
		putc_("0123456789abcdef"[m[i] & 15]);
	}
}

static int pn_eq(const u8 *a, const u8 *b, int n)
{
	while (n--)
		if (*a++ != *b++)
			return 0;
	return 1;
}

/* a broadcast ARP request "who has hostip, tell ip"; 0 once the device used it, -1 on timeout */
static int pn_arp_request(void)
{
	memset(pn_tx, 0, sizeof(pn_tx));
	u8 *f = pn_tx + PN_HDR, *a = f + 14;
	memset(f, 0xff, 6);
	memcpy(f + 6, pn_mac, 6);
	f[12] = 0x08; f[13] = 0x06;
	a[1] = 1;		/* Ethernet */
	a[2] = 0x08;		/* IPv4 */
	a[4] = 6; a[5] = 4;
	a[7] = 1;		/* request */
	memcpy(a + 8, pn_mac, 6);
	memcpy(a + 14, pn_ip, 4);
	memcpy(a + 24, pn_hostip, 4);
	struct vbuf b = {pn_tx, sizeof(pn_tx), 0};
	if (vq_add(&pn_q[1], &b, 1) < 0)
		return -1;
	pn_kick(1);
	return vq_wait_until(&pn_q[1], 0, deadline_ms(1000)) < 0 ? -1 : 0;
}

/* an ARP reply from hostip to us in rx buffer i (len bytes with the header): its sender MAC in mac */
static int pn_is_reply(const u8 *p, u32 len, u8 *mac)
{
	if (len < PN_HDR + 14 + 28 || len > PN_HDR + PN_FRAME)
		return 0;
	const u8 *f = p + PN_HDR, *a = f + 14;
	if (f[12] != 0x08 || f[13] != 0x06 || a[7] != 2 || !pn_eq(a + 14, pn_hostip, 4) || !pn_eq(a + 24, pn_ip, 4))
		return 0;
	memcpy(mac, a + 8, 6);
	return 1;
}

static int pcihp_net(void)
{
	opt_ip("tg.net.ip=", "172.16.0.2", pn_ip);
	opt_ip("tg.net.hostip=", "172.16.0.1", pn_hostip);
	int e = virtio_setup_queues(PN_F_MAC, 2, pn_q, pn_ring, pn_noff);
	if (e) {
		failx("pcihp-use", "virtio-pci net setup failed at step", (u64)-e);
		return 0;
	}
	static const u8 dflt[6] = {0x06, 0x00, 0xac, 0x10, 0x00, 0x02};
	wr32(common + C_DFSEL, 0);
	if (rd32(common + C_DF) & PN_F_MAC)
		for (int i = 0; i < 6; i++)
			pn_mac[i] = rd8(devcfg + (u64)i);
	else
		memcpy(pn_mac, dflt, 6);
	puts_("pcihp net mac="); pn_put_mac(pn_mac);
	puts_(" qsz="); putu(pn_q[0].size); puts_("/"); putu(pn_q[1].size); puts_("\n");
	u8 rx_of_head[VQ_MAX];
	for (int i = 0; i < PN_NRX; i++) {
		struct vbuf b = {pn_rx[i], sizeof(pn_rx[i]), 1};
		int h = vq_add(&pn_q[0], &b, 1);
		if (h < 0) {
			fail("pcihp-use", "no room for the rx buffers");
			return 0;
		}
		rx_of_head[h] = (u8)i;
	}
	pn_kick(0);
	u8 hmac[6];
	int got = 0;
	u64 each = opt_num("tg.timeout=", 5000) / 5 + 1;
	for (int t = 0; t < 5 && !got; t++) {
		if (pn_arp_request() < 0) {
			fail("pcihp-use", "the ARP request was not sent (tx used ring)");
			return 0;
		}
		u64 dl = deadline_ms(each);
		while (!got && !expired(dl)) {
			u32 len = 0;
			int h = vq_pop(&pn_q[0], &len);
			if (h < 0 || h >= VQ_MAX) {
				cpu_relax();
				continue;
			}
			int i = rx_of_head[h];
			got = pn_is_reply(pn_rx[i], len, hmac);
			struct vbuf b = {pn_rx[i], sizeof(pn_rx[i]), 1};	/* give it back: other frames may come first */
			int nh = vq_add(&pn_q[0], &b, 1);
			if (nh >= 0) {
				rx_of_head[nh] = (u8)i;
				pn_kick(0);
			}
		}
	}
	if (!got) {
		fail("pcihp-use", "no ARP reply from the host over the hot-plugged interface");
		return 0;
	}
	puts_("pcihp net arp-reply "); pn_put_mac(hmac); puts_("\n");
	return 1;
}

void test_pcihp(void)
{
	ecam = opt_num("tg.pci.ecam=", ECAM_DEFAULT);
	u64 wait = opt_num("tg.pcihp.wait=", 60000);
	int net = opt_num("tg.pcihp.net=", 0) != 0;
	u32 want_id = net ? 0x10411af4u : 0x10421af4u;
	if (rd32(cfg_addr(0, 0)) != 0x0d578086u) {
		failx("pcihp", "no host bridge 8086:0d57 at 00:00.0, read", rd32(cfg_addr(0, 0)));
		return;
	}
	u32 booted = 0;
	for (int dev = 1; dev < 32; dev++)
		if (rd32(cfg_addr(dev, 0)) != 0xffffffffu)
			booted |= 1u << dev;
	puts_("pcihp waiting booted="); putx(booted); puts_("\n");

	slot = -1;
	u64 dl = deadline_ms(wait);
	while (slot < 0 && !expired(dl)) {
		for (int dev = 1; dev < 32 && slot < 0; dev++)
			if (!(booted & (1u << dev)) && rd32(cfg_addr(dev, 0)) == want_id)
				slot = dev;
		for (int i = 0; i < 10000 && slot < 0; i++)
			cpu_relax();
	}
	if (slot < 0) {
		fail("pcihp-found", net ? "no new virtio-net function appeared" : "no new virtio-blk function appeared");
		return;
	}
	puts_("pcihp dev=00:"); putx((u64)slot); puts_(".0\n");
	pass("pcihp-found");

	u32 lo = rd32(cfg_addr(slot, 0x10)), hi = rd32(cfg_addr(slot, 0x14));
	bar = ((u64)hi << 32) | (lo & ~0xfu);
	if ((lo & 7) != 4 || bar < MMIO64 || bar >= MMIO64 + (1ull << 30)) {
		failx("pcihp-use", "unexpected BAR0", bar);
		return;
	}
	map_mmio64();
	wr16(cfg_addr(slot, 4), 0x6);
	if (!find_caps()) {
		fail("pcihp-use", "virtio or MSI-X capability missing");
		return;
	}
	wr32(LAPIC + 0xf0, rd32(LAPIC + 0xf0) | 0x100);
	msix_entry(0, VEC_QUEUE, 0);
	msix_entry(1, VEC_CONFIG, 0);
	wr16(cfg_addr(slot, msix_cap + 2), 0x8000);
	if (net) {
		if (!pcihp_net())
			return;
		pass("pcihp-use");
		pcihp_release(wait, booted);
		return;
	}
	int e = virtio_setup();
	if (e) {
		failx("pcihp-use", "virtio-pci setup failed at step", (u64)-e);
		return;
	}
	int st = blk_rq(0, 4);
	int match = st == 0;
	for (int j = 0; match && j < 512; j++)
		match = sect[j] == (u8)(4 * 7 + j);
	for (int j = 0; j < 512; j++)
		sect[j] = (u8)(5 * 13 + j + 1);
	int st1 = blk_rq(1, 5);
	memset(sect, 0, 512);
	int st2 = blk_rq(0, 5);
	match = match && st1 == 0 && st2 == 0;
	for (int j = 0; match && j < 512; j++)
		match = sect[j] == (u8)(5 * 13 + j + 1);
	if (!match) {
		failx("pcihp-use", "read/write over the hot-plugged function failed, status", (u64)(st & 0xff));
		return;
	}
	pass("pcihp-use");
	if (opt_num("tg.pcihp.snap=", 0)) {
		pcihp_snap(wait);
		return;
	}

	pcihp_release(wait, booted);
}
