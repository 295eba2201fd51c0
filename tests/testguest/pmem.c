/*
 * pmem: virtio-pmem (device id 27), one flush queue. Reads the config space (window start, size), maps the window
 * (it lies past 512 GiB, above the low 4 GiB that entry.S maps), checks the host's marker at offset 0, writes a
 * marker at offset 4096, reads it back, then sends one FLUSH request and checks its status.
 *   pmem start=0x<start> size=0x<size>               (info)
 *   pmem host-marker=<ok|bad> readback=<same|old> flush=<status>   (info)
 *   PASS pmem
 * With tg.pmem.ro=1 (a read-only device) the write must be discarded: readback=old is the pass condition.
 */
#include "virtio.h"

#define VID_PMEM 27

static struct vq_ring pmem_ring;
static struct vdev pmemdev;
static struct vq pmemq;
static volatile u32 pmem_req __attribute__((aligned(16)));
static volatile u32 pmem_status __attribute__((aligned(16)));
/* page tables for the window: PML4[start >> 39] -> pdpt, pdpt[..] -> pd, pd[..] 2 MiB pages (up to 1 GiB) */
static u64 pmem_pdpt[512] __attribute__((aligned(4096)));
static u64 pmem_pd[512] __attribute__((aligned(4096)));

static const char host_marker[16] = "FLINT-PMEM-HOST!";
static const char guest_marker[16] = "FLINT-PMEM-GUEST";

/* Identity-maps [start, start+size) with 2 MiB pages. */
static int pmem_map(u64 start, u64 size)
{
	if (start & 0x1fffff || size == 0 || size > (1ull << 30) || ((start >> 30) & 511) != (((start + size - 1) >> 30) & 511))
		return -1;
	u64 cr3;
	__asm__ __volatile__("mov %%cr3, %0" : "=r"(cr3));
	u64 *pml4 = (u64 *)(cr3 & ~0xfffull);
	u64 i4 = (start >> 39) & 511;
	if (i4 == 0)
		return -1; /* the low 512 GiB entry belongs to entry.S's tables */
	pml4[i4] = (u64)pmem_pdpt | 3;
	pmem_pdpt[(start >> 30) & 511] = (u64)pmem_pd | 3;
	for (u64 off = 0; off < size; off += 0x200000)
		pmem_pd[((start + off) >> 21) & 511] = (start + off) | 0x83;
	__asm__ __volatile__("mov %0, %%cr3" : : "r"(cr3) : "memory");
	return 0;
}

static int same16(volatile const char *a, const char *b)
{
	for (int i = 0; i < 16; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

void test_pmem(void)
{
	int di = virtio_find(VID_PMEM, 0, 0);
	if (di < 0) {
		fail("pmem", "no virtio-pmem (id 27) among cmdline devices");
		return;
	}
	if (virtio_begin(&pmemdev, di, 0, "pmem") < 0 || vq_setup(&pmemdev, &pmemq, 0, &pmem_ring, 16, "pmem") < 0 ||
	    virtio_ready(&pmemdev, "pmem") < 0)
		return;
	u64 start = vcfg64(&pmemdev, 0), size = vcfg64(&pmemdev, 8);
	puts_("pmem start=");
	putx(start);
	puts_(" size=");
	putx(size);
	puts_("\n");
	if (pmem_map(start, size) < 0) {
		failx("pmem", "window cannot be mapped, start", start);
		return;
	}
	volatile char *w = (volatile char *)start;
	int host_ok = same16(w, host_marker);
	for (int i = 0; i < 16; i++)
		w[4096 + i] = guest_marker[i];
	int readback = same16(w + 4096, guest_marker);

	pmem_req = 0; /* VIRTIO_PMEM_REQ_TYPE_FLUSH */
	pmem_status = 0x69;
	struct vbuf b[2] = {{(void *)&pmem_req, 4, 0}, {(void *)&pmem_status, 4, 1}};
	if (vq_add(&pmemq, b, 2) < 0) {
		fail("pmem", "no room on the queue");
		return;
	}
	vq_kick(&pmemq);
	u32 len = 0;
	if (vq_wait_until(&pmemq, &len, deadline_ms(opt_num("tg.timeout=", 5000))) < 0) {
		fail("pmem", "timeout waiting for the flush");
		return;
	}
	virtio_isr_ack(&pmemdev);
	puts_("pmem host-marker=");
	puts_(host_ok ? "ok" : "bad");
	puts_(" readback=");
	puts_(readback ? "same" : "old");
	puts_(" flush=");
	putx(pmem_status);
	puts_(" len=");
	putu(len);
	puts_("\n");
	int ro = opt_num("tg.pmem.ro=", 0) != 0;
	if (!host_ok)
		fail("pmem", "the host's marker is not at the window's start");
	else if (len != 4 || pmem_status != 0)
		failx("pmem", "flush status", pmem_status);
	else if (readback == ro)
		fail("pmem", ro ? "a write to the read-only window was applied" : "the write did not read back");
	else
		pass("pmem");
}
