/*
 * net: virtio-net (device id 1), queues rx 0 / tx 1, VERSION_1 (+ MAC when offered).
 * 16 rx buffers of 12-byte virtio_net_hdr_v1 + 1514 bytes (one device-writable
 * descriptor each); tx is synchronous (one descriptor: header + frame, used ring polled).
 * The guest answers ARP requests for its IP and ICMP echo requests whenever it polls rx.
 *   net dev=0x<base> features=0x<f> mac=<mac> ip=<ip> qsz=<rx>/<tx>     (info)
 *   net arp-reply <mac>                       (info) + PASS net-arp
 *   PASS net-ping-served <count>              (tg.net.pingwait=<N> > 0)
 *   mmds <status> <first line of body>        (info, per HTTP request)
 *   PASS mmds-v1 | PASS mmds-v2, PASS mmds-v2-401   (tg.mmds=1 [tg.mmds.v2=1])
 *   net tput tx start / net tput tx done frames=<n> bytes=<b> us=<t>, PASS net-tput-tx   (tg.net.tput.tx=<n>)
 *   net tput rx ready / net tput rx done frames=<n> bytes=<b> us=<t>, PASS net-tput-rx   (tg.net.tput.rx=<n>)
 *   Throughput: tx sends n 1514-byte UDP frames (to the host IP, port 9) with up to 8 in flight; rx counts n UDP
 *   frames to its port 9 that the host sends once it sees "ready". The host times both between the serial lines
 *   (us= is the guest's own TSC view, only as good as its TSC frequency).
 * Options: tg.net.ip= (172.16.0.2), tg.net.hostip= (172.16.0.1), tg.net.pingwait=<N>
 * (poll N x 1 ms for echo requests; 0 = skip), tg.net.pingcount=<C> (stop after C replies),
 * tg.mmds=1, tg.mmds.v2=1, tg.mmds.ip= (169.254.169.254), tg.mmds.path= (/latest/meta-data/),
 * tg.timeout=<ms> (per wait, default 5000).
 */
#include "virtio.h"

#define F_MAC 5
#define NRX 16
#define HDR 12
#define FRAME_MAX 1514
#define ETH_ARP 0x0806
#define ETH_IP 0x0800

struct rxb {
	u8 b[HDR + FRAME_MAX];
} __attribute__((aligned(16)));

static struct vq_ring net_ring[2];
static struct vdev netdev;
static struct vq rxq, txq;
static struct rxb rxbufs[NRX];
static u8 rx_of_head[VQ_MAX];
static u8 txbuf[HDR + FRAME_MAX] __attribute__((aligned(64)));

static u8 mymac[6], myip[4], hostip[4], mmdsip[4];
static const u8 bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static u32 pings_served, tx_errors;
static u16 ip_id = 1;
static u64 timeout_ms;

/* ARP resolution in progress */
static u8 arp_want[4], arp_mac[6];
static int arp_got;

/* ---------------------------------------------------------------- helpers */

static u16 be16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static u32 be32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }
static void put16(u8 *p, u16 v)
{
	p[0] = (u8)(v >> 8);
	p[1] = (u8)v;
}
static void put32(u8 *p, u32 v)
{
	put16(p, (u16)(v >> 16));
	put16(p + 2, (u16)v);
}
static int eq(const u8 *a, const u8 *b, int n)
{
	while (n--)
		if (*a++ != *b++)
			return 0;
	return 1;
}

static u32 csum_add(u32 sum, const u8 *p, u32 len)
{
	for (u32 i = 0; i + 1 < len; i += 2)
		sum += (u32)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (u32)p[len - 1] << 8;
	return sum;
}
static u16 csum_fold(u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (u16)~sum;
}

static void put_mac(const u8 *m)
{
	for (int i = 0; i < 6; i++) {
		if (i)
			putc_(':');
		putc_("0123456789abcdef"[m[i] >> 4]);
		putc_("0123456789abcdef"[m[i] & 15]);
	}
}
static void put_ip(const u8 *ip)
{
	for (int i = 0; i < 4; i++) {
		if (i)
			putc_('.');
		putu(ip[i]);
	}
}

