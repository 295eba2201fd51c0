/*
 * balloon: virtio-balloon (device id 5). Queues are numbered by negotiated feature, as the Linux
 * driver numbers them: inflate 0, deflate 1, then stats (VIRTIO_BALLOON_F_STATS_VQ, bit 1), free
 * page hinting (VIRTIO_BALLOON_F_FREE_PAGE_HINT, bit 3), free page reporting
 * (VIRTIO_BALLOON_F_REPORTING, bit 5), each only when negotiated; we accept all three when offered.
 *   balloon dev=0x<base> features=0x<f> num_pages=<n> pages=<k> stats=0|1   (info)
 *   PASS balloon-stats-posted       one stats buffer (10 x {u16 tag, u64 val}) queued
 *   PASS balloon-inflate            k PFNs sent in batches of <= 256, all used; actual=k
 *   PASS balloon-deflate            the same PFNs on the deflate queue, all used; actual=0
 *   PASS balloon-discarded          the first page (patterned before inflate) reads as 0
 *   PASS balloon-report             (reporting negotiated) 8 MiB of patterned pages sent on the
 *                                   reporting queue as one chain of four device-writable 2 MiB
 *                                   ranges (as Linux reports 2 MiB blocks) comes back used and reads
 *                                   as 0: the host dropped the reported pages
 *   PASS balloon-hint               (hinting negotiated, tg.balloon.host=<ms> given) a free page
 *                                   hinting run as the Linux driver does it: the host starts a run
 *                                   (free_page_hint_cmd_id >= 2, read on the config-change
 *                                   interrupt); we send that id (4 bytes, device-readable), hint 8 MiB
 *                                   of patterned pages (four device-writable 2 MiB buffers), send
 *                                   STOP (0), wait for the host's DONE (1), then the range reads 0
 * tg.balloon.host=<ms> lets the host act between the steps (each wait bounded by <ms>, default
 * 0: no waits, no hinting run): reporting prints "balloon-report patterned mib=8", waits for a
 * config change (PATCH /balloon), reports, prints "balloon-report returned", waits for another
 * config change, then checks the range; hinting prints "balloon-hint patterned mib=8" before the
 * run and "balloon-hint stopped" after STOP, so the host can measure its memory at those points.
 * Pages come from RAM above the image (2 MiB aligned, at most 16 MiB, inside the
 * start_info memory map's RAM region; 4 MiB when there is no map).
 * Options: tg.balloon.wait=<ms> (wait for num_pages != 0, default 0),
 * tg.balloon.pages=<k> (used when num_pages is 0, default 256),
 * tg.balloon.strict=0 ("balloon page not zero" is info, not FAIL; for QEMU),
 * tg.balloon.host=<ms> (above).
 */
#include "virtio.h"

#define F_STATS_VQ 1
#define F_FREE_PAGE_HINT 3
#define F_REPORTING 5
#define CFG_HINT_CMD_ID 8	/* free_page_hint_cmd_id in config space */
#define CMD_ID_STOP 0
#define CMD_ID_DONE 1
#define CMD_ID_FIRST_RUN 2
#define ISR_CONFIG 2		/* InterruptStatus: configuration change */
#define FREE_BYTES (8u << 20)	/* reported / hinted */
#define FREE_CHUNK (2u << 20)
#define FREE_CHUNKS (FREE_BYTES / FREE_CHUNK)
#define BATCH 256
#define POOL_MAX (16ull << 20)

extern char __bss_end[];

static struct vq_ring bl_ring[5];
static struct vdev bldev;
static struct vq blq[5];
/* command ids sent on the hinting queue: each its own buffer, the device reads it once used */
static u32 hint_id __attribute__((aligned(64)));
static u32 hint_stop __attribute__((aligned(64)));
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

static void pattern_range(u64 start, u64 len)
{
	for (u64 a = start; a < start + len; a += 8)
		*(volatile u64 *)a = pattern(a);
}

/* words of [start, start+len) that are not 0 */
static u32 nonzero_words(u64 start, u64 len)
{
	u32 nz = 0;
	for (u64 a = start; a < start + len; a += 8)
		nz += *(volatile u64 *)a != 0;
	return nz;
}

/* The config-change interrupt (InterruptStatus bit 1), polled and acknowledged; 0 on timeout. */
static int wait_config_change(u64 dl)
{
	while (!(rd32(bldev.base + R_INT_STATUS) & ISR_CONFIG)) {
		if (expired(dl))
			return 0;
		cpu_relax();
	}
	wr32(bldev.base + R_INT_ACK, ISR_CONFIG);
	return 1;
}

/* free_page_hint_cmd_id, read again on every config change until it names a new run (run=1:
 * >= 2, other than `last`) or is DONE (run=0); the value, or -1 on timeout */
static long long wait_hint_cmd(int run, u32 last, u64 dl)
{
	for (;;) {
		u32 id = vcfg32(&bldev, CFG_HINT_CMD_ID);
		if (run ? id >= CMD_ID_FIRST_RUN && id != last : id == CMD_ID_DONE)
			return id;
		if (!wait_config_change(dl))
			return -1;
	}
}

