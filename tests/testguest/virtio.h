/*
 * Flint test guest: virtio-mmio (version 2) transport and split virtqueues, polled.
 * Several devices, several queues per device; every queue has its own static rings
 * (struct vq_ring, one 4 KiB page) given by the caller.
 */
#ifndef TG_VIRTIO_H
#define TG_VIRTIO_H

#include "tg.h"

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
#define S_NEEDS_RESET 0x40
#define S_FAILED 128

#define F_VERSION_1 32

#define VID_NET 1
#define VID_BLK 2
#define VID_RNG 4
#define VID_BALLOON 5
#define VID_VSOCK 19

#define D_NEXT 1
#define D_WRITE 2

#define VQ_MAX 32		/* ring entries per queue (at most) */
#define SPIN_LIMIT 20000000u

struct vq_desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};
struct vq_used_elem {
	u32 id;
	u32 len;
};
/* one page: descriptor table, avail ring, used ring (4-byte aligned) */
struct vq_ring {
	struct vq_desc desc[VQ_MAX];		/* 512 bytes */
	struct {
		u16 flags;
		u16 idx;
		u16 ring[VQ_MAX];
		u16 used_event;
	} avail;
	u8 pad[1024 - 512 - 2 * (VQ_MAX + 3)];
	struct {
		u16 flags;
		u16 idx;
		struct vq_used_elem ring[VQ_MAX];
		u16 avail_event;
	} used __attribute__((aligned(4)));
} __attribute__((aligned(4096)));

struct vdev {
	u64 base;
	u32 irq;
	u32 id;
	u64 offered;		/* device features */
	u64 features;		/* negotiated */
	int index;		/* in dev_base[] */
};

struct vq {
	struct vdev *dev;
	struct vq_ring *r;
	u16 index;		/* queue number on the device */
	u16 size;
	u16 avail_idx;
	u16 used_seen;
	u16 free_head;
	u16 num_free;
};

/* one buffer of a chain */
struct vbuf {
	void *addr;
	u32 len;
	int dev_writes;		/* device-writable (VIRTQ_DESC_F_WRITE) */
};

/* Index in dev_base[] of the nth (0-based) virtio-mmio v2 device with this id, or -1.
 * print: one "virtio dev=..." info line per device looked at (until the match). */
int virtio_find(u32 id, int nth, int print);

/* Reset + ACK + DRIVER, negotiate VERSION_1 | (offered & want), FEATURES_OK.
 * On failure prints FAIL <name>: ... and returns -1. */
int virtio_begin(struct vdev *d, int index, u64 want, const char *name);
/* Queue setup: size min(QueueNumMax, max, VQ_MAX) rounded down to a power of 2, rings in *r.
 * FAIL + -1 on error. */
int vq_setup(struct vdev *d, struct vq *q, u16 index, struct vq_ring *r, u16 max, const char *name);
/* DRIVER_OK; FAIL + -1 if the device then says DEVICE_NEEDS_RESET. */
int virtio_ready(struct vdev *d, const char *name);
void virtio_fail(struct vdev *d);

/* consistent config space reads (ConfigGeneration loop) */
u32 vcfg32(struct vdev *d, u32 off);
u64 vcfg64(struct vdev *d, u32 off);
u8 vcfg8(struct vdev *d, u32 off);

/* Add a chain; returns the head descriptor id or -1 when there is no room. No notify. */
int vq_add(struct vq *q, const struct vbuf *b, int n);
void vq_kick(struct vq *q);
/* Pop one used element (frees its chain); returns the head id or -1 if none. */
int vq_pop(struct vq *q, u32 *len);
/* Poll for a used element, at most `spins` pause loops; head id or -1 on timeout. */
int vq_wait(struct vq *q, u32 *len, u32 spins);
/* same, bounded by a deadline in TSC ticks (see deadline_ms) */
int vq_wait_until(struct vq *q, u32 *len, u64 deadline);
/* Read and ack InterruptStatus; returns the value read. */
u32 virtio_isr_ack(struct vdev *d);

#endif
