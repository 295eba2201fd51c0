// API round trip on one keep-alive connection, as a client sees it.
//
//   cc -O2 -o api-rtt bench/api-rtt.c
//   ./api-rtt SOCKET [N] [get|put|version|mc|bad]
//
// Sends WARMUP requests, then N more, one at a time (each waits for its whole answer), and prints the median, the
// 10th and 90th percentile and the mean of the N round trips, in microseconds, each timed from the write to the last
// byte of the answer (CLOCK_MONOTONIC). `get` is `GET /`, `put` a pre-boot `PUT /machine-config` (204), `version`
// `GET /version`, `mc` `GET /machine-config`, `bad` a
// `GET` of an unknown path (400, answered by the API thread without the VMM thread: the hand-off's cost is the
// difference). A benchmark, not a test: it asserts only that every answer has the
// expected status line. C, so that the client's own cost is a write, a read and two clock reads per request.
#define _GNU_SOURCE // strcasestr
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 200

static const char GET_ROOT[] = "GET / HTTP/1.1\r\nAccept: application/json\r\n\r\n";
static const char GET_VERSION[] = "GET /version HTTP/1.1\r\nAccept: application/json\r\n\r\n";
static const char GET_MC[] = "GET /machine-config HTTP/1.1\r\nAccept: application/json\r\n\r\n";
static const char GET_BAD[] = "GET /no-such-path HTTP/1.1\r\nAccept: application/json\r\n\r\n";
static const char PUT_MC[] =
    "PUT /machine-config HTTP/1.1\r\nAccept: application/json\r\nContent-Type: application/json\r\n"
    "Content-Length: 38\r\n\r\n{\"vcpu_count\": 2, \"mem_size_mib\": 256}";

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// Reads one whole answer (head, then Content-Length bytes of body); returns its status or -1.
static int read_answer(int fd) {
    static char buf[65536];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0) return -1;
        have += (size_t)n;
        buf[have] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        if (!end) continue;
        size_t head = (size_t)(end - buf) + 4, body = 0;
        char *cl = strcasestr(buf, "Content-Length:");
        if (cl && cl < end) body = strtoul(cl + 15, NULL, 10);
        if (have < head + body) continue;
        if (have != head + body) return -1; // one request in flight: nothing may follow the answer
        return atoi(buf + 9);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SOCKET [N] [get|put|version|mc|bad]\n", argv[0]);
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 5000;
    const char *kind = argc > 3 ? argv[3] : "get";
    const char *req = GET_ROOT;
    int want = 200;
    if (!strcmp(kind, "put")) req = PUT_MC, want = 204;
    else if (!strcmp(kind, "version")) req = GET_VERSION;
    else if (!strcmp(kind, "mc")) req = GET_MC;
    else if (!strcmp(kind, "bad")) req = GET_BAD, want = 400;
    size_t len = strlen(req);

    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }

    double *t = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < WARMUP + n; i++) {
        double t0 = now_us();
        if (write(fd, req, len) != (ssize_t)len) { perror("write"); return 1; }
        int st = read_answer(fd);
        double dt = now_us() - t0;
        if (st != want) { fprintf(stderr, "request %d: status %d, expected %d\n", i, st, want); return 1; }
        if (i >= WARMUP) t[i - WARMUP] = dt;
    }
    double sum = 0;
    for (int i = 0; i < n; i++) sum += t[i];
    qsort(t, (size_t)n, sizeof(double), cmp);
    printf("%s n=%d median_us=%.1f p10_us=%.1f p90_us=%.1f mean_us=%.1f\n", kind, n, t[n / 2], t[n / 10],
           t[n * 9 / 10], sum / n);
    return 0;
}
