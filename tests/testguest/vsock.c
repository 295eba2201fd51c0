/*
 * vsock: virtio-vsock (device id 19), queues rx 0 / tx 1 / event 2. guest_cid from
 * config (le64 at 0). 8 rx buffers (44-byte header descriptor + 4 KiB data descriptor,
 * device-writable), 4 event buffers; tx is header [+ data] descriptors, used ring polled.
 *   vsock dev=0x<base> features=0x<f> guest_cid=<cid>        (info)
 * (a) guest-initiated, tg.vsock.port=<P> (default 52; 0 skips): REQUEST to CID 2 port P
 *     (buf_alloc 64 KiB), RESPONSE expected (RST -> FAIL), RW "ping\n", RW reply:
 *   PASS vsock-connect
 *   vsock got <data>                                          (info, \r\n trimmed)
 *   PASS vsock-echo
 *     then SHUTDOWN (both directions) + RST.
 * (b) host-initiated, tg.vsock.listen=<port>: wait (tg.vsock.listenwait=<ms>, default
 *     10000) for a REQUEST to that port, RESPONSE, echo the first RW data back once:
 *   vsock listening <port>                                    (info, printed when ready)
 *   vsock accept got <data>                                   (info)
 *   PASS vsock-accept
 *     then wait (bounded) for the host's SHUTDOWN/RST, else SHUTDOWN + RST.
 * CREDIT_REQUEST is answered with CREDIT_UPDATE; REQUESTs to other ports get RST.
 *
 * The agent (agent.c) uses the same device through vsock.h: a listening port whose
 * connections keep a 64 KiB receive ring (buf_alloc; fwd_cnt counts what the agent has
 * consumed, so the host's credit stops it from overrunning the ring), one connection
 * served at a time and one more REQUEST held pending while it is busy.
 */
#include "virtio.h"
#include "vsock.h"

#define OP_REQUEST 1
#define OP_RESPONSE 2
#define OP_RST 3
#define OP_SHUTDOWN 4
#define OP_RW 5
#define OP_CREDIT_UPDATE 6
#define OP_CREDIT_REQUEST 7
#define TYPE_STREAM 1
#define HOST_CID 2
#define BUF_ALLOC 65536u
#define NVRX 8
#define DATA_MAX 4096
#define GOT_MAX 256

struct vs_hdr {
	u64 src_cid;
	u64 dst_cid;
	u32 src_port;
	u32 dst_port;
	u32 len;
	u16 type;
	u16 op;
	u32 flags;
	u32 buf_alloc;
	u32 fwd_cnt;
} __attribute__((packed));
_Static_assert(sizeof(struct vs_hdr) == 44, "virtio_vsock_hdr is 44 bytes");

struct vs_rx {
	struct vs_hdr h;
	u8 pad[20];
	u8 data[DATA_MAX];
} __attribute__((aligned(64)));

static struct vq_ring vs_ring[3];
static struct vdev vsdev;
static struct vq vrxq, vtxq, vevq;
static struct vs_rx vrx[NVRX];
static u8 vrx_of_head[VQ_MAX];
static u32 vev[4];
static struct vs_hdr txh __attribute__((aligned(64)));
static u8 txdata[DATA_MAX] __attribute__((aligned(64)));
static u64 guest_cid;
static u32 vs_tx_errors;

#define SHUT_SEND 2		/* SHUTDOWN flag: the sender will send no more */
#define SHUT_RCV 1		/* SHUTDOWN flag: the sender will receive no more */
#define RING_SIZE BUF_ALLOC	/* agent receive ring: exactly the credit we advertise */