/* "PASS <name> <n>" */
static void pass_n(const char *name, u64 n)
{
	n_pass++;
	puts_("PASS ");
	puts_(name);
	puts_(" ");
	putu(n);
	puts_("\n");
}

/* ---------------------------------------------------------------- tx / rx */

/* frame at txbuf + HDR (len bytes, header added here); 0 ok, -1 on tx timeout */
static int net_tx(u32 len)
{
	memset(txbuf, 0, HDR);
	if (len < 60) {		/* pad to the Ethernet minimum */
		memset(txbuf + HDR + len, 0, 60 - len);
		len = 60;
	}
	struct vbuf b = {txbuf, HDR + len, 0};
	int head = vq_add(&txq, &b, 1);
	if (head < 0) {
		tx_errors++;
		return -1;
	}
	vq_kick(&txq);
	if (vq_wait_until(&txq, 0, deadline_ms(1000)) < 0) {
		tx_errors++;
		return -1;
	}
	return 0;
}

static void eth_hdr(u8 *f, const u8 *dst, u16 type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, mymac, 6);
	put16(f + 12, type);
}

static int arp_send(u16 op, const u8 *dmac, const u8 *tmac, const u8 *tip)
{
	u8 *f = txbuf + HDR;
	eth_hdr(f, dmac, ETH_ARP);
	u8 *a = f + 14;
	put16(a, 1);		/* Ethernet */
	put16(a + 2, ETH_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, mymac, 6);
	memcpy(a + 14, myip, 4);
	memcpy(a + 18, tmac, 6);
	memcpy(a + 24, tip, 4);
	return net_tx(14 + 28);
}

/* IPv4 header at p (20 bytes), payload length plen */
static void ip_hdr(u8 *p, const u8 *dst, u8 proto, u32 plen)
{
	p[0] = 0x45;
	p[1] = 0;
	put16(p + 2, (u16)(20 + plen));
	put16(p + 4, ip_id++);
	put16(p + 6, 0x4000);	/* DF */
	p[8] = 64;
	p[9] = proto;
	put16(p + 10, 0);
	memcpy(p + 12, myip, 4);
	memcpy(p + 16, dst, 4);
	put16(p + 10, csum_fold(csum_add(0, p, 20)));
}

static void tcp_input(const u8 *ip, const u8 *t, u32 tlen);

static void icmp_echo_reply(const u8 *f, u32 len)
{
	const u8 *ip = f + 14;
	u32 ihl = (u32)(ip[0] & 15) * 4, tot = be16(ip + 2);
	if (tot > len - 14 || tot < ihl + 8)
		return;
	u32 ilen = tot - ihl;
	u8 *o = txbuf + HDR;
	eth_hdr(o, f + 6, ETH_IP);
	ip_hdr(o + 14, ip + 12, 1, ilen);
	u8 *ic = o + 34;
	memcpy(ic, ip + ihl, ilen);
	ic[0] = 0;		/* echo reply */
	ic[1] = 0;
	put16(ic + 2, 0);
	put16(ic + 2, csum_fold(csum_add(0, ic, ilen)));
	if (net_tx(34 + ilen) == 0)
		pings_served++;
}

