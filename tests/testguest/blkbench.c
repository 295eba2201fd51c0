/*
 * Flint test guest: virtio-blk throughput / IOPS mode (the benchmark harness's block rows).
 *
 *   tg.tests=blkbench tg.blk.bench=<mode>,<ops>[,<bs>[,<qd>]]
 *     mode  seq-read | rand-read | seq-write | rand-write
 *     ops   requests to complete (each of bs bytes)
 *     bs    bytes per request, a multiple of 512, at most 65536 (default 4096)
 *     qd    requests kept in flight, 1..8 (default 1; at most a third of the queue: 3 descriptors each)
 *
 * Output:
 *   blkbench mode=<m> bs=<b> qd=<q> ops=<n> capacity=<sectors>      (info)
 *   blkbench start                                                  (info: the host may time from here)
 *   blkbench done ops=<n> bytes=<b> cycles=<c> tsc_khz=<k> us=<t>   (info: elapsed from the guest's own TSC)
 *   PASS blkbench | FAIL blkbench: <why>
 *
 * The device is set up afresh (a reset, so it may follow the blk test) with interrupts suppressed
 * (VRING_AVAIL_F_NO_INTERRUPT): the guest polls the used ring, so each request costs one notify exit and
 * whatever the VMM spends on it, and nothing for an interrupt the guest would not take. Data is not checked:
 * this mode measures, the blk test verifies.
 */
#include "virtio.h"

#define T_IN 0
#define T_OUT 1
#define QD_MAX 8
#define BS_MAX 65536u
#define VRING_AVAIL_F_NO_INTERRUPT 1

struct bb_hdr {
	u32 type;
	u32 reserved;
	u64 sector;
};

static struct vq_ring bb_ring;
static struct vdev bb_dev;
static struct vq bb_q;
static struct bb_hdr bb_hdrs[QD_MAX] __attribute__((aligned(64)));
static volatile u8 bb_status[QD_MAX][64] __attribute__((aligned(64)));
static u8 bb_buf[QD_MAX][BS_MAX] __attribute__((aligned(4096)));
static int bb_slot_of_head[VQ_MAX];

static const char *const bb_modes[] = {"seq-read", "rand-read", "seq-write", "rand-write"};

/* which of bb_modes the option starts with (up to the ','), or -1; *sp moves past the mode and its ',' */
static int bb_mode(const char **sp)
{
	for (int m = 0; m < (int)ARRAY_SIZE(bb_modes); m++) {
		const char *a = *sp, *b = bb_modes[m];
		while (*b && *a == *b) {
			a++;
			b++;
		}
		if (!*b && (*a == ',' || *a == 0)) {
			*sp = *a == ',' ? a + 1 : a;
			return m;
		}
	}
	return -1;
}

/* the next number of the option, def when the list ends there; -1 (as u64) when malformed */
static u64 bb_field(const char **sp, u64 def)
{
	if (!**sp)
		return def;
	int ok;
	u64 v = parse_num(sp, &ok);
	if (!ok || (**sp != ',' && **sp != 0))
		return (u64)-1;
	if (**sp == ',')
		(*sp)++;
	return v;
}

static u64 bb_rand_state = 0x9e3779b97f4a7c15ull;
static u64 bb_rand(void)
{
	/* xorshift64: cheap, and the same sequence on every VMM */
	u64 x = bb_rand_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return bb_rand_state = x;
}

/* queues request number i (0-based) of the run on slot s */
static int bb_submit(int s, u64 i, int mode, u32 bs, u64 blocks)
{
	u64 block = (mode == 1 || mode == 3) ? bb_rand() % blocks : i % blocks;
	bb_hdrs[s].type = mode >= 2 ? T_OUT : T_IN;
	bb_hdrs[s].reserved = 0;
	bb_hdrs[s].sector = block * (bs / 512);
	bb_status[s][0] = 0xff;
	struct vbuf b[3] = {
		{&bb_hdrs[s], sizeof(bb_hdrs[s]), 0},
		{bb_buf[s], bs, mode < 2},
		{(void *)bb_status[s], 1, 1},
	};
	barrier();
	int head = vq_add(&bb_q, b, 3);
	if (head < 0)
		return -1;
	bb_slot_of_head[head] = s;
	return 0;
}