struct conn {
	int used;
	u32 lport, pport;
	int established, reset, peer_shut;
	u32 peer_buf_alloc, peer_fwd_cnt;
	u32 tx_cnt, fwd_cnt;
	u32 last_fwd_sent;	/* the fwd_cnt the host last heard from us */
	u32 rx_cnt;		/* ring mode: payload bytes received (fwd_cnt = bytes consumed) */
	u8 *ring;		/* ring mode (agent) when set, else the first GOT_MAX bytes go to data[] */
	u32 got;
	u8 data[GOT_MAX];
};
static struct conn cli, srv;
static u32 listen_port;
static int listening;
static int agent_mode;
static u8 agent_ring[RING_SIZE];
/* a REQUEST that came while the agent was busy with srv: accepted by vsa_accept */
static struct {
	int used;
	u32 pport, buf_alloc, fwd_cnt;
} pending;
static int dev_state;	/* 0: not set up, 1: ready, -1: failed */

/* ---------------------------------------------------------------- tx / rx */

static int vs_send(u32 lport, u32 pport, u16 op, u32 flags, struct conn *c, const void *data, u32 len)
{
	memset(&txh, 0, sizeof(txh));
	txh.src_cid = guest_cid;
	txh.dst_cid = HOST_CID;
	txh.src_port = lport;
	txh.dst_port = pport;
	txh.len = len;
	txh.type = TYPE_STREAM;
	txh.op = op;
	txh.flags = flags;
	txh.buf_alloc = BUF_ALLOC;
	txh.fwd_cnt = c ? c->fwd_cnt : 0;
	if (c)
		c->last_fwd_sent = c->fwd_cnt;
	struct vbuf b[2] = {{&txh, sizeof(txh), 0}, {txdata, len, 0}};
	if (len) {
		if (len > DATA_MAX)
			return -1;
		memcpy(txdata, data, len);
	}
	if (vq_add(&vtxq, b, len ? 2 : 1) < 0) {
		vs_tx_errors++;
		return -1;
	}
	vq_kick(&vtxq);
	if (vq_wait_until(&vtxq, 0, deadline_ms(1000)) < 0) {
		vs_tx_errors++;
		return -1;
	}
	return 0;
}

static struct conn *find_conn(u32 lport, u32 pport)
{
	if (cli.used && cli.lport == lport && cli.pport == pport)
		return &cli;
	if (srv.used && srv.lport == lport && srv.pport == pport)
		return &srv;
	return 0;
}

static void srv_accept(u32 pport, u32 buf_alloc, u32 fwd_cnt)
{
	memset(&srv, 0, sizeof(srv));
	srv.used = 1;
	srv.lport = listen_port;
	srv.pport = pport;
	srv.established = 1;
	srv.peer_buf_alloc = buf_alloc;
	srv.peer_fwd_cnt = fwd_cnt;
	if (agent_mode)
		srv.ring = agent_ring;
	vs_send(srv.lport, srv.pport, OP_RESPONSE, 0, &srv, 0, 0);
}

/* ring mode: keep what fits (the host's credit guarantees it all fits; a host that
 * overruns it gets its connection reset) */
static void ring_put(struct conn *c, const u8 *data, u32 dlen)
{
	u32 free_ = RING_SIZE - (c->rx_cnt - c->fwd_cnt);
	if (dlen > free_) {
		vs_send(c->lport, c->pport, OP_RST, 0, c, 0, 0);
		c->reset = 1;
		return;
	}
	for (u32 i = 0; i < dlen; i++)
		c->ring[(c->rx_cnt + i) % RING_SIZE] = data[i];
	c->rx_cnt += dlen;
}

