/*
 * balloon: virtio-balloon (device id 5). Queues: inflate 0, deflate 1, stats 2 (when
 * VIRTIO_BALLOON_F_STATS_VQ, bit 1, is offered; we accept it).
 *   balloon dev=0x<base> features=0x<f> num_pages=<n> pages=<k> stats=0|1   (info)
 *   PASS balloon-stats-posted       one stats buffer (10 x {u16 tag, u64 val}) queued
 *   PASS balloon-inflate            k PFNs sent in batches of <= 256, all used; actual=k
 *   PASS balloon-deflate            the same PFNs on the deflate queue, all used; actual=0
 *   PASS balloon-discarded          the first page (patterned before inflate) reads as 0
 *   PASS balloon-report             (VIRTIO_BALLOON_F_REPORTING, bit 5, offered: we accept it) one
 *                                   device-writable 2 MiB range of patterned pages sent on the
 *                                   reporting queue (after stats, if any) comes back used and
 *                                   reads as 0: the host dropped the reported pages
 * Pages come from RAM above the image (2 MiB aligned, at most 16 MiB, inside the
 * start_info memory map's RAM region; 4 MiB when there is no map).
 * Options: tg.balloon.wait=<ms> (wait for num_pages != 0, default 0),
 * tg.balloon.pages=<k> (used when num_pages is 0, default 256),
 * tg.balloon.strict=0 ("balloon page not zero" is info, not FAIL; for QEMU).
 */
#include "virtio.h"

#define F_STATS_VQ 1
#define F_REPORTING 5
#define REPORT_BYTES (2u << 20)
#define BATCH 256
#define POOL_MAX (16ull << 20)

extern char __bss_end[];

static struct vq_ring bl_ring[4];
static struct vdev bldev;
static struct vq blq[4];
static u32 pfns[BATCH] __attribute__((aligned(64)));

struct bl_stat {
	u16 tag;
	u64 val;
} __attribute__((packed));
static struct bl_stat stats[10] __attribute__((aligned(64)));

static u64 pattern(u64 addr) { return addr * 0x9e3779b97f4a7c15ull | 1; }

/* send PFNs of pages [base, base + n*4K) on queue q; 0 ok, -1 timeout, -2 bad element */
static int send_pfns(struct vq *q, u64 base, u32 n)
{
	for (u32 done = 0; done < n;) {
		u32 k = n - done < BATCH ? n - done : BATCH;
		for (u32 i = 0; i < k; i++)
			pfns[i] = (u32)((base >> 12) + done + i);
		struct vbuf b = {pfns, k * 4, 0};
		int head = vq_add(q, &b, 1);
		if (head < 0)
			return -2;
		vq_kick(q);
		int id = vq_wait_until(q, 0, deadline_ms(opt_num("tg.timeout=", 5000)));
		virtio_isr_ack(&bldev);
		if (id == -1)
			return -1;
		if (id != head)
			return -2;
		done += k;
	}
	return 0;
}

/* free page reporting: pattern a 2 MiB range, report it, expect it back used and reading 0 */
static void report_free_pages(struct vq *q, u64 start, u64 end)
{
	if (end - start < REPORT_BYTES) {
		fail("balloon-report", "pool smaller than one report");
		return;
	}
	for (u64 a = start; a < start + REPORT_BYTES; a += 8)
		*(volatile u64 *)a = pattern(a);
	struct vbuf b = {(void *)start, REPORT_BYTES, 1};
	int head = vq_add(q, &b, 1);
	if (head < 0) {
		fail("balloon-report", "reporting queue full");
		return;
	}
	vq_kick(q);
	int id = vq_wait_until(q, 0, deadline_ms(opt_num("tg.timeout=", 5000)));
	virtio_isr_ack(&bldev);
	if (id != head) {
		fail("balloon-report", id == -1 ? "timeout waiting for used ring" : "bad used element");
		return;
	}
	u32 nz = 0;
	for (u64 a = start; a < start + REPORT_BYTES; a += 8)
		nz += *(volatile u64 *)a != 0;
	if (nz)
		failx("balloon-report", "reported range not zero, nonzero words", nz);
	else
		pass("balloon-report");
}

