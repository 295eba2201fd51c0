/*
 * mem: virtio-mem (device id 24), one request queue. Accepts VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE
 * (bit 1, which Flint and Firecracker require).
 *   mem dev=0x<base> addr=0x<a> region=0x<r> block=0x<b>                         (info)
 *   mem ready                          the driver is up; the host may now PATCH requested_size
 *   PASS mem-config                    addr = tg.mem.addr (default 512 GiB), region and block sizes
 *                                      non-zero, block a power of two, nothing plugged
 *   PASS mem-config-change             requested_size became non-zero within tg.mem.wait ms and
 *                                      the config-change interrupt bit was set
 *   PASS mem-refuse                    unaligned, outside and too-large plug requests answered ERROR
 *   PASS mem-plug                      PLUG of the first block: ACK, plugged_size = block size,
 *                                      STATE says PLUGGED
 *   PASS mem-rw                        a pattern written over the block (through our own page
 *                                      tables: the area is far above 4 GiB) reads back
 *   PASS mem-unplug                    UNPLUG: ACK, plugged_size 0, STATE says UNPLUGGED
 *   PASS mem-replug-zero               plugged again, the block reads as zeroes (the host dropped it)
 *   PASS mem-unplug-all                UNPLUG_ALL: ACK, plugged_size 0
 * With tg.mem.snap=1 (snapshot test), after mem-refuse instead:
 *   PASS mem-snap-plug                 blocks 0 and slot 1's first block plugged (two slots), a pattern
 *                                      written over both; then "mem snap ready": the host snapshots, restores
 *                                      in a new process, resumes and raises requested_size again
 *   PASS mem-snap-pattern              after that change, both blocks read back the pattern
 *   PASS mem-snap-state                block 1 (slot 0) is UNPLUGGED and plugged_size is 2 blocks still
 *   PASS mem-snap-replug               a further PLUG (block 1) is acknowledged and reads back a pattern
 */
#include "virtio.h"

#define VID_MEM 24
#define F_UNPLUGGED_INACCESSIBLE 1

#define C_BLOCK 0
#define C_ADDR 16
#define C_REGION 24
#define C_USABLE 32
#define C_PLUGGED 40
#define C_REQUESTED 48

#define REQ_PLUG 0
#define REQ_UNPLUG 1
#define REQ_UNPLUG_ALL 2
#define REQ_STATE 3
#define RESP_ACK 0
#define RESP_ERROR 3
#define ST_PLUGGED 0
#define ST_UNPLUGGED 1

struct mem_req {
	u16 type;
	u16 pad[3];
	u64 addr;
	u16 nb_blocks;
	u16 pad2[3];
} __attribute__((packed));

struct mem_resp {
	u16 type;
	u16 pad[3];
	u16 state;
} __attribute__((packed));

static struct vq_ring mem_ring;
static struct vdev memdev;
static struct vq memq;
static struct mem_req req __attribute__((aligned(64)));
static struct mem_resp resp __attribute__((aligned(64)));
/* page tables for the hotplug area: PML4[addr >> 39] -> pdpt, pdpt[..] -> pd (1 GiB of 2 MiB pages) */
static u64 hp_pdpt[512] __attribute__((aligned(4096)));
static u64 hp_pd[512] __attribute__((aligned(4096)));

/* one request; returns the response type (state in *st), or 0xffff on a timeout */
static u16 mem_request(u16 type, u64 addr, u16 nb, u16 *st)
{
	memset(&req, 0, sizeof(req));
	req.type = type;
	req.addr = addr;
	req.nb_blocks = nb;
	resp.type = 0xeeee;
	resp.state = 0xeeee;
	struct vbuf b[2] = {{&req, sizeof(req), 0}, {&resp, sizeof(resp), 1}};
	int head = vq_add(&memq, b, 2);
	if (head < 0)
		return 0xffff;
	vq_kick(&memq);
	u32 len = 0;
	int id = vq_wait_until(&memq, &len, deadline_ms(opt_num("tg.timeout=", 5000)));
	virtio_isr_ack(&memdev);
	if (id != head)
		return 0xffff;
	barrier();
	if (st)
		*st = resp.state;
	return resp.type;
}

