/*
 * Stand-in for the VMM in the jailer tests (built with gcc -static: the jail holds no libc).
 * Writes what it sees to ./report.txt (atomically, via rename), then, with --hold, waits until ./exit exists
 * (up to 60 s) so the test can look at it from the host through /proc/<pid>.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void walk(FILE *f, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", e->d_name);
        struct stat st;
        if (lstat(p, &st)) continue;
        char t = S_ISDIR(st.st_mode) ? 'd' : S_ISCHR(st.st_mode) ? 'c' : S_ISREG(st.st_mode) ? 'f' : '?';
        fprintf(f, "entry=%c %s %o %u %u %u %u\n", t, p, st.st_mode & 07777, st.st_uid, st.st_gid,
                major(st.st_rdev), minor(st.st_rdev));
        if (t == 'd') walk(f, p);
    }
    closedir(d);
}

int main(int argc, char **argv) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long mono_us = (unsigned long long)ts.tv_sec * 1000000ULL + ts.tv_nsec / 1000;

    int hold = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--hold")) hold = 1;

    FILE *f = fopen("report.tmp", "w");
    if (!f) return 2;
    fprintf(f, "mono_us=%llu\n", mono_us);
    fprintf(f, "pid=%d\nppid=%d\nsid=%d\npgid=%d\n", getpid(), getppid(), getsid(0), getpgid(0));
    fprintf(f, "uid=%u\neuid=%u\ngid=%u\negid=%u\n", getuid(), geteuid(), getgid(), getegid());
    gid_t groups[64];
    int ng = getgroups(64, groups);
    fprintf(f, "ngroups=%d\n", ng);
    char cwd[4096];
    fprintf(f, "cwd=%s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    for (int i = 0; i < argc; i++) fprintf(f, "arg=%s\n", argv[i]);
    int envc = 0;
    for (char **e = environ; e && *e; e++) envc++;
    fprintf(f, "envc=%d\n", envc);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    fprintf(f, "nofile=%llu %llu\n", (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
    getrlimit(RLIMIT_FSIZE, &rl);
    fprintf(f, "fsize=%llu %llu\n", (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0 && fd != fileno(f)) fprintf(f, "fd=%d\n", fd);
    struct stat st;
    if (fstat(0, &st) == 0)
        fprintf(f, "stdin=%s %u:%u\n", S_ISCHR(st.st_mode) ? "chr" : "other", major(st.st_rdev), minor(st.st_rdev));
    struct sigaction sa;
    sigaction(SIGPIPE, NULL, &sa);
    fprintf(f, "sigpipe=%s\n", sa.sa_handler == SIG_DFL ? "default" : sa.sa_handler == SIG_IGN ? "ignored" : "handled");
    sigset_t mask;
    sigprocmask(SIG_SETMASK, NULL, &mask);
    fprintf(f, "sigmask_empty=%d\n", sigisemptyset(&mask));

    /* With an fsize limit below 1 MiB, writing 1 MiB must fail with EFBIG. */
    signal(SIGXFSZ, SIG_IGN);
    int big = open("fsize.probe", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (big >= 0) {
        static char buf[1 << 16];
        const char *res = "ok";
        for (int i = 0; i < 16; i++) {
            ssize_t n = write(big, buf, sizeof buf);
            if (n < 0) { res = errno == EFBIG ? "EFBIG" : "error"; break; }
        }
        fprintf(f, "fsize_probe=%s\n", res);
        close(big);
        unlink("fsize.probe");
    }
    walk(f, "/");
    fprintf(f, "end=1\n");
    fclose(f);
    rename("report.tmp", "report.txt");

    if (hold) {
        for (int i = 0; i < 6000; i++) {
            if (access("exit", F_OK) == 0) break;
            usleep(10000);
        }
    }
    return 0;
}