static void net_frame(const u8 *f, u32 len)
{
	if (len < 14)
		return;
	u16 type = be16(f + 12);
	if (type == ETH_ARP && len >= 14 + 28) {
		const u8 *a = f + 14;
		if (be16(a) != 1 || be16(a + 2) != ETH_IP || a[4] != 6 || a[5] != 4)
			return;
		u16 op = be16(a + 6);
		if (op == 1 && eq(a + 24, myip, 4))
			arp_send(2, a + 8, a + 8, a + 14);	/* reply to the sender */
		else if (op == 2 && !arp_got && eq(a + 14, arp_want, 4)) {
			memcpy(arp_mac, a + 8, 6);
			arp_got = 1;
		}
		return;
	}
	if (type != ETH_IP || len < 34)
		return;
	const u8 *ip = f + 14;
	u32 ihl = (u32)(ip[0] & 15) * 4, tot = be16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < 20 || tot < ihl || tot > len - 14 || !eq(ip + 16, myip, 4))
		return;
	if (csum_fold(csum_add(0, ip, ihl)) != 0)
		return;		/* bad header checksum */
	if (be16(ip + 6) & 0x3fff)
		return;		/* fragments: not handled */
	if (ip[9] == 1 && tot >= ihl + 8 && ip[ihl] == 8)
		icmp_echo_reply(f, len);
	else if (ip[9] == 6 && tot >= ihl + 20)
		tcp_input(ip, ip + ihl, tot - ihl);
}

/* one received frame: its rx buffer index (frame at rxbufs[i].b + HDR, *len bytes with the header), or -1 */
static int rx_pop(u32 *len)
{
	int id = vq_pop(&rxq, len);
	return id < 0 ? -1 : rx_of_head[id];
}

/* give rx buffer i back to the device */
static void rx_requeue(int i)
{
	struct vbuf b = {rxbufs[i].b, sizeof(rxbufs[i].b), 1};
	int h = vq_add(&rxq, &b, 1);
	if (h >= 0) {
		rx_of_head[h] = (u8)i;
		vq_kick(&rxq);
	}
}

/* process at most one received frame; 1 if there was one */
static int net_poll(void)
{
	u32 len = 0;
	int i = rx_pop(&len);
	if (i < 0)
		return 0;
	if (len > HDR && len <= sizeof(rxbufs[i].b))
		net_frame(rxbufs[i].b + HDR, len - HDR);
	rx_requeue(i);
	virtio_isr_ack(&netdev);
	return 1;
}

/* ARP for ip (5 tries, timeout/5 each); 0 and mac filled, or -1 */
static int arp_resolve(const u8 *ip, u8 *mac)
{
	memcpy(arp_want, ip, 4);
	arp_got = 0;
	static const u8 zero[6];
	for (int t = 0; t < 5 && !arp_got; t++) {
		if (arp_send(1, bcast, zero, ip) < 0)
			return -2;
		u64 dl = deadline_ms(timeout_ms / 5 + 1);
		while (!arp_got && !expired(dl))
			if (!net_poll())
				cpu_relax();
	}
	if (!arp_got)
		return -1;
	memcpy(mac, arp_mac, 6);
	return 0;
}

/* ---------------------------------------------------------------- minimal TCP client */

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10
#define TCP_RXMAX 8192

static struct {
	u8 ip[4], mac[6];
	u16 lport, rport;
	u32 snd_una, snd_nxt, rcv_nxt, isn;
	int established, fin_rcvd, rst, need_ack;
	u32 rxlen;
	u8 rx[TCP_RXMAX + 1];
} tcb;
static u16 next_port = 40000;

static int tcp_send(u8 flags, u32 seq, const void *data, u32 len)
{
	u8 *o = txbuf + HDR;
	u32 optlen = (flags & TH_SYN) ? 4 : 0, tl = 20 + optlen + len;
	eth_hdr(o, tcb.mac, ETH_IP);
	ip_hdr(o + 14, tcb.ip, 6, tl);
	u8 *t = o + 34;
	put16(t, tcb.lport);
	put16(t + 2, tcb.rport);
	put32(t + 4, seq);
	put32(t + 8, (flags & TH_ACK) ? tcb.rcv_nxt : 0);
	t[12] = (u8)(((20 + optlen) / 4) << 4);
	t[13] = flags;
	put16(t + 14, (u16)(TCP_RXMAX - tcb.rxlen));
	put16(t + 16, 0);
	put16(t + 18, 0);
	if (optlen) {		/* MSS 1460 */
		t[20] = 2;
		t[21] = 4;
		put16(t + 22, 1460);
	}
	if (len)
		memcpy(t + 20 + optlen, data, len);
	u8 ph[12];
	memcpy(ph, myip, 4);
	memcpy(ph + 4, tcb.ip, 4);
	ph[8] = 0;
	ph[9] = 6;
	put16(ph + 10, (u16)tl);
	put16(t + 16, csum_fold(csum_add(csum_add(0, ph, 12), t, tl)));
	return net_tx(34 + tl);
}