/* identity-map [addr, addr + 1 GiB) with 2 MiB pages (the boot tables cover the low 4 GiB only) */
static void map_area(u64 addr)
{
	u64 cr3;
	__asm__ __volatile__("mov %%cr3, %0" : "=r"(cr3));
	u64 *pml4 = (u64 *)(cr3 & ~0xfffull);
	u64 base = addr & ~((1ull << 30) - 1);
	for (int i = 0; i < 512; i++)
		hp_pd[i] = (base + ((u64)i << 21)) | 0x83;	/* P | RW | PS */
	hp_pdpt[(base >> 30) & 511] = (u64)hp_pd | 0x3;
	pml4[(base >> 39) & 511] = (u64)hp_pdpt | 0x3;
	__asm__ __volatile__("mov %0, %%cr3" : : "r"(cr3) : "memory");
}

static u64 pattern(u64 a) { return a * 0x9e3779b97f4a7c15ull ^ 0x5a5a; }

static void fill_pattern(u64 from, u64 len)
{
	for (u64 a = from; a < from + len; a += 8)
		*(volatile u64 *)a = pattern(a);
}

static int has_pattern(u64 from, u64 len)
{
	for (u64 a = from; a < from + len; a += 8)
		if (*(volatile u64 *)a != pattern(a))
			return 0;
	return 1;
}

/* tg.mem.snap=1: plug in two slots, write, let the host snapshot and restore, then check what came back */
static void mem_snapshot(u64 addr, u64 block, u64 requested)
{
	u64 slot = opt_num("tg.mem.slot=", 128ull << 20);
	u64 second = addr + slot;
	if (requested < slot + block || mem_request(REQ_PLUG, addr, 1, 0) != RESP_ACK
	    || mem_request(REQ_PLUG, second, 1, 0) != RESP_ACK || vcfg64(&memdev, C_PLUGGED) != 2 * block) {
		fail("mem-snap-plug", "plugs in two slots not acknowledged");
		return;
	}
	map_area(addr);
	fill_pattern(addr, block);
	fill_pattern(second, block);
	pass("mem-snap-plug");
	puts_("mem snap ready\n");

	/* the restored VM's host raises requested_size: the device (and its config interrupt) works after the load */
	u64 dl = deadline_ms(opt_num("tg.mem.wait=", 20000));
	while (!expired(dl) && vcfg64(&memdev, C_REQUESTED) == requested)
		cpu_relax();
	u64 now = vcfg64(&memdev, C_REQUESTED);
	virtio_isr_ack(&memdev);
	if (now == requested) {
		fail("mem-snap-pattern", "requested_size did not change after the restore");
		return;
	}
	if (has_pattern(addr, block) && has_pattern(second, block))
		pass("mem-snap-pattern");
	else
		fail("mem-snap-pattern", "plugged memory lost its contents across the snapshot");

	u16 st = 0;
	if (mem_request(REQ_STATE, addr + block, 1, &st) == RESP_ACK && st == ST_UNPLUGGED
	    && mem_request(REQ_STATE, second, 1, &st) == RESP_ACK && st == ST_PLUGGED
	    && vcfg64(&memdev, C_PLUGGED) == 2 * block)
		pass("mem-snap-state");
	else
		failx("mem-snap-state", "unexpected plug state after the restore, plugged", vcfg64(&memdev, C_PLUGGED));

	if (mem_request(REQ_PLUG, addr + block, 1, 0) != RESP_ACK || vcfg64(&memdev, C_PLUGGED) != 3 * block) {
		fail("mem-snap-replug", "plug after the restore not acknowledged");
		return;
	}
	fill_pattern(addr + block, block);
	if (has_pattern(addr + block, block) && has_pattern(addr, block))
		pass("mem-snap-replug");
	else
		fail("mem-snap-replug", "memory plugged after the restore did not read back");
}

