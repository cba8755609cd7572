// Ping-pong of 64-byte messages over TCP or UDP that splits each round trip: how long send() took (pure CPU:
// the stack transmits inside the call) and the whole round trip, both as percentiles. Run under the preload
// (bench/e2e/pingpong-split.sh): comparing TCP with UDP shows what the TCP send path costs by itself, and
// (half RTT - send) what the receive side adds.
//   pingpong_split server tcp|udp ADDR PORT
//   pingpong_split client tcp|udp ADDR PORT SECONDS
// The server answers until the client closes (TCP) or sends a 1-byte datagram (UDP), then prints its send
// percentiles. A timing tool, not a test.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG 64
#define MAX_SAMPLES 4000000

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, long *v, long n, double scale)
{
    if (n == 0) return;
    qsort(v, n, sizeof *v, cmp_long);
    printf("%s: n %ld, p10 %.3f, p50 %.3f, p90 %.3f, p99 %.3f us\n", what, n, v[n / 10] * scale / 1000.0,
           v[n / 2] * scale / 1000.0, v[n * 9 / 10] * scale / 1000.0, v[n * 99 / 100] * scale / 1000.0);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s server|client tcp|udp ADDR PORT [SECONDS]\n", argv[0]);
        return 2;
    }
    int server = strcmp(argv[1], "server") == 0, tcp = strcmp(argv[2], "tcp") == 0;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[4])) };
    inet_pton(AF_INET, argv[3], &sa.sin_addr);
    int one = 1;
    int s = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    if (s < 0) { perror("socket"); return 1; }
    long *sends = malloc(sizeof(long) * MAX_SAMPLES), *rtts = malloc(sizeof(long) * MAX_SAMPLES), n = 0;
    char buf[2048];
    memset(buf, 7, sizeof buf);
    if (server) {
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("bind"); return 1; }
        int c = s;
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        if (tcp) {
            listen(s, 1);
            c = accept(s, NULL, NULL);
            if (c < 0) { perror("accept"); return 1; }
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        fprintf(stderr, "ready\n");
        for (;;) {
            ssize_t r = tcp ? recv(c, buf, sizeof buf, 0) : recvfrom(c, buf, sizeof buf, 0, (struct sockaddr *)&peer, &plen);
            if (r <= 0 || (!tcp && r == 1)) break;
            long t0 = now_ns();
            ssize_t w = tcp ? send(c, buf, r, MSG_NOSIGNAL) : sendto(c, buf, r, 0, (struct sockaddr *)&peer, plen);
            long t1 = now_ns();
            if (w != r) { perror("send"); return 1; }
            if (n < MAX_SAMPLES) sends[n++] = t1 - t0;
        }
        report("server send", sends, n, 1);
        return 0;
    }
    double secs = argc > 5 ? atof(argv[5]) : 3;
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("connect"); return 1; }
    if (tcp) setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    long end = now_ns() + (long)(secs * 1e9), warm = now_ns() + 200000000L;
    while (1) {
        long t0 = now_ns();
        if (t0 > end) break;
        if (send(s, buf, MSG, MSG_NOSIGNAL) != MSG) { perror("send"); return 1; }
        long t1 = now_ns();
        long got = 0;
        while (got < MSG) {
            ssize_t r = recv(s, buf + got, MSG - got, 0);
            if (r <= 0) { perror("recv"); return 1; }
            got += r;
        }
        long t2 = now_ns();
        if (t0 > warm && n < MAX_SAMPLES) {
            sends[n] = t1 - t0;
            rtts[n++] = t2 - t0;
        }
    }
    if (!tcp) send(s, buf, 1, 0);
    close(s);
    report("client send", sends, n, 1);
    report("half RTT", rtts, n, 0.5);
    return 0;
}