void test_balloon(void)
{
	int di = virtio_find(VID_BALLOON, 0, 0);
	if (di < 0) {
		fail("balloon", "no virtio-balloon (id 5) among cmdline devices");
		return;
	}
	if (virtio_begin(&bldev, di, 1ull << F_STATS_VQ | 1ull << F_REPORTING, "balloon") < 0)
		return;
	int has_stats = (bldev.features >> F_STATS_VQ) & 1;
	int has_report = (bldev.features >> F_REPORTING) & 1;
	/* queues are numbered by negotiated feature: inflate, deflate, [stats], [reporting] */
	for (int i = 0; i < 2 + has_stats + has_report; i++)
		if (vq_setup(&bldev, &blq[i], (u16)i, &bl_ring[i], 16, "balloon") < 0)
			return;
	if (virtio_ready(&bldev, "balloon") < 0)
		return;

	u64 start = ((u64)__bss_end + (2ull << 20) - 1) & ~((2ull << 20) - 1);
	u64 end = ram_end_at(start);
	if (!end)
		end = start + (4ull << 20);
	if (end > start + POOL_MAX)
		end = start + POOL_MAX;
	u32 pool = end > start ? (u32)((end - start) >> 12) : 0;

	u64 dl = deadline_ms(opt_num("tg.balloon.wait=", 0));
	u32 num = vcfg32(&bldev, 0);
	while (!num && !expired(dl)) {
		cpu_relax();
		num = vcfg32(&bldev, 0);
	}
	u32 pages = num ? num : (u32)opt_num("tg.balloon.pages=", 256);
	if (pages > pool)
		pages = pool;

	puts_("balloon dev=");
	putx(bldev.base);
	puts_(" features=");
	putx(bldev.offered);
	puts_(" num_pages=");
	putu(num);
	puts_(" pages=");
	putu(pages);
	puts_(" pool=");
	putx(start);
	puts_(" stats=");
	putu((u64)has_stats);
	puts_("\n");
	if (!pages) {
		fail("balloon", "no pages to inflate (pool empty)");
		return;
	}

	if (has_stats) {
		u64 memtot = ram_end_at(0x100000);
		for (u16 t = 0; t < 10; t++) {
			stats[t].tag = t;
			stats[t].val = 0;
		}
		stats[3].val = 1000;				/* MINFLT */
		stats[4].val = (u64)(pool - pages) << 12;	/* MEMFREE */
		stats[5].val = memtot ? memtot : end;		/* MEMTOT */
		stats[6].val = (u64)(pool - pages) << 12;	/* AVAIL */
		struct vbuf b = {stats, sizeof(stats), 0};
		if (vq_add(&blq[2], &b, 1) < 0) {
			fail("balloon-stats-posted", "stats queue full");
		} else {
			vq_kick(&blq[2]);
			pass("balloon-stats-posted");
		}
	}

	/* pattern, then inflate */
	for (u32 p = 0; p < pages; p++) {
		volatile u64 *w = (volatile u64 *)(start + ((u64)p << 12));
		for (int i = 0; i < 512; i++)
			w[i] = pattern((u64)&w[i]);
	}
	int r = send_pfns(&blq[0], start, pages);
	if (r == -1) {
		fail("balloon-inflate", "timeout waiting for used ring");
		return;
	}
	if (r < 0) {
		fail("balloon-inflate", "bad used element");
		return;
	}
	wr32(bldev.base + R_CONFIG + 4, pages);	/* actual */
	pass("balloon-inflate");

	r = send_pfns(&blq[1], start, pages);
	if (r == -1) {
		fail("balloon-deflate", "timeout waiting for used ring");
		return;
	}
	if (r < 0) {
		fail("balloon-deflate", "bad used element");
		return;
	}
	wr32(bldev.base + R_CONFIG + 4, 0);
	pass("balloon-deflate");

	/* the host discarded the page on inflate: it must read back as zeros */
	volatile u64 *w = (volatile u64 *)start;
	u32 nz = 0, pat = 0;
	for (int i = 0; i < 512; i++) {
		nz += w[i] != 0;
		pat += w[i] == pattern((u64)&w[i]);
	}
	if (!nz) {
		pass("balloon-discarded");
	} else if (!opt_num("tg.balloon.strict=", 1)) {
		puts_("balloon page not zero (");
		putu(pat);
		puts_(" of 512 words still patterned)\n");
	} else {
		failx("balloon-discarded", "page not zero after inflate+deflate, nonzero words", nz);
	}
	if (has_report)
		report_free_pages(&blq[2 + has_stats], start, end);
}
