/*
 * flint-agent: the in-guest side of Flint's function agent protocol (docs/agent-protocol.md).
 *
 * Started by the rootfs's init, it listens on AF_VSOCK port 5005 (the host reaches it through
 * Flint's hybrid vsock: CONNECT 5005) and serves one connection at a time, any number of
 * exchanges on it, one at a time:
 *   PING\n                      -> PONG\n
 *   INVOKE <id> <n>\n + n bytes -> RESULT <id> <status> <n>\n + n bytes
 *   anything else               -> ERROR <text>\n, then the connection is closed
 * For each INVOKE it runs the handler (/var/flint/handler, or flint.handler= on the kernel
 * cmdline) with the payload on stdin; the result is its stdout (at most 1 MiB, the rest is
 * read and dropped), the status its exit status (a signal: 128 + signal; over the timeout,
 * flint.timeout_ms= default 30000: killed, 124; could not be started: 126/127 from exec,
 * 125 when fork/pipe failed).
 *
 * The host is trusted more than the handler, but nothing it sends may crash or wedge the
 * agent: lines are at most LINE_MAX bytes, payloads at most PAYLOAD_MAX, every read after
 * the first byte of a request and every write is bounded by the I/O timeout.
 *
 * Flags (override the kernel cmdline; the tests use them):
 *   --unix PATH        listen on a Unix socket instead of vsock (tests only)
 *   --port N           vsock port (flint.port=, default 5005)
 *   --handler PATH     (flint.handler=)     --timeout-ms N (flint.timeout_ms=)
 *   --io-timeout-ms N  bound of each read/write once a request has started (default 10000)
 *   --cmdline FILE     where the kernel cmdline is read from (default /proc/cmdline)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PORT 5005u
#define DEFAULT_HANDLER "/var/flint/handler"
#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_IO_TIMEOUT_MS 10000L
#define LINE_MAX_ 64			/* a request line with its '\n'; the longest valid one is 36 */
#define PAYLOAD_MAX (1u << 20)
#define RESULT_MAX (1u << 20)
#define ID_DIGITS_MAX 20
#define CMDLINE_MAX 4096
#define PATH_MAX_ 1024

#define STATUS_TIMEOUT 124
#define STATUS_AGENT_FAILED 125

struct config {
	unsigned port;
	const char *unix_path;
	char handler[PATH_MAX_];
	long timeout_ms;
	long io_timeout_ms;
};

