/*
 * Flint test guest: shared declarations (types, port/MMIO I/O, serial output,
 * PASS/FAIL reporting, cmdline options, TSC-based bounded waits).
 */
#ifndef TG_H
#define TG_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned long usize;

#define barrier() __asm__ __volatile__("" ::: "memory")
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *memset(void *d, int c, usize n);
void *memcpy(void *d, const void *s, usize n);

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
static inline u8 rd8(u64 a) { return *(volatile u8 *)a; }
static inline void wr8(u64 a, u8 v) { *(volatile u8 *)a = v; }
static inline void cpu_relax(void) { __asm__ __volatile__("pause" ::: "memory"); }
static inline u64 rdtsc(void)
{
	u32 lo, hi;
	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return (u64)hi << 32 | lo;
}

/* ---------------------------------------------------------------- serial / reporting */

void putc_(char c);
void puts_(const char *s);
void putu(u64 v);
void putx(u64 v);
void pass(const char *name);
void fail(const char *name, const char *why);
void failx(const char *name, const char *why, u64 v);
extern unsigned n_pass, n_fail;

/* ---------------------------------------------------------------- cmdline */

#define MAX_DEVS 16
extern u64 dev_base[MAX_DEVS];
extern u32 dev_irq[MAX_DEVS];
extern int n_devs;

/* value of "<key>=<value>" on the cmdline (key given with the '='), or 0 */
const char *opt_str(const char *key);
/* numeric option (decimal or 0x-hex), def when absent or malformed */
u64 opt_num(const char *key, u64 def);
/* dotted IPv4 option, returned in network byte order as 4 bytes; def when absent */
void opt_ip(const char *key, const char *def, u8 ip[4]);
u64 parse_num(const char **sp, int *ok);
int streq(const char *a, const char *b);
int prefix(const char *s, const char *p);

/* the start_info memory map: end of the RAM region holding addr (0 = unknown) */
u64 ram_end_at(u64 addr);

/* ---------------------------------------------------------------- time */

/* milliseconds since the first call (TSC, frequency from CPUID or tg.tsc_khz=) */
u64 now_ms(void);
u64 tsc_khz(void);
/* deadline helpers: dl = deadline_ms(ms); while (!expired(dl)) ... */
static inline u64 deadline_ms(u64 ms) { return rdtsc() + ms * tsc_khz(); }
static inline int expired(u64 dl) { return rdtsc() >= dl; }

/* ---------------------------------------------------------------- tests */

void test_rng(void);
void test_net(void);
void test_balloon(void);
void test_mem(void);
void test_vsock(void);
void test_pmem(void);	/* pmem.c: virtio-pmem window and flush */
void test_blkbench(void);	/* blkbench.c: tg.blk.bench= throughput mode */
void test_acpi(u64 start_info_rsdp);	/* acpi.c: tg.tests=acpi */
void test_pci(void);		/* pci.c: virtio-blk over virtio-pci with MSI-X */
void test_pcihp(void);		/* pci.c: PCI hotplug: a drive PUT after the start is found, used, then unplugged */
/* tg.agent=<port>: serve the agent protocol forever (returns only on setup errors) */
void agent_serve(u32 port);

#endif
