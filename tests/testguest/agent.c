/*
 * agent: the Flint function agent's wire protocol (docs/agent-protocol.md) served over
 * vsock, so host tests (and flint-pool's) can drive it without a Linux guest.
 *   tg.agent=<port>             after the selected tests (and the done line): serve forever
 *   tg.agent.handler=<name>     upper (default) | sum | fail | hang | garbage
 * Per connection, one exchange at a time:
 *   PING\n                      -> PONG\n
 *   INVOKE <id> <n>\n + n bytes -> RESULT <id> <status> <n>\n + n bytes
 *   anything else               -> ERROR <text>\n, then the connection is closed
 * Handlers: upper = payload with a-z uppercased, status 0; sum = the decimal sum of the
 * payload's bytes (no newline), status 0; fail = "failed\n", status 3; hang = reads the
 * INVOKE and never answers it or anything after it on that connection (it is still read, so
 * the host's close is seen; PINGs before the first INVOKE are answered);
 * garbage = answers GarbageReply (not a RESULT line) and goes on reading.
 * Limits: a line is at most LINE_MAX bytes with its '\n'; n at most PAYLOAD_MAX (the real
 * agent allows 1 MiB; the test guest keeps its image small).
 *   agent listening <port> handler=<name>      (info, once: the host may connect now)
 *   agent connection <k>                       (info, per accepted connection)
 */
#include "vsock.h"

#define LINE_MAX 64
#define PAYLOAD_MAX 65536u
#define ID_DIGITS_MAX 20
#define WRITE_MS 5000

enum handler { H_UPPER, H_SUM, H_FAIL, H_HANG, H_GARBAGE };

static const char garbage_reply[] = "GARBAGE \x01\xff not a result\n";

static u8 payload[PAYLOAD_MAX];
static u8 result[PAYLOAD_MAX];
static u8 inbuf[512];
static u32 in_len, in_pos;

/* ---------------------------------------------------------------- buffered reads */

static int get_byte(void)
{
	if (in_pos == in_len) {
		int n = vsa_read(inbuf, sizeof(inbuf));
		if (n <= 0)
			return -1;
		in_len = (u32)n;
		in_pos = 0;
	}
	return inbuf[in_pos++];
}

/* the line without its '\n' (NUL-terminated): length, -1 when the host closed, -2 when too long */
static int read_line(char *line)
{
	for (int n = 0; n < LINE_MAX; n++) {
		int c = get_byte();
		if (c < 0)
			return -1;
		if (c == '\n') {
			line[n] = 0;
			return n;
		}
		line[n] = (char)c;
	}
	return -2;
}

/* exactly n bytes into buf: 0, or -1 when the host closed first */
static int read_exact(u8 *buf, u32 n)
{
	u32 got = 0;
	while (got < n && in_pos < in_len)
		buf[got++] = inbuf[in_pos++];
	while (got < n) {
		int r = vsa_read(buf + got, n - got);
		if (r <= 0)
			return -1;
		got += (u32)r;
	}
	return 0;
}

/* ---------------------------------------------------------------- parsing */

/* decimal digits only (no sign, no spaces), at most max_digits of them, value <= max;
 * advances *sp past the digits */
static int parse_dec(const char **sp, int max_digits, u64 max, u64 *out)
{
	const char *s = *sp;
	u64 v = 0;
	int n = 0;
	while (*s >= '0' && *s <= '9') {
		if (++n > max_digits)
			return -1;
		u64 d = (u64)(*s - '0');
		if (v > (~0ull - d) / 10)
			return -1;
		v = v * 10 + d;
		s++;
	}
	if (n == 0 || v > max)
		return -1;
	*sp = s;
	*out = v;
	return 0;
}

/* ---------------------------------------------------------------- answers */

static u32 fmt_u64(char *b, u64 v)
{
	char t[20];
	u32 n = 0, k = 0;
	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		b[k++] = t[--n];
	return k;
}