void test_mem(void)
{
	int idx = virtio_find(VID_MEM, 0, 0);
	if (idx < 0) {
		fail("mem", "no virtio-mem device");
		return;
	}
	if (virtio_begin(&memdev, idx, 1ull << F_UNPLUGGED_INACCESSIBLE, "mem") < 0)
		return;
	if (!(memdev.features & (1ull << F_UNPLUGGED_INACCESSIBLE))) {
		failx("mem", "UNPLUGGED_INACCESSIBLE not offered, features", memdev.offered);
		return;
	}
	if (vq_setup(&memdev, &memq, 0, &mem_ring, VQ_MAX, "mem") < 0 || virtio_ready(&memdev, "mem") < 0)
		return;

	u64 block = vcfg64(&memdev, C_BLOCK), addr = vcfg64(&memdev, C_ADDR), region = vcfg64(&memdev, C_REGION);
	puts_("mem dev=");
	putx(memdev.base);
	puts_(" addr=");
	putx(addr);
	puts_(" region=");
	putx(region);
	puts_(" block=");
	putx(block);
	puts_("\n");
	if (addr != opt_num("tg.mem.addr=", 512ull << 30) || !block || (block & (block - 1)) || !region
	    || vcfg64(&memdev, C_PLUGGED) != 0) {
		fail("mem-config", "unexpected config space");
		return;
	}
	pass("mem-config");

	/* the host raises requested_size (PATCH /hotplug/memory) once it sees this line */
	puts_("mem ready\n");
	u64 dl = deadline_ms(opt_num("tg.mem.wait=", 20000));
	u64 requested = 0;
	u32 isr = 0;
	while (!expired(dl) && (requested = vcfg64(&memdev, C_REQUESTED)) == 0)
		cpu_relax();
	isr = rd32(memdev.base + R_INT_STATUS);
	wr32(memdev.base + R_INT_ACK, isr);
	if (!requested) {
		fail("mem-config-change", "requested_size stayed 0");
		return;
	}
	if (!(isr & 2))
		failx("mem-config-change", "no config-change interrupt, status", isr);
	else
		pass("mem-config-change");

	u16 st = 0;
	int refused = mem_request(REQ_PLUG, addr + 4096, 1, 0) == RESP_ERROR	/* unaligned */
		&& mem_request(REQ_PLUG, addr - block, 1, 0) == RESP_ERROR		/* below the area */
		&& mem_request(REQ_PLUG, addr + region, 1, 0) == RESP_ERROR		/* past it */
		&& mem_request(REQ_PLUG, addr, 0, 0) == RESP_ERROR			/* no blocks */
		&& mem_request(REQ_PLUG, addr, (u16)(requested / block + 1), 0) == RESP_ERROR; /* above the target */
	if (refused)
		pass("mem-refuse");
	else
		fail("mem-refuse", "a hostile plug request was acknowledged");

	if (opt_num("tg.mem.snap=", 0)) {
		mem_snapshot(addr, block, requested);
		return;
	}

	if (mem_request(REQ_PLUG, addr, 1, 0) != RESP_ACK || vcfg64(&memdev, C_PLUGGED) != block
	    || mem_request(REQ_STATE, addr, 1, &st) != RESP_ACK || st != ST_PLUGGED) {
		fail("mem-plug", "plug not acknowledged or not reported");
		return;
	}
	pass("mem-plug");

	map_area(addr);
	for (u64 a = addr; a < addr + block; a += 8)
		*(volatile u64 *)a = pattern(a);
	int ok = 1;
	for (u64 a = addr; a < addr + block; a += 8)
		if (*(volatile u64 *)a != pattern(a))
			ok = 0;
	if (ok)
		pass("mem-rw");
	else
		fail("mem-rw", "plugged memory did not read back");

	if (mem_request(REQ_UNPLUG, addr, 1, 0) != RESP_ACK || vcfg64(&memdev, C_PLUGGED) != 0
	    || mem_request(REQ_STATE, addr, 1, &st) != RESP_ACK || st != ST_UNPLUGGED) {
		fail("mem-unplug", "unplug not acknowledged or not reported");
		return;
	}
	pass("mem-unplug");

	if (mem_request(REQ_PLUG, addr, 1, 0) != RESP_ACK) {
		fail("mem-replug-zero", "replug not acknowledged");
		return;
	}
	ok = 1;
	for (u64 a = addr; a < addr + block; a += 4096)
		if (*(volatile u64 *)a != 0)
			ok = 0;
	if (ok)
		pass("mem-replug-zero");
	else
		fail("mem-replug-zero", "unplugged memory came back with its old contents");

	if (mem_request(REQ_UNPLUG_ALL, 0, 0, 0) != RESP_ACK || vcfg64(&memdev, C_PLUGGED) != 0)
		fail("mem-unplug-all", "UNPLUG_ALL not acknowledged or memory still plugged");
	else
		pass("mem-unplug-all");
	(void)C_USABLE;
}