static int seq_lt(u32 a, u32 b) { return (int)(a - b) < 0; }
static int seq_le(u32 a, u32 b) { return (int)(a - b) <= 0; }

static void tcp_input(const u8 *ip, const u8 *t, u32 tlen)
{
	if (!eq(ip + 12, tcb.ip, 4) || be16(t) != tcb.rport || be16(t + 2) != tcb.lport)
		return;
	u32 doff = (u32)(t[12] >> 4) * 4;
	if (doff < 20 || doff > tlen)
		return;
	u8 ph[12];
	memcpy(ph, ip + 12, 4);
	memcpy(ph + 4, ip + 16, 4);
	ph[8] = 0;
	ph[9] = 6;
	put16(ph + 10, (u16)tlen);
	if (csum_fold(csum_add(csum_add(0, ph, 12), t, tlen)) != 0)
		return;		/* bad checksum: drop */
	u8 fl = t[13];
	u32 seq = be32(t + 4), ack = be32(t + 8);
	const u8 *data = t + doff;
	u32 dlen = tlen - doff;

	if (fl & TH_RST) {
		tcb.rst = 1;
		return;
	}
	if (!tcb.established) {
		if ((fl & (TH_SYN | TH_ACK)) == (TH_SYN | TH_ACK) && ack == tcb.isn + 1) {
			tcb.rcv_nxt = seq + 1;
			tcb.snd_una = ack;
			tcb.established = 1;
			tcb.need_ack = 1;
		}
		return;
	}
	if (fl & TH_SYN) {	/* retransmitted SYN-ACK: our ACK got lost */
		tcb.need_ack = 1;
		return;
	}
	if ((fl & TH_ACK) && seq_lt(tcb.snd_una, ack) && seq_le(ack, tcb.snd_nxt))
		tcb.snd_una = ack;
	if (dlen) {
		tcb.need_ack = 1;
		if (seq != tcb.rcv_nxt)
			return;	/* in-order data only: dup ACK */
		u32 room = TCP_RXMAX - tcb.rxlen;
		if (dlen > room)
			dlen = room;
		memcpy(tcb.rx + tcb.rxlen, data, dlen);
		tcb.rxlen += dlen;
		tcb.rcv_nxt += dlen;
		if (dlen < tlen - doff)
			return;	/* truncated: don't take the FIN */
	}
	if ((fl & TH_FIN) && seq + (tlen - doff) == tcb.rcv_nxt && !tcb.fin_rcvd) {
		tcb.rcv_nxt++;
		tcb.fin_rcvd = 1;
		tcb.need_ack = 1;
	} else if (fl & TH_FIN) {
		tcb.need_ack = 1;
	}
}

/* lower-case compare of n chars */
static int ieq(const char *a, const char *b, u32 n)
{
	for (u32 i = 0; i < n; i++) {
		char x = a[i], y = b[i];
		if (x >= 'A' && x <= 'Z')
			x = (char)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (char)(y + 32);
		if (x != y)
			return 0;
	}
	return 1;
}

/* offset of the body (after \r\n\r\n) in tcb.rx, or -1 */
static int http_body(void)
{
	for (u32 i = 0; i + 4 <= tcb.rxlen; i++)
		if (tcb.rx[i] == '\r' && tcb.rx[i + 1] == '\n' && tcb.rx[i + 2] == '\r' && tcb.rx[i + 3] == '\n')
			return (int)i + 4;
	return -1;
}

