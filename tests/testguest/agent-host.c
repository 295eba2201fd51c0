/*
 * agent-host: agent.c built for the host, so its protocol handling is tested without KVM
 * (tests/Flint.Agent.Tests). vsock.h is served by a Unix socket listener and the serial
 * output goes to stdout; everything else is agent.c unchanged.
 * Usage: out/agent-host SOCKET_PATH [HANDLER]     (HANDLER as tg.agent.handler=)
 * The virtio-vsock transport under agent.c (vsock.c: rings, credit) is not exercised here:
 * only the Needs=kvm test of Flint.Vmm.Tests covers it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef unsigned int u32;
typedef unsigned long long u64;

void agent_serve(u32 port);

static const char *sock_path, *handler;
static int lfd = -1, cfd = -1;
unsigned n_pass, n_fail;

/* ---------------------------------------------------------------- tg.h */

int prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

int streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

const char *opt_str(const char *key)
{
	return streq(key, "tg.agent.handler=") ? handler : 0;
}

void puts_(const char *s)
{
	fputs(s, stdout);
	fflush(stdout);
}

void putu(u64 v)
{
	printf("%llu", v);
	fflush(stdout);
}

void fail(const char *name, const char *why)
{
	n_fail++;
	printf("FAIL %s: %s\n", name, why);
	fflush(stdout);
}

/* ---------------------------------------------------------------- vsock.h over a Unix socket */

int vsock_up(const char *name)
{
	(void)name;
	return 0;
}

void vsa_listen(u32 port)
{
	(void)port;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
	unlink(sock_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4) < 0) {
		perror("agent-host: listen");
		exit(1);
	}
}

void vsa_accept(void)
{
	while ((cfd = accept(lfd, 0, 0)) < 0)
		if (errno != EINTR)
			exit(1);
}

int vsa_read(void *buf, u32 max)
{
	if (!max)
		return 0;
	ssize_t n;
	do
		n = read(cfd, buf, max);
	while (n < 0 && errno == EINTR);
	return n > 0 ? (int)n : 0;
}

int vsa_write(const void *d, u32 len, u64 ms)
{
	const char *p = d;
	while (len) {
		struct pollfd pf = {.fd = cfd, .events = POLLOUT};
		if (poll(&pf, 1, (int)ms) <= 0)
			return -1;
		ssize_t w = send(cfd, p, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (u32)w;
	}
	return 0;
}

void vsa_close(void)
{
	if (cfd >= 0)
		close(cfd);
	cfd = -1;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: agent-host SOCKET_PATH [upper|sum|fail|hang|garbage]\n");
		return 2;
	}
	sock_path = argv[1];
	handler = argc > 2 ? argv[2] : 0;
	agent_serve(5005);
	return 1;	/* agent_serve returns only when it could not start */
}
