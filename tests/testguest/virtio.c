/* Flint test guest: virtio-mmio transport + split virtqueues (see virtio.h). */
#include "virtio.h"

_Static_assert(sizeof(struct vq_ring) == 4096, "vq_ring is one page");
_Static_assert(__builtin_offsetof(struct vq_ring, used) == 1024, "used ring at 1 KiB");

int virtio_find(u32 id, int nth, int print)
{
	for (int i = 0; i < n_devs; i++) {
		u64 b = dev_base[i];
		if (print) {
			puts_("virtio dev=");
			putx(b);
			puts_(" magic=");
			putx(rd32(b + R_MAGIC));
			puts_(" version=");
			putu(rd32(b + R_VERSION));
			puts_(" id=");
			putu(rd32(b + R_DEVICE_ID));
			puts_("\n");
		}
		if (rd32(b + R_MAGIC) == VIRTIO_MAGIC && rd32(b + R_VERSION) == 2 &&
		    rd32(b + R_DEVICE_ID) == id && nth-- == 0)
			return i;
	}
	return -1;
}

void virtio_fail(struct vdev *d)
{
	wr32(d->base + R_STATUS, S_FAILED);
}

int virtio_begin(struct vdev *d, int index, u64 want, const char *name)
{
	u64 b = dev_base[index];
	d->base = b;
	d->irq = dev_irq[index];
	d->id = rd32(b + R_DEVICE_ID);
	d->index = index;
	d->offered = d->features = 0;

	/* virtio 1.x, 3.1.1 */
	wr32(b + R_STATUS, 0);
	if (rd32(b + R_STATUS) != 0) {
		fail(name, "status not 0 after reset");
		return -1;
	}
	wr32(b + R_STATUS, S_ACK);
	wr32(b + R_STATUS, S_ACK | S_DRIVER);
	wr32(b + R_DEV_FEAT_SEL, 0);
	u32 f_lo = rd32(b + R_DEV_FEAT);
	wr32(b + R_DEV_FEAT_SEL, 1);
	u32 f_hi = rd32(b + R_DEV_FEAT);
	u64 feat = (u64)f_hi << 32 | f_lo;
	d->offered = feat;
	if (!(feat & (1ull << F_VERSION_1))) {
		failx(name, "VERSION_1 not offered, features", feat);
		virtio_fail(d);
		return -1;
	}
	u64 neg = (1ull << F_VERSION_1) | (feat & want);
	wr32(b + R_DRV_FEAT_SEL, 0);
	wr32(b + R_DRV_FEAT, (u32)neg);
	wr32(b + R_DRV_FEAT_SEL, 1);
	wr32(b + R_DRV_FEAT, (u32)(neg >> 32));
	wr32(b + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd32(b + R_STATUS) & S_FEATURES_OK)) {
		fail(name, "FEATURES_OK not accepted");
		virtio_fail(d);
		return -1;
	}
	d->features = neg;
	return 0;
}

/* FAIL <name>: queue <n><what>  (blk's queue 0: "queue 0 already ready" as before) */
static void failq(const char *name, u16 index, const char *what)
{
	n_fail++;
	puts_("FAIL ");
	puts_(name);
	puts_(": queue ");
	putu(index);
	puts_(what);
	puts_("\n");
}

int vq_setup(struct vdev *d, struct vq *q, u16 index, struct vq_ring *r, u16 max, const char *name)
{
	u64 b = d->base;
	wr32(b + R_QUEUE_SEL, index);
	if (rd32(b + R_QUEUE_READY) != 0) {
		failq(name, index, " already ready");
		return -1;
	}
	u32 qmax = rd32(b + R_QUEUE_NUM_MAX);
	if (qmax == 0) {
		failq(name, index, ": QueueNumMax is 0");
		return -1;
	}
	if (max == 0 || max > VQ_MAX)
		max = VQ_MAX;
	memset(r, 0, sizeof(*r));
	q->dev = d;
	q->r = r;
	q->index = index;
	u32 n = qmax < max ? qmax : max;
	while (n & (n - 1))	/* split rings: a power of 2 */
		n &= n - 1;
	q->size = (u16)n;
	q->avail_idx = q->used_seen = 0;
	for (u16 i = 0; i < q->size; i++)
		r->desc[i].next = (u16)(i + 1);
	q->free_head = 0;
	q->num_free = q->size;
	wr32(b + R_QUEUE_NUM, q->size);
	wr32(b + R_QUEUE_DESC_LO, (u32)(u64)r->desc);
	wr32(b + R_QUEUE_DESC_HI, (u32)((u64)r->desc >> 32));
	wr32(b + R_QUEUE_DRIVER_LO, (u32)(u64)&r->avail);
	wr32(b + R_QUEUE_DRIVER_HI, (u32)((u64)&r->avail >> 32));
	wr32(b + R_QUEUE_DEVICE_LO, (u32)(u64)&r->used);
	wr32(b + R_QUEUE_DEVICE_HI, (u32)((u64)&r->used >> 32));
	wr32(b + R_QUEUE_READY, 1);
	return 0;
}