/* Content-Length, or -1 */
static long http_clen(int body)
{
	const char *s = (const char *)tcb.rx;
	for (int i = 0; i + 15 < body; i++)
		if ((i == 0 || s[i - 1] == '\n') && ieq(s + i, "content-length:", 15)) {
			const char *v = s + i + 15;
			while (*v == ' ')
				v++;
			int ok;
			u64 n = parse_num(&v, &ok);
			return ok ? (long)n : -1;
		}
	return -1;
}

static int http_complete(void)
{
	int body = http_body();
	if (body < 0)
		return 0;
	long cl = http_clen(body);
	return cl >= 0 && tcb.rxlen >= (u32)body + (u32)cl;
}

static void flush_ack(void)
{
	if (tcb.need_ack) {
		tcb.need_ack = 0;
		tcp_send(TH_ACK, tcb.snd_nxt, 0, 0);
	}
}

/*
 * One HTTP exchange over a fresh connection to tcb.ip:80. The response (headers +
 * body) ends up in tcb.rx[0..rxlen). Returns the status code, or negative with *why set.
 */
static int http_exchange(const char *req, const char **why)
{
	u32 rlen = 0;
	while (req[rlen])
		rlen++;
	tcb.lport = next_port++;
	tcb.rport = 80;
	tcb.isn = (u32)rdtsc() & 0x7fffffff;
	tcb.snd_una = tcb.isn;
	tcb.snd_nxt = tcb.isn + 1;
	tcb.rcv_nxt = 0;
	tcb.established = tcb.fin_rcvd = tcb.rst = tcb.need_ack = 0;
	tcb.rxlen = 0;

	/* SYN, retransmitted up to 4 times */
	for (int t = 0; t < 5 && !tcb.established && !tcb.rst; t++) {
		tcp_send(TH_SYN, tcb.isn, 0, 0);
		u64 dl = deadline_ms(timeout_ms / 5 + 1);
		while (!tcb.established && !tcb.rst && !expired(dl))
			if (!net_poll())
				cpu_relax();
	}
	if (tcb.rst) {
		*why = "connection refused (RST to SYN)";
		return -1;
	}
	if (!tcb.established) {
		*why = "no SYN-ACK (SYN sent 5 times)";
		return -1;
	}
	tcb.need_ack = 0;
	tcp_send(TH_ACK, tcb.snd_nxt, 0, 0);

	/* request; retransmitted while unacknowledged and no response */
	u32 dseq = tcb.snd_nxt;
	tcb.snd_nxt += rlen;
	for (int t = 0; t < 5; t++) {
		if (seq_lt(tcb.snd_una, tcb.snd_nxt) && tcb.rxlen == 0)
			tcp_send(TH_PSH | TH_ACK, dseq, req, rlen);
		u64 dl = deadline_ms(timeout_ms / 5 + 1);
		while (!tcb.rst && !tcb.fin_rcvd && !http_complete() && !expired(dl)) {
			if (!net_poll())
				cpu_relax();
			flush_ack();
		}
		if (tcb.rst || tcb.fin_rcvd || http_complete())
			break;
	}
	flush_ack();
	if (tcb.rst) {
		*why = "connection reset";
		return -1;
	}
	if (!tcb.fin_rcvd && !http_complete()) {
		*why = tcb.rxlen ? "incomplete response (timeout)" : "no response (timeout)";
		return -1;
	}

	/* close: FIN, then wait (bounded) for its ACK and the peer's FIN */
	tcp_send(TH_FIN | TH_ACK, tcb.snd_nxt, 0, 0);
	tcb.snd_nxt++;
	u64 dl = deadline_ms(timeout_ms / 5 + 1);
	while (!tcb.rst && !(tcb.fin_rcvd && tcb.snd_una == tcb.snd_nxt) && !expired(dl)) {
		if (!net_poll())
			cpu_relax();
		flush_ack();
	}
	flush_ack();

	tcb.rx[tcb.rxlen] = 0;
	const char *s = (const char *)tcb.rx;
	if (tcb.rxlen < 12 || !prefix(s, "HTTP/1.")) {
		*why = "not an HTTP response";
		return -1;
	}
	const char *p = s + 9;
	int ok;
	u64 code = parse_num(&p, &ok);
	if (!ok) {
		*why = "bad status line";
		return -1;
	}
	return (int)code;
}