static uint8_t payload[PAYLOAD_MAX];
static uint8_t result[RESULT_MAX];

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("flint-agent: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- numbers */

/* decimal digits only (no sign, no spaces), at most max_digits, value <= max; *sp moves past them */
static int parse_dec(const char **sp, int max_digits, uint64_t max, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;
	int n = 0;
	while (*s >= '0' && *s <= '9') {
		if (++n > max_digits)
			return -1;
		uint64_t d = (uint64_t)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
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

/* a whole decimal string (an option value), or -1 */
static int parse_num_str(const char *s, uint64_t max, uint64_t *out)
{
	return parse_dec(&s, ID_DIGITS_MAX, max, out) < 0 || *s ? -1 : 0;
}

/* ---------------------------------------------------------------- configuration */

/* flint.port=, flint.handler=, flint.timeout_ms= from the kernel cmdline (bad values: logged, ignored) */
static void read_cmdline(struct config *cfg, const char *path)
{
	char buf[CMDLINE_MAX];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (char *save = 0, *tok = strtok_r(buf, " \t\n", &save); tok; tok = strtok_r(0, " \t\n", &save)) {
		uint64_t v;
		if (!strncmp(tok, "flint.port=", 11)) {
			if (parse_num_str(tok + 11, UINT32_MAX, &v) == 0 && v > 0)
				cfg->port = (unsigned)v;
			else
				logf_("ignoring %s (a port 1..4294967295)", tok);
		} else if (!strncmp(tok, "flint.timeout_ms=", 17)) {
			if (parse_num_str(tok + 17, 86400000, &v) == 0 && v > 0)
				cfg->timeout_ms = (long)v;
			else
				logf_("ignoring %s (1..86400000 ms)", tok);
		} else if (!strncmp(tok, "flint.handler=", 14)) {
			if (tok[14] == '/' && strlen(tok + 14) < sizeof(cfg->handler))
				strcpy(cfg->handler, tok + 14);
			else
				logf_("ignoring %s (an absolute path)", tok);
		}
	}
}

static void usage_exit(const char *why)
{
	fprintf(stderr, "flint-agent: %s\nusage: flint-agent [--unix PATH] [--port N] [--handler PATH] "
			"[--timeout-ms N] [--io-timeout-ms N] [--cmdline FILE]\n", why);
	exit(2);
}

static void parse_args(struct config *cfg, int argc, char **argv)
{
	const char *cmdline = "/proc/cmdline";
	/* --cmdline first: flags given on the command line override the kernel's */
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--cmdline"))
			cmdline = argv[i + 1];
	read_cmdline(cfg, cmdline);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			usage_exit("missing value or unknown flag");
		const char *v = argv[++i];
		uint64_t n;
		if (!strcmp(a, "--cmdline")) {
			continue;
		} else if (!strcmp(a, "--unix")) {
			cfg->unix_path = v;
		} else if (!strcmp(a, "--handler")) {
			if (strlen(v) >= sizeof(cfg->handler))
				usage_exit("--handler: path too long");
			strcpy(cfg->handler, v);
		} else if (!strcmp(a, "--port")) {
			if (parse_num_str(v, UINT32_MAX, &n) < 0 || n == 0)
				usage_exit("--port: 1..4294967295");
			cfg->port = (unsigned)n;
		} else if (!strcmp(a, "--timeout-ms")) {
			if (parse_num_str(v, 86400000, &n) < 0 || n == 0)
				usage_exit("--timeout-ms: 1..86400000");
			cfg->timeout_ms = (long)n;
		} else if (!strcmp(a, "--io-timeout-ms")) {
			if (parse_num_str(v, 86400000, &n) < 0 || n == 0)
				usage_exit("--io-timeout-ms: 1..86400000");
			cfg->io_timeout_ms = (long)n;
		} else {
			usage_exit("unknown flag");
		}
	}
}

/* ---------------------------------------------------------------- the connection */

struct conn {
	int fd;
	long io_timeout_ms;
	uint8_t buf[4096];
	size_t len, pos;
};

/* wait for fd to be ready for events: 1 ready, 0 timeout, -1 error (timeout_ms < 0: forever) */
static int wait_fd(int fd, short events, long timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	for (;;) {
		int r = poll(&p, 1, timeout_ms < 0 ? -1 : (int)(timeout_ms > INT_MAX ? INT_MAX : timeout_ms));
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 ? -1 : r;
	}
}

/* refill the buffer: > 0 bytes, 0 on EOF, -1 on error, -2 on timeout */
static int conn_fill(struct conn *c, long timeout_ms)
{
	int w = wait_fd(c->fd, POLLIN, timeout_ms);
	if (w <= 0)
		return w == 0 ? -2 : -1;
	ssize_t n;
	do
		n = read(c->fd, c->buf, sizeof(c->buf));
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n == 0 ? 0 : -1;
	c->len = (size_t)n;
	c->pos = 0;
	return (int)n;
}

enum { LINE_CLOSED = -1, LINE_TOO_LONG = -2, LINE_TIMEOUT = -3 };

/* a request line without its '\n' (NUL-terminated): its length or a LINE_ code. Waiting for
 * the first byte is open-ended (the host may keep an idle connection); the rest is bounded. */
static int read_line(struct conn *c, char *line)
{
	for (int n = 0; n < LINE_MAX_; n++) {
		if (c->pos == c->len) {
			int r = conn_fill(c, n == 0 ? -1 : c->io_timeout_ms);
			if (r == -2)
				return LINE_TIMEOUT;
			if (r <= 0)
				return LINE_CLOSED;
		}
		char ch = (char)c->buf[c->pos++];
		if (ch == '\n') {
			line[n] = 0;
			return n;
		}
		line[n] = ch;
	}
	return LINE_TOO_LONG;
}

/* exactly n bytes: 0, -1 closed/error, -2 timeout */
static int read_exact(struct conn *c, uint8_t *out, size_t n)
{
	size_t got = 0;
	while (got < n) {
		if (c->pos == c->len) {
			int r = conn_fill(c, c->io_timeout_ms);
			if (r <= 0)
				return r == -2 ? -2 : -1;
		}
		size_t k = c->len - c->pos < n - got ? c->len - c->pos : n - got;
		memcpy(out + got, c->buf + c->pos, k);
		c->pos += k;
		got += k;
	}
	return 0;
}

static int write_all(struct conn *c, const void *data, size_t n)
{
	const uint8_t *p = data;
	while (n) {
		if (wait_fd(c->fd, POLLOUT, c->io_timeout_ms) <= 0)
			return -1;
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void send_error(struct conn *c, const char *text)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "ERROR %s\n", text);
	write_all(c, line, (size_t)n);
}

/* ---------------------------------------------------------------- the handler */

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* the child: pipes on 0/1, its own process group (so a timeout kills what it started), default signals */
static void __attribute__((noreturn)) exec_handler(const char *handler, int in_fd, int out_fd, uint64_t id)
{
	setpgid(0, 0);
	if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0)
		_exit(STATUS_AGENT_FAILED);
	signal(SIGPIPE, SIG_DFL);
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, 0);
	char idbuf[24];
	snprintf(idbuf, sizeof(idbuf), "%llu", (unsigned long long)id);
	setenv("FLINT_INVOKE_ID", idbuf, 1);
	execl(handler, handler, (char *)0);
	int e = errno;
	fprintf(stderr, "flint-agent: cannot run %s: %s\n", handler, strerror(e));
	_exit(e == ENOENT || e == ENOTDIR ? 127 : 126);
}