static void vs_packet(const struct vs_hdr *h, const u8 *data, u32 dlen)
{
	if (h->type != TYPE_STREAM || h->dst_cid != guest_cid)
		return;
	struct conn *c = find_conn(h->dst_port, h->src_port);
	if (h->op == OP_REQUEST) {
		if (listening && !srv.used && h->dst_port == listen_port) {
			srv_accept(h->src_port, h->buf_alloc, h->fwd_cnt);
		} else if (listening && agent_mode && !c && !pending.used && h->dst_port == listen_port) {
			pending.used = 1;
			pending.pport = h->src_port;
			pending.buf_alloc = h->buf_alloc;
			pending.fwd_cnt = h->fwd_cnt;
		} else if (!c) {
			vs_send(h->dst_port, h->src_port, OP_RST, 0, 0, 0, 0);
		}
		return;
	}
	if (!c) {
		if (h->op != OP_RST)
			vs_send(h->dst_port, h->src_port, OP_RST, 0, 0, 0, 0);
		return;
	}
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case OP_RESPONSE:
		c->established = 1;
		break;
	case OP_RST:
		c->reset = 1;
		break;
	case OP_SHUTDOWN:
		c->peer_shut |= (int)h->flags;
		break;
	case OP_RW:
		if (c->ring) {
			ring_put(c, data, dlen);
			break;
		}
		c->fwd_cnt += dlen;	/* consumed at once */
		for (u32 i = 0; i < dlen && c->got < GOT_MAX; i++)
			c->data[c->got++] = data[i];
		break;
	case OP_CREDIT_REQUEST:
		vs_send(c->lport, c->pport, OP_CREDIT_UPDATE, 0, c, 0, 0);
		break;
	default:	/* CREDIT_UPDATE: credit taken above */
		break;
	}
}

static int vs_poll(void)
{
	u32 len = 0;
	int id = vq_pop(&vrxq, &len);
	int got = 0;
	if (id >= 0) {
		int i = vrx_of_head[id];
		if (len >= sizeof(struct vs_hdr)) {
			u32 dlen = vrx[i].h.len;
			u32 avail = len - (u32)sizeof(struct vs_hdr);
			if (dlen > avail)
				dlen = avail;
			if (dlen > DATA_MAX)
				dlen = DATA_MAX;
			vs_packet(&vrx[i].h, vrx[i].data, dlen);
		}
		struct vbuf b[2] = {{&vrx[i].h, sizeof(struct vs_hdr), 1}, {vrx[i].data, DATA_MAX, 1}};
		int h = vq_add(&vrxq, b, 2);
		if (h >= 0) {
			vrx_of_head[h] = (u8)i;
			vq_kick(&vrxq);
		}
		got = 1;
	}
	/* events (TRANSPORT_RESET): just give the buffer back */
	if (vq_pop(&vevq, 0) >= 0) {
		struct vbuf b = {&vev[0], 4, 1};
		if (vq_add(&vevq, &b, 1) >= 0)
			vq_kick(&vevq);
		puts_("vsock event\n");
		got = 1;
	}
	if (got)
		virtio_isr_ack(&vsdev);
	return got;
}

/* poll until *flag != 0 or c->reset, bounded; returns 0 if the flag got set */
static int vs_wait(volatile int *flag, struct conn *c, u64 ms)
{
	u64 dl = deadline_ms(ms);
	while (!*flag && !(c && c->reset) && !expired(dl))
		if (!vs_poll())
			cpu_relax();
	return *flag ? 0 : -1;
}

/* RW with credit check (CREDIT_REQUEST and a bounded wait when short) */
static int vs_write(struct conn *c, const void *d, u32 len, u64 ms)
{
	u64 dl = deadline_ms(ms);
	int asked = 0;
	while (c->peer_buf_alloc - (c->tx_cnt - c->peer_fwd_cnt) < len) {
		if (c->reset || expired(dl))
			return -1;
		if (!asked) {
			vs_send(c->lport, c->pport, OP_CREDIT_REQUEST, 0, c, 0, 0);
			asked = 1;
		}
		if (!vs_poll())
			cpu_relax();
	}
	if (vs_send(c->lport, c->pport, OP_RW, 0, c, d, len) < 0)
		return -1;
	c->tx_cnt += len;
	return 0;
}