void test_blkbench(void)
{
	const char *o = opt_str("tg.blk.bench=");
	if (!o) {
		fail("blkbench", "tg.blk.bench=<mode>,<ops>[,<bs>[,<qd>]] missing");
		return;
	}
	int mode = bb_mode(&o);
	u64 ops = bb_field(&o, 0), bs = bb_field(&o, 4096), qd = bb_field(&o, 1);
	if (mode < 0 || ops == 0 || ops == (u64)-1 || *o) {
		fail("blkbench", "tg.blk.bench: want <seq-read|rand-read|seq-write|rand-write>,<ops>[,<bs>[,<qd>]]");
		return;
	}
	if (bs == 0 || bs % 512 || bs > BS_MAX || qd == 0 || qd > QD_MAX) {
		fail("blkbench", "tg.blk.bench: bs a multiple of 512 up to 65536, qd 1..8");
		return;
	}

	int di = virtio_find(VID_BLK, 0, 0);
	if (di < 0) {
		fail("blkbench", "no virtio-blk among the cmdline devices");
		return;
	}
	if (virtio_begin(&bb_dev, di, 0, "blkbench") < 0)
		return;
	if (vq_setup(&bb_dev, &bb_q, 0, &bb_ring, VQ_MAX, "blkbench") < 0)
		return;
	bb_ring.avail.flags = VRING_AVAIL_F_NO_INTERRUPT;
	if (virtio_ready(&bb_dev, "blkbench") < 0)
		return;
	if (qd > (u64)(bb_q.size / 3))
		qd = bb_q.size / 3;
	u64 cap = vcfg64(&bb_dev, 0);
	u64 blocks = cap / (bs / 512);
	if (blocks == 0) {
		failx("blkbench", "disk smaller than one block, sectors", cap);
		return;
	}
	if (mode >= 2 && ((bb_dev.offered >> 5) & 1)) {
		fail("blkbench", "write mode on a read-only disk");
		return;
	}

	puts_("blkbench mode=");
	puts_(bb_modes[mode]);
	puts_(" bs=");
	putu(bs);
	puts_(" qd=");
	putu(qd);
	puts_(" ops=");
	putu(ops);
	puts_(" capacity=");
	putu(cap);
	puts_("\n");
	u64 khz = tsc_khz();	/* prints its own info line: keep it out of the timed part */
	u64 timeout = opt_num("tg.timeout=", 5000);
	puts_("blkbench start\n");

	u64 t0 = rdtsc(), submitted = 0, done = 0;
	for (int s = 0; s < (int)qd && submitted < ops; s++, submitted++)
		if (bb_submit(s, submitted, mode, (u32)bs, blocks) < 0) {
			fail("blkbench", "queue full");
			return;
		}
	vq_kick(&bb_q);
	while (done < ops) {
		int head = vq_wait_until(&bb_q, 0, deadline_ms(timeout));
		if (head < 0) {
			failx("blkbench", head == -1 ? "no completion within tg.timeout; done" : "bad used id; done", done);
			return;
		}
		int s = bb_slot_of_head[head];
		if (bb_status[s][0] != 0) {
			failx("blkbench", "request status", bb_status[s][0]);
			return;
		}
		done++;
		if (submitted < ops) {
			if (bb_submit(s, submitted++, mode, (u32)bs, blocks) < 0) {
				fail("blkbench", "queue full");
				return;
			}
			vq_kick(&bb_q);
		}
	}
	u64 cycles = rdtsc() - t0;

	puts_("blkbench done ops=");
	putu(done);
	puts_(" bytes=");
	putu(done * bs);
	puts_(" cycles=");
	putu(cycles);
	puts_(" tsc_khz=");
	putu(khz);
	puts_(" us=");
	putu(cycles * 1000 / (khz ? khz : 1));
	puts_("\n");
	pass("blkbench");
}
