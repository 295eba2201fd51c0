/*
 * rng: virtio-rng (device id 4), one request queue. Two 64-byte reads: each must
 * come back with 64 bytes, not all zero, and the two must differ.
 *   rng dev=0x<base> features=0x<f> qsz=<n>       (info)
 *   PASS rng
 */
#include "virtio.h"

static struct vq_ring rng_ring;
static struct vdev rngdev;
static struct vq rngq;
static u8 rng_buf[2][64] __attribute__((aligned(64)));

/* fill rng_buf[i]; the device may return fewer bytes, so keep asking (bounded) */
static int rng_read(int i)
{
	u32 got = 0;
	memset(rng_buf[i], 0, 64);
	for (int tries = 0; got < 64 && tries < 64; tries++) {
		struct vbuf b = {rng_buf[i] + got, 64 - got, 1};
		if (vq_add(&rngq, &b, 1) < 0)
			return -2;
		vq_kick(&rngq);
		u32 len = 0;
		if (vq_wait_until(&rngq, &len, deadline_ms(opt_num("tg.timeout=", 5000))) < 0)
			return -1;
		virtio_isr_ack(&rngdev);
		if (len > 64 - got)
			return -3;
		got += len;
	}
	return got == 64 ? 0 : -4;
}

void test_rng(void)
{
	int di = virtio_find(VID_RNG, 0, 0);
	if (di < 0) {
		fail("rng", "no virtio-rng (id 4) among cmdline devices");
		return;
	}
	if (virtio_begin(&rngdev, di, 0, "rng") < 0 || vq_setup(&rngdev, &rngq, 0, &rng_ring, 16, "rng") < 0 ||
	    virtio_ready(&rngdev, "rng") < 0)
		return;
	puts_("rng dev=");
	putx(rngdev.base);
	puts_(" features=");
	putx(rngdev.offered);
	puts_(" qsz=");
	putu(rngq.size);
	puts_("\n");
	for (int i = 0; i < 2; i++) {
		int r = rng_read(i);
		if (r == -1) {
			fail("rng", "timeout waiting for used ring");
			return;
		}
		if (r < 0) {
			failx("rng", "bad used element / length, code", (u64)-r);
			return;
		}
		int nz = 0;
		for (int j = 0; j < 64; j++)
			nz |= rng_buf[i][j];
		if (!nz) {
			fail("rng", "64 zero bytes");
			return;
		}
	}
	int same = 1;
	for (int j = 0; j < 64; j++)
		same &= rng_buf[0][j] == rng_buf[1][j];
	if (same)
		fail("rng", "two reads returned the same bytes");
	else
		pass("rng");
}