static void put_data(const char *prefix_, const struct conn *c)
{
	u32 n = c->got;
	while (n && (c->data[n - 1] == '\n' || c->data[n - 1] == '\r'))
		n--;
	puts_(prefix_);
	for (u32 i = 0; i < n; i++)
		putc_(c->data[i] >= 0x20 && c->data[i] < 0x7f ? (char)c->data[i] : '?');
	puts_("\n");
}

static void vs_close(struct conn *c)
{
	if (!c->reset) {
		vs_send(c->lport, c->pport, OP_SHUTDOWN, 3, c, 0, 0);
		vs_send(c->lport, c->pport, OP_RST, 0, c, 0, 0);
	}
	c->used = 0;
}

/* ---------------------------------------------------------------- device setup */

int vsock_up(const char *name)
{
	if (dev_state)
		return dev_state > 0 ? 0 : -1;
	dev_state = -1;
	int di = virtio_find(VID_VSOCK, 0, 0);
	if (di < 0) {
		fail(name, "no virtio-vsock (id 19) among cmdline devices");
		return -1;
	}
	if (virtio_begin(&vsdev, di, 0, name) < 0 || vq_setup(&vsdev, &vrxq, 0, &vs_ring[0], 16, name) < 0 ||
	    vq_setup(&vsdev, &vtxq, 1, &vs_ring[1], 16, name) < 0 ||
	    vq_setup(&vsdev, &vevq, 2, &vs_ring[2], 4, name) < 0 || virtio_ready(&vsdev, name) < 0)
		return -1;
	guest_cid = vcfg64(&vsdev, 0);
	for (int i = 0; i < NVRX; i++) {
		struct vbuf b[2] = {{&vrx[i].h, sizeof(struct vs_hdr), 1}, {vrx[i].data, DATA_MAX, 1}};
		int h = vq_add(&vrxq, b, 2);
		if (h >= 0)
			vrx_of_head[h] = (u8)i;
	}
	vq_kick(&vrxq);
	for (int i = 0; i < 4 && i < vevq.size; i++) {
		struct vbuf b = {&vev[i], 4, 1};
		vq_add(&vevq, &b, 1);
	}
	vq_kick(&vevq);
	puts_("vsock dev=");
	putx(vsdev.base);
	puts_(" features=");
	putx(vsdev.offered);
	puts_(" guest_cid=");
	putu(guest_cid);
	puts_("\n");
	if (guest_cid < 3) {
		failx("vsock", "guest_cid below 3:", guest_cid);
		return -1;
	}

	dev_state = 1;
	return 0;
}

/* ---------------------------------------------------------------- the agent's stream API (vsock.h) */

void vsa_listen(u32 port)
{
	listen_port = port;
	listening = 1;
	agent_mode = 1;
	memset(&srv, 0, sizeof(srv));
	pending.used = 0;
}

void vsa_accept(void)
{
	for (;;) {
		if (!srv.used && pending.used) {
			pending.used = 0;
			srv_accept(pending.pport, pending.buf_alloc, pending.fwd_cnt);
		}
		if (srv.used && srv.established)
			return;
		if (!vs_poll())
			cpu_relax();
	}
}

/* tell the host about consumed bytes before its view of our free space gets low */
static void maybe_credit_update(struct conn *c)
{
	if (c->fwd_cnt - c->last_fwd_sent >= RING_SIZE / 4)
		vs_send(c->lport, c->pport, OP_CREDIT_UPDATE, 0, c, 0, 0);
}

int vsa_read(void *buf, u32 max)
{
	u8 *out = buf;
	for (;;) {
		u32 avail = srv.rx_cnt - srv.fwd_cnt;
		if (avail && max) {
			u32 n = avail < max ? avail : max;
			for (u32 i = 0; i < n; i++)
				out[i] = srv.ring[(srv.fwd_cnt + i) % RING_SIZE];
			srv.fwd_cnt += n;
			maybe_credit_update(&srv);
			return (int)n;
		}
		if (!srv.used || srv.reset || (srv.peer_shut & SHUT_SEND) || !max)
			return 0;
		if (!vs_poll())
			cpu_relax();
	}
}

