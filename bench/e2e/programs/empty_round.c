/* The cost of a waiting round that finds nothing (issue 6), on a connected device with nothing arriving:
 * 1. a call: recv(MSG_DONTWAIT) on an empty UDP socket of the stack, N times (shim, layer, lock, one poll);
 * 2. a spin round: a blocking recv with SO_RCVTIMEO of T ms that spins all along (run with
 *    GAZELLE_SPIN_US=-1), divided by the polls it made (posix.polls of gazelle_stats, docs/stats.md).
 * Prints nanoseconds of each, best of R runs (short runs: on a loaded machine most of a long one is
 * other threads' time).
 *   empty_round ADDR PORT [N] [R] [T]      (run preloaded, with GAZELLE_CONF) */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static long polls(void)
{
    static long (*stats)(char *, size_t);
    static char buf[65536];
    if (stats == NULL)
        stats = (long (*)(char *, size_t))dlsym(RTLD_DEFAULT, "gazelle_stats");
    if (stats == NULL || stats(buf, sizeof buf) < 0)
        return -1;
    char *p = strstr(buf, "posix.polls ");
    return p ? atol(p + 12) : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ADDR PORT [N] [R] [T]\n", argv[0]);
        return 2;
    }
    long n = argc > 3 ? atol(argv[3]) : 20000;
    int runs = argc > 4 ? atoi(argv[4]) : 200;
    int ms = argc > 5 ? atoi(argv[5]) : 5;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("socket/bind");
        return 1;
    }
    char buf[64];
    double best = 1e30;
    for (int r = 0; r < runs; r++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++)
            if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0) {
                fprintf(stderr, "unexpected datagram\n");
                return 1;
            }
        double per = (now_ns() - t0) / n;
        if (per < best) best = per;
    }
    printf("call (recv MSG_DONTWAIT, UDP): %.1f ns, best of %d x %ld\n", best, runs, n);
    struct timeval tv = { .tv_sec = 0, .tv_usec = ms * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    best = 1e30;
    for (int r = 0; r < runs / 10 + 1; r++) {
        long p0 = polls();
        double t0 = now_ns();
        long got = recv(fd, buf, sizeof buf, 0);
        double t = now_ns() - t0;
        long p1 = polls();
        if (got >= 0 || errno != EAGAIN || p0 < 0 || p1 <= p0 + 1) {
            fprintf(stderr, "spin round: no timeout or no poll count (got %ld, errno %d, polls %ld..%ld)\n", got, errno, p0, p1);
            return 1;
        }
        double per = t / (p1 - p0 - 1); /* gazelle_stats polls once itself */
        if (per < best) best = per;
    }
    printf("spin round (blocking recv, SO_RCVTIMEO %d ms): %.1f ns, best of %d\n", ms, best, runs / 10 + 1);
    return 0;
}