/* has the child exited? (not reaped: the zombie keeps its pid and process group alive) */
static int child_exited(pid_t pid)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/*
 * Runs the handler with in[0..in_len) on stdin; its stdout goes to out (at most out_max bytes,
 * the rest is read and dropped). Returns its status; *out_len is what was collected, also on
 * a timeout.
 */
static int run_handler(const struct config *cfg, uint64_t id, const uint8_t *in, size_t in_len, uint8_t *out,
		       size_t out_max, size_t *out_len)
{
	int inp[2], outp[2];
	*out_len = 0;
	if (pipe2(inp, O_CLOEXEC) < 0)
		return STATUS_AGENT_FAILED;
	if (pipe2(outp, O_CLOEXEC) < 0) {
		close(inp[0]);
		close(inp[1]);
		return STATUS_AGENT_FAILED;
	}
	pid_t pid = fork();
	if (pid == 0)
		exec_handler(cfg->handler, inp[0], outp[1], id);
	close(inp[0]);
	close(outp[1]);
	int wfd = inp[1], rfd = outp[0];
	if (pid < 0) {
		logf_("fork: %s", strerror(errno));
		close(wfd);
		close(rfd);
		return STATUS_AGENT_FAILED;
	}
	setpgid(pid, pid);	/* also here: whichever runs first, the group exists before a kill */
	set_nonblock(wfd);
	set_nonblock(rfd);
	if (in_len == 0)
		close_fd(&wfd);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	long deadline = now_ms() + cfg->timeout_ms;
	size_t sent = 0;
	int exited = 0, timed_out = 0;
	uint8_t sink[4096];

	while (!exited) {
		long left = deadline - now_ms();
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		struct pollfd p[3];
		int n = 0, iw = -1, ir = -1, ip = -1;
		if (wfd >= 0)
			p[iw = n++] = (struct pollfd){.fd = wfd, .events = POLLOUT};
		if (rfd >= 0)
			p[ir = n++] = (struct pollfd){.fd = rfd, .events = POLLIN};
		if (pidfd >= 0)
			p[ip = n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		/* without a pidfd (old kernel) the exit is polled every 10 ms */
		int slice = pidfd >= 0 ? (int)(left > INT_MAX ? INT_MAX : left) : (int)(left < 10 ? left : 10);
		if (poll(p, (nfds_t)n, slice) < 0 && errno != EINTR)
			break;
		if (iw >= 0 && (p[iw].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = write(wfd, in + sent, in_len - sent);
			if (w > 0)
				sent += (size_t)w;
			/* all written, or the handler closed its stdin: it gets EOF / needs no more */
			if (sent == in_len || (w < 0 && errno != EAGAIN && errno != EINTR))
				close_fd(&wfd);
		}
		if (ir >= 0 && (p[ir].revents & (POLLIN | POLLERR | POLLHUP))) {
			ssize_t r = read(rfd, *out_len < out_max ? out + *out_len : sink,
					 *out_len < out_max ? out_max - *out_len : sizeof(sink));
			if (r > 0 && *out_len < out_max)
				*out_len += (size_t)r;
			else if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				close_fd(&rfd);
		}
		if (ip >= 0 ? (p[ip].revents & POLLIN) != 0 : child_exited(pid))
			exited = 1;
	}
	/* the group goes: on a timeout the handler, always whatever it left running (the
	 * unreaped zombie keeps the pid and group from being reused until waitpid below) */
	kill(-pid, SIGKILL);
	if (timed_out)
		kill(pid, SIGKILL);
	/* what the handler wrote before it exited is still in the pipe; bounded, as a process
	 * that left the group could keep writing */
	for (size_t drained = 0; rfd >= 0 && drained < 2 * (size_t)RESULT_MAX;) {
		ssize_t r = read(rfd, *out_len < out_max ? out + *out_len : sink,
				 *out_len < out_max ? out_max - *out_len : sizeof(sink));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		drained += (size_t)r;
		if (*out_len < out_max)
			*out_len += (size_t)r;
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	close_fd(&wfd);
	close_fd(&rfd);
	close_fd(&pidfd);
	if (timed_out)
		return STATUS_TIMEOUT;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return STATUS_AGENT_FAILED;
}

/* ---------------------------------------------------------------- the protocol */

/* one connection's exchanges, until the host closes it or a bad request ends it */
static void serve(const struct config *cfg, int fd)
{
	static struct conn c;
	c.fd = fd;
	c.io_timeout_ms = cfg->io_timeout_ms;
	c.len = c.pos = 0;
	char line[LINE_MAX_];
	for (;;) {
		int len = read_line(&c, line);
		if (len == LINE_CLOSED)
			return;
		if (len == LINE_TOO_LONG) {
			send_error(&c, "line too long");
			return;
		}
		if (len == LINE_TIMEOUT) {
			send_error(&c, "timeout reading the request");
			return;
		}
		if (!strcmp(line, "PING")) {
			if (write_all(&c, "PONG\n", 5) < 0)
				return;
			continue;
		}
		if (strncmp(line, "INVOKE ", 7)) {
			send_error(&c, "unknown command");
			return;
		}
		const char *s = line + 7;
		uint64_t id, n;
		if (parse_dec(&s, ID_DIGITS_MAX, UINT64_MAX, &id) < 0 || *s++ != ' ' ||
		    parse_dec(&s, ID_DIGITS_MAX, UINT64_MAX, &n) < 0 || *s) {
			send_error(&c, "malformed INVOKE line");
			return;
		}
		if (n > PAYLOAD_MAX) {
			send_error(&c, "payload too large");
			return;
		}
		int r = read_exact(&c, payload, (size_t)n);
		if (r == -2)
			send_error(&c, "timeout reading the request");
		if (r < 0)
			return;
		size_t out_len;
		int status = run_handler(cfg, id, payload, (size_t)n, result, RESULT_MAX, &out_len);
		char head[LINE_MAX_];
		int hl = snprintf(head, sizeof(head), "RESULT %llu %d %zu\n", (unsigned long long)id, status, out_len);
		if (write_all(&c, head, (size_t)hl) < 0 || write_all(&c, result, out_len) < 0)
			return;
	}
}

static int listen_socket(const struct config *cfg)
{
	if (cfg->unix_path) {
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		if (strlen(cfg->unix_path) >= sizeof(a.sun_path))
			usage_exit("--unix: path too long");
		strcpy(a.sun_path, cfg->unix_path);
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct stat st;
		if (lstat(cfg->unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(cfg->unix_path);
		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0) {
			logf_("cannot listen on %s: %s", cfg->unix_path, strerror(errno));
			exit(1);
		}
		return fd;
	}
	/* the vsock driver may still be probing when init starts us: retry for ~5 s */
	for (int attempt = 0;; attempt++) {
		struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = cfg->port};
		int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 8) == 0)
			return fd;
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (attempt == 50) {
			logf_("cannot listen on vsock port %u: %s", cfg->port, strerror(e));
			exit(1);
		}
		usleep(100000);
	}
}

int main(int argc, char **argv)
{
	struct config cfg = {.port = DEFAULT_PORT, .timeout_ms = DEFAULT_TIMEOUT_MS, .io_timeout_ms = DEFAULT_IO_TIMEOUT_MS};
	strcpy(cfg.handler, DEFAULT_HANDLER);
	parse_args(&cfg, argc, argv);
	/* fds 0-2 must be taken before any socket or pipe is made: a pipe landing on 0 or 1 would be
	 * clobbered by the child's dup2s (an init may start us with them closed) */
	int nullfd;
	while ((nullfd = open("/dev/null", O_RDWR)) >= 0 && nullfd <= 2)
		;
	if (nullfd > 2)
		close(nullfd);
	signal(SIGPIPE, SIG_IGN);	/* a host that went away is an error return, not a death */
	setvbuf(stderr, 0, _IOLBF, 0);
	int lfd = listen_socket(&cfg);
	if (cfg.unix_path)
		logf_("listening on unix %s, handler %s, timeout %ld ms", cfg.unix_path, cfg.handler, cfg.timeout_ms);
	else
		logf_("listening on vsock port %u, handler %s, timeout %ld ms", cfg.port, cfg.handler, cfg.timeout_ms);
	for (;;) {
		int fd = accept4(lfd, 0, 0, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				usleep(10000);	/* EMFILE and the like: do not spin */
			continue;
		}
		serve(&cfg, fd);
		close(fd);
		/* when the agent is pid 1, orphans of handlers end up here */
		while (waitpid(-1, 0, WNOHANG) > 0)
			;
	}
}