int vsa_write(const void *d, u32 len, u64 ms)
{
	const u8 *p = d;
	while (len) {
		if (!srv.used || srv.reset || (srv.peer_shut & SHUT_RCV))
			return -1;
		u32 n = len < DATA_MAX ? len : DATA_MAX;
		if (vs_write(&srv, p, n, ms) < 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

void vsa_close(void)
{
	if (srv.used)
		vs_close(&srv);
	memset(&srv, 0, sizeof(srv));
}

/* ---------------------------------------------------------------- the test */

void test_vsock(void)
{
	u64 tmo = opt_num("tg.timeout=", 5000);
	if (vsock_up("vsock") < 0)
		return;

	/* (a) guest-initiated */
	u32 port = (u32)opt_num("tg.vsock.port=", 52);
	if (port) {
		memset(&cli, 0, sizeof(cli));
		cli.used = 1;
		cli.lport = 49152;
		cli.pport = port;
		if (vs_send(cli.lport, cli.pport, OP_REQUEST, 0, &cli, 0, 0) < 0) {
			fail("vsock-connect", "tx timeout (used ring)");
		} else if (vs_wait(&cli.established, &cli, tmo) < 0) {
			fail("vsock-connect", cli.reset ? "connection reset (RST)" : "timeout waiting for RESPONSE");
			cli.used = 0;
		} else {
			pass("vsock-connect");
			if (vs_write(&cli, "ping\n", 5, tmo) < 0) {
				fail("vsock-echo", cli.reset ? "connection reset (RST)" : "RW send failed (credit/tx)");
			} else {
				u64 dl = deadline_ms(tmo);
				while (!cli.got && !cli.reset && !expired(dl))
					if (!vs_poll())
						cpu_relax();
				/* give the rest of a short reply a moment */
				for (int i = 0; i < 1000 && cli.got && cli.data[cli.got - 1] != '\n'; i++)
					if (!vs_poll())
						cpu_relax();
				if (!cli.got) {
					fail("vsock-echo", cli.reset ? "connection reset (RST)" : "timeout waiting for RW");
				} else {
					put_data("vsock got ", &cli);
					pass("vsock-echo");
				}
			}
			vs_close(&cli);
		}
	}

	/* (b) host-initiated */
	listen_port = (u32)opt_num("tg.vsock.listen=", 0);
	if (listen_port) {
		listening = 1;
		memset(&srv, 0, sizeof(srv));
		puts_("vsock listening ");
		putu(listen_port);
		puts_("\n");
		u64 lw = opt_num("tg.vsock.listenwait=", 10000);
		if (vs_wait(&srv.established, 0, lw) < 0) {
			failx("vsock-accept", "no REQUEST to the listen port, ms waited", lw);
		} else {
			u64 dl = deadline_ms(tmo);
			while (!srv.got && !srv.reset && !srv.peer_shut && !expired(dl))
				if (!vs_poll())
					cpu_relax();
			for (int i = 0; i < 1000 && srv.got && srv.data[srv.got - 1] != '\n'; i++)
				if (!vs_poll())
					cpu_relax();
			if (!srv.got) {
				fail("vsock-accept", srv.reset ? "connection reset (RST)" : "no RW data from the host");
			} else {
				put_data("vsock accept got ", &srv);
				if (vs_write(&srv, srv.data, srv.got, tmo) < 0) {
					fail("vsock-accept", "echo RW send failed");
				} else {
					pass("vsock-accept");
					/* let the host read and close first */
					dl = deadline_ms(tmo);
					while (!srv.reset && srv.peer_shut != 3 && !expired(dl))
						if (!vs_poll())
							cpu_relax();
				}
			}
			vs_close(&srv);
		}
		listening = 0;
	}
	if (vs_tx_errors)
		failx("vsock", "tx timeouts", vs_tx_errors);
}