int virtio_ready(struct vdev *d, const char *name)
{
	wr32(d->base + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	if (rd32(d->base + R_STATUS) & S_NEEDS_RESET) {
		fail(name, "device needs reset");
		return -1;
	}
	return 0;
}

u32 vcfg32(struct vdev *d, u32 off)
{
	u32 gen, v;
	do {
		gen = rd32(d->base + R_CONFIG_GEN);
		v = rd32(d->base + R_CONFIG + off);
	} while (gen != rd32(d->base + R_CONFIG_GEN));
	return v;
}

u64 vcfg64(struct vdev *d, u32 off)
{
	u32 gen, lo, hi;
	do {
		gen = rd32(d->base + R_CONFIG_GEN);
		lo = rd32(d->base + R_CONFIG + off);
		hi = rd32(d->base + R_CONFIG + off + 4);
	} while (gen != rd32(d->base + R_CONFIG_GEN));
	return (u64)hi << 32 | lo;
}

u8 vcfg8(struct vdev *d, u32 off)
{
	return rd8(d->base + R_CONFIG + off);
}

int vq_add(struct vq *q, const struct vbuf *b, int n)
{
	if (n <= 0 || n > q->num_free)
		return -1;
	struct vq_desc *desc = q->r->desc;
	u16 head = q->free_head, d = head;
	for (int i = 0; i < n; i++) {
		desc[d].addr = (u64)b[i].addr;
		desc[d].len = b[i].len;
		desc[d].flags = (u16)((i + 1 < n ? D_NEXT : 0) | (b[i].dev_writes ? D_WRITE : 0));
		if (i + 1 < n)
			d = desc[d].next;
	}
	q->free_head = desc[d].next;	/* the last one's next still links the free list */
	q->num_free = (u16)(q->num_free - n);
	q->r->avail.ring[q->avail_idx % q->size] = head;
	barrier();
	q->avail_idx++;
	*(volatile u16 *)&q->r->avail.idx = q->avail_idx;
	barrier();
	return head;
}

void vq_kick(struct vq *q)
{
	barrier();
	wr32(q->dev->base + R_QUEUE_NOTIFY, q->index);
}

int vq_pop(struct vq *q, u32 *len)
{
	if (*(volatile u16 *)&q->r->used.idx == q->used_seen)
		return -1;
	barrier();
	struct vq_used_elem e = *(volatile struct vq_used_elem *)&q->r->used.ring[q->used_seen % q->size];
	q->used_seen++;
	if (len)
		*len = e.len;
	if (e.id >= q->size)
		return -2;
	/* put the chain back at the front of the free list */
	u16 d = (u16)e.id;
	int n = 1;
	while ((q->r->desc[d].flags & D_NEXT) && n < q->size) {
		d = q->r->desc[d].next;
		n++;
	}
	q->r->desc[d].next = q->free_head;
	q->free_head = (u16)e.id;
	q->num_free = (u16)(q->num_free + n);
	return (int)e.id;
}

int vq_wait(struct vq *q, u32 *len, u32 spins)
{
	for (u32 i = 0; i < spins; i++) {
		int id = vq_pop(q, len);
		if (id != -1)
			return id;
		cpu_relax();
	}
	return -1;
}

int vq_wait_until(struct vq *q, u32 *len, u64 deadline)
{
	for (;;) {
		int id = vq_pop(q, len);
		if (id != -1)
			return id;
		if (expired(deadline))
			return -1;
		cpu_relax();
	}
}

u32 virtio_isr_ack(struct vdev *d)
{
	u32 isr = rd32(d->base + R_INT_STATUS);
	if (isr)
		wr32(d->base + R_INT_ACK, isr);
	return isr;
}