/* one chain on q, kicked, its used element awaited; 0 ok, -1 timeout, -2 queue full or bad element */
static int send_chain(struct vq *q, const struct vbuf *b, int n)
{
	int head = vq_add(q, b, n);
	if (head < 0)
		return -2;
	vq_kick(q);
	int id = vq_wait_until(q, 0, deadline_ms(opt_num("tg.timeout=", 5000)));
	/* only the used-ring bit: a config change must stay pending for wait_config_change */
	if (rd32(bldev.base + R_INT_STATUS) & 1)
		wr32(bldev.base + R_INT_ACK, 1);
	if (id == -1)
		return -1;
	return id == head ? 0 : -2;
}

static void fail_send(const char *name, int r)
{
	fail(name, r == -1 ? "timeout waiting for used ring" : "queue full or bad used element");
}

/* free page reporting: pattern 8 MiB, report it as four 2 MiB ranges in one chain, expect it
 * back used and reading 0; host_ms: wait for the host (config changes) before and after */
static void report_free_pages(struct vq *q, u64 start, u64 end, u64 host_ms)
{
	if (end - start < FREE_BYTES) {
		fail("balloon-report", "pool smaller than one report");
		return;
	}
	pattern_range(start, FREE_BYTES);
	if (host_ms) {
		puts_("balloon-report patterned mib=8\n");
		if (!wait_config_change(deadline_ms(host_ms))) {
			fail("balloon-report", "no config change from the host before reporting");
			return;
		}
	}
	struct vbuf b[FREE_CHUNKS];
	for (u32 i = 0; i < FREE_CHUNKS; i++)
		b[i] = (struct vbuf){(void *)(start + (u64)i * FREE_CHUNK), FREE_CHUNK, 1};
	int r = send_chain(q, b, FREE_CHUNKS);
	if (r < 0) {
		fail_send("balloon-report", r);
		return;
	}
	if (host_ms) {
		puts_("balloon-report returned\n");
		if (!wait_config_change(deadline_ms(host_ms))) {
			fail("balloon-report", "no config change from the host after reporting");
			return;
		}
	}
	u32 nz = nonzero_words(start, FREE_BYTES);
	if (nz)
		failx("balloon-report", "reported range not zero, nonzero words", nz);
	else
		pass("balloon-report");
}

/* free page hinting, one run as the Linux driver does it (virtio_balloon.c's
 * report_free_page_func / send_cmd_id_start / send_free_pages / send_cmd_id_stop) */
static void hint_free_pages(struct vq *q, u64 start, u64 end, u64 host_ms)
{
	if (end - start < FREE_BYTES) {
		fail("balloon-hint", "pool smaller than the hinted range");
		return;
	}
	pattern_range(start, FREE_BYTES);
	/* the id in config space now (STOP after reset) is no run of ours */
	u32 before = vcfg32(&bldev, CFG_HINT_CMD_ID);
	puts_("balloon-hint patterned mib=8\n");
	long long id = wait_hint_cmd(1, before, deadline_ms(host_ms));
	if (id < 0) {
		fail("balloon-hint", "the host started no hinting run (free_page_hint_cmd_id < 2)");
		return;
	}
	puts_("balloon-hint cmd_id=");
	putu((u64)id);
	puts_("\n");
	hint_id = (u32)id;
	struct vbuf cmd = {&hint_id, 4, 0};
	int r = send_chain(q, &cmd, 1);
	for (u32 i = 0; r == 0 && i < FREE_CHUNKS; i++) {
		struct vbuf h = {(void *)(start + (u64)i * FREE_CHUNK), FREE_CHUNK, 1};
		r = send_chain(q, &h, 1);
	}
	hint_stop = CMD_ID_STOP;
	struct vbuf stop = {&hint_stop, 4, 0};
	if (r == 0)
		r = send_chain(q, &stop, 1);
	if (r < 0) {
		fail_send("balloon-hint", r);
		return;
	}
	puts_("balloon-hint stopped\n");
	/* the hinted pages are the host's until it says DONE */
	if (wait_hint_cmd(0, 0, deadline_ms(host_ms)) < 0) {
		fail("balloon-hint", "no DONE from the host after STOP");
		return;
	}
	u32 nz = nonzero_words(start, FREE_BYTES);
	if (nz && opt_num("tg.balloon.strict=", 1)) {
		failx("balloon-hint", "hinted range not zero after DONE, nonzero words", nz);
		return;
	}
	if (nz) {		/* QEMU only skips hinted pages when migrating; it keeps them */
		puts_("balloon-hint range not zero (");
		putu(nz);
		puts_(" nonzero words)\n");
	}
	pass("balloon-hint");
}

void test_balloon(void)
{
	int di = virtio_find(VID_BALLOON, 0, 0);
	if (di < 0) {
		fail("balloon", "no virtio-balloon (id 5) among cmdline devices");
		return;
	}
	if (virtio_begin(&bldev, di, 1ull << F_STATS_VQ | 1ull << F_FREE_PAGE_HINT | 1ull << F_REPORTING,
			 "balloon") < 0)
		return;
	int has_stats = (bldev.features >> F_STATS_VQ) & 1;
	int has_hint = (bldev.features >> F_FREE_PAGE_HINT) & 1;
	int has_report = (bldev.features >> F_REPORTING) & 1;
	u64 host_ms = opt_num("tg.balloon.host=", 0);
	/* queues are numbered by negotiated feature: inflate, deflate, [stats], [hinting], [reporting] */
	for (int i = 0; i < 2 + has_stats + has_hint + has_report; i++)
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
		report_free_pages(&blq[2 + has_stats + has_hint], start, end, host_ms);
	if (has_hint && host_ms)
		hint_free_pages(&blq[2 + has_stats], start, end, host_ms);
}