/* print "mmds <status> <first line of body>" */
static void mmds_report(int code)
{
	int body = http_body();
	puts_("mmds ");
	putu((u64)code);
	puts_(" ");
	for (u32 i = body < 0 ? tcb.rxlen : (u32)body, n = 0; i < tcb.rxlen && n < 160; i++, n++) {
		u8 c = tcb.rx[i];
		if (c == '\r' || c == '\n')
			break;
		putc_(c >= 0x20 && c < 0x7f ? (char)c : '?');
	}
	puts_("\n");
}

static char req[512];
static u32 reqlen;
static void req_add(const char *s)
{
	while (*s && reqlen < sizeof(req) - 1)
		req[reqlen++] = *s++;
	req[reqlen] = 0;
}

static void test_mmds(void)
{
	const char *why = "";
	const char *path = opt_str("tg.mmds.path=");
	if (!path)
		path = "/latest/meta-data/";
	memcpy(tcb.ip, mmdsip, 4);
	int r = arp_resolve(mmdsip, tcb.mac);
	if (r < 0) {
		fail(opt_num("tg.mmds.v2=", 0) ? "mmds-v2" : "mmds-v1", "no ARP reply for the MMDS address");
		return;
	}
	puts_("mmds arp-reply ");
	put_mac(tcb.mac);
	puts_("\n");

	if (!opt_num("tg.mmds.v2=", 0)) {
		reqlen = 0;
		req_add("GET ");
		req_add(path);
		req_add(" HTTP/1.1\r\nHost: 169.254.169.254\r\nAccept: */*\r\n\r\n");
		int code = http_exchange(req, &why);
		if (code < 0) {
			fail("mmds-v1", why);
			return;
		}
		mmds_report(code);
		if (code == 200)
			pass("mmds-v1");
		else
			failx("mmds-v1", "HTTP status", (u64)code);
		return;
	}

	/* V2: token, GET with it, GET without it -> 401 */
	reqlen = 0;
	req_add("PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\n"
		"X-metadata-token-ttl-seconds: 60\r\n\r\n");
	int code = http_exchange(req, &why);
	if (code < 0) {
		fail("mmds-v2", why);
		return;
	}
	int body = http_body();
	if (code != 200 || body < 0 || (u32)body >= tcb.rxlen) {
		mmds_report(code);
		failx("mmds-v2", "token PUT failed, HTTP status", (u64)code);
		return;
	}
	static char token[256];
	u32 tl = 0;
	for (u32 i = (u32)body; i < tcb.rxlen && tl < sizeof(token) - 1; i++) {
		char c = (char)tcb.rx[i];
		if (c == '\r' || c == '\n')
			break;
		token[tl++] = c;
	}
	token[tl] = 0;
	puts_("mmds token ");
	putu(tl);
	puts_(" bytes\n");

	reqlen = 0;
	req_add("GET ");
	req_add(path);
	req_add(" HTTP/1.1\r\nHost: 169.254.169.254\r\nAccept: */*\r\nX-metadata-token: ");
	req_add(token);
	req_add("\r\n\r\n");
	code = http_exchange(req, &why);
	if (code < 0) {
		fail("mmds-v2", why);
	} else {
		mmds_report(code);
		if (code == 200)
			pass("mmds-v2");
		else
			failx("mmds-v2", "HTTP status", (u64)code);
	}

	reqlen = 0;
	req_add("GET ");
	req_add(path);
	req_add(" HTTP/1.1\r\nHost: 169.254.169.254\r\nAccept: */*\r\n\r\n");
	code = http_exchange(req, &why);
	if (code < 0) {
		fail("mmds-v2-401", why);
	} else {
		mmds_report(code);
		if (code == 401)
			pass("mmds-v2-401");
		else
			failx("mmds-v2-401", "GET without token: HTTP status", (u64)code);
	}
}