static u32 append(char *b, u32 at, const char *s)
{
	while (*s)
		b[at++] = *s++;
	return at;
}

static int send_str(const char *s)
{
	u32 n = 0;
	while (s[n])
		n++;
	return vsa_write(s, n, WRITE_MS);
}

static int send_result(u64 id, u32 status, const u8 *data, u32 n)
{
	char h[LINE_MAX];
	u32 k = append(h, 0, "RESULT ");
	k += fmt_u64(h + k, id);
	h[k++] = ' ';
	k += fmt_u64(h + k, status);
	h[k++] = ' ';
	k += fmt_u64(h + k, n);
	h[k++] = '\n';
	if (vsa_write(h, k, WRITE_MS) < 0)
		return -1;
	return n ? vsa_write(data, n, WRITE_MS) : 0;
}

/* ---------------------------------------------------------------- handlers */

static u32 run_handler(enum handler h, u32 n, u32 *status)
{
	*status = 0;
	switch (h) {
	case H_SUM: {
		u64 sum = 0;
		for (u32 i = 0; i < n; i++)
			sum += payload[i];
		return fmt_u64((char *)result, sum);
	}
	case H_FAIL:
		*status = 3;
		return append((char *)result, 0, "failed\n");
	default:	/* upper */
		for (u32 i = 0; i < n; i++)
			result[i] = payload[i] >= 'a' && payload[i] <= 'z' ? (u8)(payload[i] - 32) : payload[i];
		return n;
	}
}

/* one connection's exchanges, until the host closes it or a bad line ends it */
static void serve(enum handler h)
{
	char line[LINE_MAX];
	in_len = in_pos = 0;
	for (;;) {
		int len = read_line(line);
		if (len == -1)
			return;
		if (len == -2) {
			send_str("ERROR line too long\n");
			return;
		}
		if (streq(line, "PING")) {
			if (send_str("PONG\n") < 0)
				return;
			continue;
		}
		if (!prefix(line, "INVOKE ")) {
			send_str("ERROR unknown command\n");
			return;
		}
		const char *s = line + 7;
		u64 id, n;
		if (parse_dec(&s, ID_DIGITS_MAX, ~0ull, &id) < 0 || *s++ != ' ' ||
		    parse_dec(&s, ID_DIGITS_MAX, ~0ull, &n) < 0 || *s) {
			send_str("ERROR malformed INVOKE line\n");
			return;
		}
		if (n > PAYLOAD_MAX) {
			send_str("ERROR payload too large\n");
			return;
		}
		if (read_exact(payload, (u32)n) < 0)
			return;
		if (h == H_HANG) {
			while (read_exact(payload, 1) == 0)
				;
			return;
		}
		if (h == H_GARBAGE) {
			if (vsa_write(garbage_reply, sizeof(garbage_reply) - 1, WRITE_MS) < 0)
				return;
			continue;
		}
		u32 status;
		u32 rn = run_handler(h, (u32)n, &status);
		if (send_result(id, status, result, rn) < 0)
			return;
	}
}

void agent_serve(u32 port)
{
	const char *name = opt_str("tg.agent.handler=");
	enum handler h = H_UPPER;
	if (!name || streq(name, "upper"))
		name = "upper";
	else if (streq(name, "sum"))
		h = H_SUM;
	else if (streq(name, "fail"))
		h = H_FAIL;
	else if (streq(name, "hang"))
		h = H_HANG;
	else if (streq(name, "garbage"))
		h = H_GARBAGE;
	else {
		fail("agent", "unknown tg.agent.handler (upper, sum, fail, hang, garbage)");
		return;
	}
	if (vsock_up("agent") < 0)
		return;
	vsa_listen(port);
	puts_("agent listening ");
	putu(port);
	puts_(" handler=");
	puts_(name);
	puts_("\n");
	for (u64 k = 1;; k++) {
		vsa_accept();
		puts_("agent connection ");
		putu(k);
		puts_("\n");
		serve(h);
		vsa_close();
	}
}