/* ---------------------------------------------------------------- the test */

/* ---------------------------------------------------------------- throughput */

#define TXB 8			/* tx frames in flight */
#define UDP_PAYLOAD 1472	/* 14 + 20 + 8 + 1472 = 1514-byte frames */
#define DISCARD_PORT 9
static u8 tputbuf[TXB][HDR + FRAME_MAX] __attribute__((aligned(64)));

static void put_us(const char *what, u64 frames, u64 bytes, u64 cycles)
{
	puts_(what);
	puts_(" frames=");
	putu(frames);
	puts_(" bytes=");
	putu(bytes);
	puts_(" us=");
	putu(cycles / (tsc_khz() / 1000 ? tsc_khz() / 1000 : 1));
	puts_("\n");
}

static void tput_tx(u64 n, const u8 *hmac)
{
	for (int i = 0; i < TXB; i++) {
		u8 *f = tputbuf[i] + HDR;
		memset(tputbuf[i], 0, HDR);
		eth_hdr(f, hmac, ETH_IP);
		ip_hdr(f + 14, hostip, 17, 8 + UDP_PAYLOAD);
		put16(f + 34, DISCARD_PORT);
		put16(f + 36, DISCARD_PORT);
		put16(f + 38, 8 + UDP_PAYLOAD);
		put16(f + 40, 0);	/* no UDP checksum */
		for (int j = 0; j < UDP_PAYLOAD; j++)
			f[42 + j] = (u8)j;
	}
	puts_("net tput tx start\n");
	u64 t0 = rdtsc(), sent = 0, done = 0, dl = deadline_ms(timeout_ms);
	int inflight = 0;
	while (done < n) {
		int added = 0;
		while (inflight < TXB && sent < n) {
			/* identical frames, only read by the device: a buffer may be queued twice */
			struct vbuf b = {tputbuf[sent % TXB], HDR + 14 + 20 + 8 + UDP_PAYLOAD, 0};
			if (vq_add(&txq, &b, 1) < 0)
				break;
			sent++;
			inflight++;
			added = 1;
		}
		if (added)
			vq_kick(&txq);
		u32 len;
		int got = 0;
		while (vq_pop(&txq, &len) >= 0) {
			done++;
			inflight--;
			got = 1;
		}
		while (net_poll())	/* keep rx drained (ARP from the host, ICMP port unreachable) */
			;
		if (got)
			dl = deadline_ms(timeout_ms);
		else if (expired(dl)) {
			failx("net-tput-tx", "tx stalled; frames done", done);
			return;
		} else
			cpu_relax();
	}
	put_us("net tput tx done", n, n * (14 + 20 + 8 + UDP_PAYLOAD), rdtsc() - t0);
	pass("net-tput-tx");
}

static void tput_rx(u64 n)
{
	puts_("net tput rx ready\n");
	u64 got = 0, bytes = 0, t0 = 0, dl = deadline_ms(timeout_ms);
	while (got < n) {
		u32 len = 0;
		int i = rx_pop(&len);
		if (i < 0) {
			if (expired(dl))
				break;
			cpu_relax();
			continue;
		}
		const u8 *f = rxbufs[i].b + HDR;
		u32 flen = len > HDR ? len - HDR : 0;
		if (flen >= 42 && be16(f + 12) == ETH_IP && f[14 + 9] == 17 && eq(f + 30, myip, 4) &&
		    be16(f + 14 + (f[14] & 15) * 4 + 2) == DISCARD_PORT) {
			if (!got)
				t0 = rdtsc();
			got++;
			bytes += flen;
		} else if (flen)
			net_frame(f, flen);	/* ARP for us */
		rx_requeue(i);
		dl = deadline_ms(timeout_ms);
	}
	virtio_isr_ack(&netdev);
	put_us("net tput rx done", got, bytes, got ? rdtsc() - t0 : 0);
	if (got >= n)
		pass("net-tput-rx");
	else
		failx("net-tput-rx", "frames received before the timeout", got);
}

void test_net(void)
{
	timeout_ms = opt_num("tg.timeout=", 5000);
	opt_ip("tg.net.ip=", "172.16.0.2", myip);
	opt_ip("tg.net.hostip=", "172.16.0.1", hostip);
	opt_ip("tg.mmds.ip=", "169.254.169.254", mmdsip);

	int di = virtio_find(VID_NET, 0, 0);
	if (di < 0) {
		fail("net", "no virtio-net (id 1) among cmdline devices");
		return;
	}
	if (virtio_begin(&netdev, di, 1ull << F_MAC, "net") < 0 ||
	    vq_setup(&netdev, &rxq, 0, &net_ring[0], NRX, "net") < 0 ||
	    vq_setup(&netdev, &txq, 1, &net_ring[1], 16, "net") < 0)
		return;
	if (netdev.features & (1ull << F_MAC)) {
		for (int i = 0; i < 6; i++)
			mymac[i] = vcfg8(&netdev, (u32)i);
	} else {
		static const u8 def[6] = {0x06, 0x00, 0xac, 0x10, 0x00, 0x02};
		memcpy(mymac, def, 6);
	}
	if (virtio_ready(&netdev, "net") < 0)
		return;
	for (int i = 0; i < NRX && i < rxq.size; i++) {
		struct vbuf b = {rxbufs[i].b, sizeof(rxbufs[i].b), 1};
		int h = vq_add(&rxq, &b, 1);
		if (h >= 0)
			rx_of_head[h] = (u8)i;
	}
	vq_kick(&rxq);

	puts_("net dev=");
	putx(netdev.base);
	puts_(" features=");
	putx(netdev.offered);
	puts_(" mac=");
	put_mac(mymac);
	puts_(" ip=");
	put_ip(myip);
	puts_(" qsz=");
	putu(rxq.size);
	puts_("/");
	putu(txq.size);
	puts_("\n");

	/* (a) ARP for the host */
	u8 hmac[6];
	int r = arp_resolve(hostip, hmac);
	if (r == -2) {
		fail("net-arp", "tx timeout (used ring)");
		return;
	} else if (r < 0) {
		fail("net-arp", "no ARP reply from the host IP");
	} else {
		puts_("net arp-reply ");
		put_mac(hmac);
		puts_("\n");
		pass("net-arp");
	}

	/* (b) serve pings */
	u64 wait = opt_num("tg.net.pingwait=", 0), want = opt_num("tg.net.pingcount=", 0);
	if (wait) {
		puts_("net serving ping\n");
		u32 before = pings_served;
		u64 dl = deadline_ms(wait);
		while (!expired(dl) && !(want && pings_served - before >= want))
			if (!net_poll())
				cpu_relax();
		/* let a last request in flight get its reply */
		for (int i = 0; i < 1000; i++)
			net_poll();
		if (pings_served)
			pass_n("net-ping-served", pings_served);
		else
			failx("net-ping-served", "no echo request answered, ms waited", wait);
	}

	/* (c) MMDS */
	if (opt_num("tg.mmds=", 0))
		test_mmds();

	/* (d) throughput (needs the host's MAC from (a)) */
	u64 ntx = opt_num("tg.net.tput.tx=", 0), nrx = opt_num("tg.net.tput.rx=", 0);
	if (ntx && r >= 0)
		tput_tx(ntx, hmac);
	if (nrx)
		tput_rx(nrx);
	if (tx_errors)
		failx("net", "tx timeouts", tx_errors);
}
