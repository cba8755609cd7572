/* posix_oracle: exercises the socket calls, options, errno values and readiness semantics that
 * issue 4 lists, printing one deterministic line per check (no fd numbers, ports or timings).
 * Run it once on the kernel and once preloaded: the two outputs must be identical (the kernel is
 * the oracle).   usage: posix_oracle [ADDR]   ADDR: where clients connect (default 127.0.0.1);
 * servers listen on INADDR_ANY, so with a stack configured for ADDR the same program runs over it. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static struct in_addr target;
static volatile sig_atomic_t sigpipes, alarms;

/* Prints "label: value" for a result >= 0, else "label: -1 ENAME". */
static void show(const char *label, long r)
{
    if (r >= 0) printf("%-44s %ld\n", label, r);
    else printf("%-44s -1 %s\n", label, strerrorname_np(errno));
}

/* Prints "ok" for a result >= 0 (whose value is not deterministic: fds, ports, sizes), else the errno. */
static long ok(const char *label, long r)
{
    if (r >= 0) printf("%-44s ok\n", label);
    else printf("%-44s -1 %s\n", label, strerrorname_np(errno));
    return r;
}

static void flag(const char *label, int cond) { printf("%-44s %s\n", label, cond ? "yes" : "no"); }

static struct sockaddr_in sin_of(struct in_addr a, int port)
{
    struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = a };
    return s;
}

static int port_of(int fd)
{
    struct sockaddr_in s;
    socklen_t len = sizeof s;
    if (getsockname(fd, (struct sockaddr *)&s, &len) < 0) return -1;
    return ntohs(s.sin_port);
}

/* A TCP listener on INADDR_ANY:ephemeral. */
static int listener(int type_flags)
{
    int l = socket(AF_INET, SOCK_STREAM | type_flags, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in any = sin_of((struct in_addr){ htonl(INADDR_ANY) }, 0);
    if (bind(l, (struct sockaddr *)&any, sizeof any) < 0 || listen(l, 16) < 0) { perror("listener"); exit(2); }
    return l;
}

static int connect_to(int port, int type_flags)
{
    int c = socket(AF_INET, SOCK_STREAM | type_flags, 0);
    struct sockaddr_in to = sin_of(target, port);
    int r = connect(c, (struct sockaddr *)&to, sizeof to);
    if (r < 0 && errno != EINPROGRESS) { perror("connect"); exit(2); }
    return c;
}

/* A connected pair: *c the client, *s the accepted server side. */
static void pair(int l, int *c, int *s)
{
    *c = connect_to(port_of(l), 0);
    *s = accept(l, NULL, NULL);
    if (*s < 0) { perror("accept"); exit(2); }
}

static int wait_readable(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, ms);
}

static int unused_port(void)
{
    int l = listener(0);
    int p = port_of(l);
    close(l);
    return p;
}

static void on_sigpipe(int s) { (void)s; sigpipes++; }
static void on_alarm(int s) { (void)s; alarms++; }

static void section(const char *name) { printf("== %s\n", name); }

static void test_socket_basics(void)
{
    section("socket");
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ok("socket(AF_INET, STREAM|NONBLOCK|CLOEXEC)", fd);
    flag("F_GETFL has O_NONBLOCK", fcntl(fd, F_GETFL) & O_NONBLOCK);
    show("F_GETFD", fcntl(fd, F_GETFD));
    int v = -1;
    socklen_t len = sizeof v;
    getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len);
    printf("%-44s %d len %u\n", "SO_TYPE", v, len);
    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len);
    printf("%-44s %d\n", "SO_DOMAIN", v);
    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &len);
    printf("%-44s %d\n", "SO_PROTOCOL", v);
    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len);
    printf("%-44s %d\n", "SO_ACCEPTCONN before listen", v);
    show("socket(AF_INET, bad type)", socket(AF_INET, 77, 0));
    show("socket(12345, STREAM)", socket(12345, SOCK_STREAM, 0));
    show("fcntl F_SETFL 0", fcntl(fd, F_SETFL, 0));
    flag("F_GETFL has O_NONBLOCK after clear", fcntl(fd, F_GETFL) & O_NONBLOCK);
    int on = 1;
    show("ioctl FIONBIO 1", ioctl(fd, FIONBIO, &on));
    flag("F_GETFL has O_NONBLOCK after FIONBIO", fcntl(fd, F_GETFL) & O_NONBLOCK);
    show("F_SETFD 0", fcntl(fd, F_SETFD, 0));
    show("F_GETFD after clear", fcntl(fd, F_GETFD));
    show("close", close(fd));
    show("close again", close(fd));
    char b;
    show("recv on closed fd", recv(fd, &b, 1, 0));
}

static void test_bind(void)
{
    section("bind");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = sin_of((struct in_addr){ htonl(INADDR_ANY) }, 0);
    show("bind short addrlen", bind(fd, (struct sockaddr *)&a, 4));
    struct sockaddr_in bad = a;
    bad.sin_family = AF_INET6;
    show("bind AF_INET6 family", bind(fd, (struct sockaddr *)&bad, sizeof bad));
    show("bind ANY:0", bind(fd, (struct sockaddr *)&a, sizeof a));
    show("bind again", bind(fd, (struct sockaddr *)&a, sizeof a));
    struct sockaddr_in got;
    socklen_t len = sizeof got;
    show("getsockname", getsockname(fd, (struct sockaddr *)&got, &len));
    printf("%-44s family %d len %u port>0 %d\n", "  name", got.sin_family, len, ntohs(got.sin_port) > 0);
    len = 4;
    show("getsockname short buffer", getsockname(fd, (struct sockaddr *)&got, &len));
    printf("%-44s %u\n", "  len after", len);
    len = sizeof got;
    show("getpeername unconnected", getpeername(fd, (struct sockaddr *)&got, &len));
    show("listen", listen(fd, 4));
    int v = 0;
    socklen_t vl = sizeof v;
    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl);
    printf("%-44s %d\n", "SO_ACCEPTCONN after listen", v);
    int fd2 = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in same = sin_of((struct in_addr){ htonl(INADDR_ANY) }, port_of(fd));
    show("bind in-use port", bind(fd2, (struct sockaddr *)&same, sizeof same));
    int one = 1;
    setsockopt(fd2, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    show("bind in-use port, SO_REUSEPORT on one side", bind(fd2, (struct sockaddr *)&same, sizeof same));
    close(fd2);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    show("accept on O_NONBLOCK listener", accept(fd, NULL, NULL));
    show("accept4 bad flags", accept4(fd, NULL, NULL, 0x1));
    close(fd);
    int nl = socket(AF_INET, SOCK_STREAM, 0);
    show("accept on non-listening", accept(nl, NULL, NULL));
    show("listen on UDP", listen(socket(AF_INET, SOCK_DGRAM, 0), 1)); /* fd leak on purpose: small */
    close(nl);
}

static void test_connect(void)
{
    section("connect");
    int dead = unused_port();
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = sin_of(target, dead);
    show("blocking connect to closed port", connect(c, (struct sockaddr *)&to, sizeof to));
    close(c);
    c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(c, (struct sockaddr *)&to, sizeof to);
    printf("%-44s %s\n", "nonblocking connect to closed port", r == 0 ? "0" : strerrorname_np(errno));
    struct pollfd p = { .fd = c, .events = POLLOUT };
    poll(&p, 1, 2000);
    printf("%-44s out %d err %d hup %d\n", "  poll", !!(p.revents & POLLOUT), !!(p.revents & POLLERR), !!(p.revents & POLLHUP));
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len);
    printf("%-44s %s\n", "  SO_ERROR", err ? strerrorname_np(err) : "0");
    getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len);
    printf("%-44s %s\n", "  SO_ERROR read again", err ? strerrorname_np(err) : "0");
    close(c);

    int l = listener(0);
    c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    to = sin_of(target, port_of(l));
    r = connect(c, (struct sockaddr *)&to, sizeof to);
    printf("%-44s %s\n", "nonblocking connect to listener", r == 0 || errno == EINPROGRESS ? "0 or EINPROGRESS" : strerrorname_np(errno));
    p.fd = c;
    p.revents = 0;
    poll(&p, 1, 2000);
    printf("%-44s out %d err %d\n", "  poll", !!(p.revents & POLLOUT), !!(p.revents & POLLERR));
    getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len);
    printf("%-44s %s\n", "  SO_ERROR", err ? strerrorname_np(err) : "0");
    show("connect again", connect(c, (struct sockaddr *)&to, sizeof to));
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    show("getpeername", getpeername(c, (struct sockaddr *)&peer, &pl));
    printf("%-44s %d\n", "  peer port matches", ntohs(peer.sin_port) == port_of(l));
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    int s = accept(l, (struct sockaddr *)&from, &fl);
    ok("accept", s);
    printf("%-44s family %d len %u\n", "  accepted peer", from.sin_family, fl);
    show("connect on listener", connect(l, (struct sockaddr *)&to, sizeof to));
    show("connect short addrlen", connect(socket(AF_INET, SOCK_STREAM, 0), (struct sockaddr *)&to, 3));
    close(c);
    close(s);
    close(l);

    int u = socket(AF_INET, SOCK_STREAM, 0);
    char b = 'x';
    show("send on unconnected TCP (MSG_NOSIGNAL)", send(u, &b, 1, MSG_NOSIGNAL));
    show("recv on unconnected TCP", recv(u, &b, 1, 0));
    show("shutdown unconnected", shutdown(u, SHUT_RDWR));
    close(u);
}

static void test_data(void)
{
    section("data");
    int l = listener(0), c, s;
    pair(l, &c, &s);
    char buf[64];
    show("send 5", send(c, "hello", 5, 0));
    wait_readable(s, 2000);
    int avail = -1;
    ioctl(s, FIONREAD, &avail);
    printf("%-44s %d\n", "FIONREAD", avail);
    show("recv MSG_PEEK 3", recv(s, buf, 3, MSG_PEEK));
    show("recv 64", recv(s, buf, sizeof buf, 0));
    printf("%-44s %.5s\n", "  data", buf);
    show("recv MSG_DONTWAIT empty", recv(s, buf, sizeof buf, MSG_DONTWAIT));
    struct iovec wv[3] = { { "ab", 2 }, { "", 0 }, { "cdef", 4 } };
    show("writev 2+0+4", writev(c, wv, 3));
    char x[3], y[8];
    struct iovec rv[2] = { { x, 3 }, { y, 8 } };
    wait_readable(s, 2000);
    show("recv MSG_WAITALL 6", recv(s, buf, 6, MSG_WAITALL));
    show("write 4", write(c, "wxyz", 4));
    wait_readable(s, 2000);
    show("readv 3+8", readv(s, rv, 2));
    printf("%-44s %.3s|%.1s\n", "  data", x, y);
    struct msghdr m = { .msg_iov = wv, .msg_iovlen = 3 };
    show("sendmsg", sendmsg(c, &m, 0));
    struct msghdr rm = { .msg_iov = rv, .msg_iovlen = 2 };
    wait_readable(s, 2000);
    show("recvmsg", recvmsg(s, &rm, 0));
    printf("%-44s flags %d namelen %u controllen %zu\n", "  msghdr", rm.msg_flags, rm.msg_namelen, rm.msg_controllen);
    volatile int bad_count = -1;
    show("writev bad count", writev(c, wv, bad_count));
    show("send 0 bytes", send(c, "", 0, 0));
    struct timeval tv = { 0, 30000 };
    show("SO_RCVTIMEO 30ms", setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    struct timeval tg;
    socklen_t tl = sizeof tg;
    getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tg, &tl);
    printf("%-44s %ld.%06ld len %u\n", "  read back", (long)tg.tv_sec, (long)tg.tv_usec, tl);
    show("blocking recv times out", recv(s, buf, sizeof buf, 0));
    show("SO_RCVTIMEO short optlen", setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, 4));
    tv.tv_usec = 2000000;
    show("SO_RCVTIMEO usec out of range", setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    show("shutdown bad how", shutdown(c, 7));
    show("shutdown SHUT_WR", shutdown(c, SHUT_WR));
    wait_readable(s, 2000);
    show("recv after peer SHUT_WR", recv(s, buf, sizeof buf, 0));
    show("send after own SHUT_WR (NOSIGNAL)", send(c, "z", 1, MSG_NOSIGNAL));
    show("reply after SHUT_WR", send(s, "ok", 2, 0));
    wait_readable(c, 2000);
    show("recv reply", recv(c, buf, sizeof buf, 0));
    close(c);
    close(s);

    /* EPIPE with and without SIGPIPE; ECONNRESET after an RST (SO_LINGER 0). */
    pair(l, &c, &s);
    close(s);
    int r, tries = 0;
    do { r = send(c, "p", 1, MSG_NOSIGNAL); usleep(2000); } while (r >= 0 && ++tries < 500);
    show("send to closed peer, MSG_NOSIGNAL", r);
    printf("%-44s %d\n", "  SIGPIPE count", (int)sigpipes);
    show("send again without MSG_NOSIGNAL", send(c, "p", 1, 0));
    printf("%-44s %d\n", "  SIGPIPE count", (int)sigpipes);
    close(c);
    pair(l, &c, &s);
    struct linger lg = { 1, 0 };
    show("SO_LINGER {1,0}", setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    close(s);
    wait_readable(c, 2000);
    show("recv after RST", recv(c, buf, sizeof buf, 0));
    show("recv after RST again", recv(c, buf, sizeof buf, 0));
    close(c);

    /* sendfile: a file to a socket, with and without an offset. */
    pair(l, &c, &s);
    char path[] = "/tmp/gz-oracle-XXXXXX";
    int f = mkstemp(path);
    write(f, "0123456789", 10);
    off_t off = 2;
    show("sendfile offset 2 count 5", sendfile(c, f, &off, 5));
    printf("%-44s %ld\n", "  offset after", (long)off);
    lseek(f, 7, SEEK_SET);
    show("sendfile from file position", sendfile(c, f, NULL, 100));
    show("  file position after", lseek(f, 0, SEEK_CUR));
    wait_readable(s, 2000);
    usleep(20000);
    r = recv(s, buf, sizeof buf, 0);
    printf("%-44s %.*s\n", "  received", r > 0 ? r : 0, buf);
    close(f);
    unlink(path);
    close(c);
    close(s);
    close(l);
}

static void test_options(void)
{
    section("options");
    int l = listener(0), c, s;
    pair(l, &c, &s);
    struct { const char *name; int level, opt, value; } ints[] = {
        { "SO_REUSEADDR", SOL_SOCKET, SO_REUSEADDR, 1 }, { "SO_REUSEPORT", SOL_SOCKET, SO_REUSEPORT, 1 },
        { "SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE, 1 }, { "TCP_NODELAY", IPPROTO_TCP, TCP_NODELAY, 1 },
        { "TCP_KEEPIDLE", IPPROTO_TCP, TCP_KEEPIDLE, 30 }, { "TCP_KEEPINTVL", IPPROTO_TCP, TCP_KEEPINTVL, 5 },
        { "TCP_KEEPCNT", IPPROTO_TCP, TCP_KEEPCNT, 4 }, { "IP_TOS", IPPROTO_IP, IP_TOS, 0x10 },
        { "SO_RCVBUF", SOL_SOCKET, SO_RCVBUF, 65536 }, { "SO_SNDBUF", SOL_SOCKET, SO_SNDBUF, 65536 },
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int v = ints[i].value, got = -1;
        socklen_t len = sizeof got;
        int r1 = setsockopt(c, ints[i].level, ints[i].opt, &v, sizeof v);
        int r2 = getsockopt(c, ints[i].level, ints[i].opt, &got, &len);
        printf("%-44s set %d get %d -> %d\n", ints[i].name, r1, r2, got);
    }
    /* Linux doubles what is set (bookkeeping overhead), clamps it to net.core.[rw]mem_max, floors it. */
    struct { const char *name; int fd, opt, value; } bufs[] = {
        { "SO_RCVBUF 1", c, SO_RCVBUF, 1 }, { "SO_SNDBUF 1", c, SO_SNDBUF, 1 },
        { "SO_RCVBUF -5 (huge)", c, SO_RCVBUF, -5 }, { "SO_SNDBUF -5 (huge)", c, SO_SNDBUF, -5 },
        { "SO_RCVBUF 300000 on the accepted side", s, SO_RCVBUF, 300000 }, { "SO_SNDBUF 12345 on the accepted side", s, SO_SNDBUF, 12345 },
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        int v = bufs[i].value, got = -1;
        socklen_t len = sizeof got;
        int r1 = setsockopt(bufs[i].fd, SOL_SOCKET, bufs[i].opt, &v, sizeof v);
        int r2 = getsockopt(bufs[i].fd, SOL_SOCKET, bufs[i].opt, &got, &len);
        printf("%-44s set %d get %d -> %d\n", bufs[i].name, r1, r2, got);
    }
    /* The buffers still carry data both ways after the changes. */
    static char blob[200000];
    for (size_t i = 0; i < sizeof blob; i++) blob[i] = (char)(i * 7);
    long moved = 0, r;
    fcntl(c, F_SETFL, O_NONBLOCK);
    int same = 1;
    static char back[sizeof blob];
    while (moved < (long)sizeof blob) {
        long sent = send(c, blob + moved, sizeof blob - moved, 0);
        if (sent < 0 && errno != EAGAIN) break;
        if (sent > 0) {
            for (long got = 0; got < sent && (r = recv(s, back + moved + got, sent - got, 0)) > 0; got += r) {}
            moved += sent;
        } else wait_readable(s, 100);
    }
    same = moved == (long)sizeof blob && memcmp(blob, back, sizeof blob) == 0;
    fcntl(c, F_SETFL, 0);
    flag("200000 bytes through the resized buffers", same);
    int v = 1;
    show("setsockopt short optlen", setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &v, 2));
    show("setsockopt unknown option", setsockopt(c, SOL_SOCKET, 12345, &v, sizeof v));
    show("setsockopt unknown level", setsockopt(c, 4242, 1, &v, sizeof v));
    socklen_t len = sizeof v;
    show("getsockopt unknown TCP option", getsockopt(c, IPPROTO_TCP, 9999, &v, &len));
    struct linger lg = { 1, 5 }, lgot;
    len = sizeof lgot;
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    getsockopt(c, SOL_SOCKET, SO_LINGER, &lgot, &len);
    printf("%-44s onoff %d linger %d len %u\n", "SO_LINGER", lgot.l_onoff, lgot.l_linger, len);
    int mss = 0;
    len = sizeof mss;
    ok("TCP_MAXSEG get", getsockopt(c, IPPROTO_TCP, TCP_MAXSEG, &mss, &len));
    flag("  > 0", mss > 0);
    struct tcp_info ti;
    len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    show("TCP_INFO", getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &len));
    printf("%-44s state %d len-ok %d\n", "  tcpi", ti.tcpi_state, len >= 104);
    /* Values differ per stack; their meaning must not. c sent 200000 bytes to s above. Read at the
     * offsets of Linux's struct tcp_info (include/uapi/linux/tcp.h; glibc's copy stops early). */
    unsigned char tc[236], ts[236];
    memset(tc, 0, sizeof tc);
    memset(ts, 0, sizeof ts);
    len = sizeof tc;
    getsockopt(c, IPPROTO_TCP, TCP_INFO, tc, &len);
    socklen_t lens = sizeof ts;
    getsockopt(s, IPPROTO_TCP, TCP_INFO, ts, &lens);
#define TI32(b, off) ({ uint32_t v_; memcpy(&v_, (b) + (off), 4); v_; })
#define TI64(b, off) ({ uint64_t v_; memcpy(&v_, (b) + (off), 8); v_; })
    flag("  tcpi len covers rcv_wnd", len == sizeof tc && lens == sizeof ts);
    flag("  snd_mss, rcv_mss, advmss set", TI32(tc, 16) > 0 && TI32(tc, 20) > 0 && TI32(tc, 84) > 0);
    flag("  options: SACK and window scaling", (tc[5] & 6) == 6);
    flag("  0 < min_rtt <= rtt < rto, rto >= 200 ms", TI32(tc, 148) > 0 && TI32(tc, 148) <= TI32(tc, 68)
         && TI32(tc, 68) < TI32(tc, 8) && TI32(tc, 8) >= 200000);
    flag("  snd_cwnd >= 1, reordering >= 3", TI32(tc, 80) >= 1 && TI32(tc, 88) >= 3);
    flag("  sender: bytes_sent >= 200000", TI64(tc, 200) >= 200000);
    flag("  receiver: bytes_received >= 200000", TI64(ts, 128) >= 200000);
    flag("  segs_out >= data_segs_out > 0", TI32(tc, 136) >= TI32(tc, 156) && TI32(tc, 156) > 0);
    flag("  receiver: segs_in >= data_segs_in > 0", TI32(ts, 140) >= TI32(ts, 152) && TI32(ts, 152) > 0);
    flag("  receiver got data within 10 s", TI32(ts, 52) < 10000);
    flag("  no max pacing rate", TI64(tc, 112) == ~0ULL);
    flag("  snd_wnd and rcv_wnd > 0", TI32(tc, 228) > 0 && TI32(tc, 232) > 0);
    flag("  ca_state Open, nothing lost", tc[1] == 0 && TI32(tc, 32) == 0);
    int err = -1;
    len = sizeof err;
    getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len);
    printf("%-44s %d\n", "SO_ERROR on healthy connection", err);
    close(c);
    close(s);
    close(l);
}

static void test_epoll(void)
{
    section("epoll");
    int l = listener(0), c, s;
    pair(l, &c, &s);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int pfd[2];
    pipe(pfd);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 }, out[8];
    show("epoll_ctl ADD stack-side socket", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
    show("epoll_ctl ADD again", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
    ev.data.u64 = 2;
    show("epoll_ctl ADD pipe", epoll_ctl(ep, EPOLL_CTL_ADD, pfd[0], &ev));
    show("epoll_ctl MOD not added", epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev));
    show("epoll_ctl DEL not added", epoll_ctl(ep, EPOLL_CTL_DEL, c, &ev));
    show("epoll_ctl on itself", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
    show("epoll_ctl bad fd", epoll_ctl(ep, EPOLL_CTL_ADD, 9999, &ev));
    show("epoll_ctl bad op", epoll_ctl(ep, 77, s, &ev));
    show("epoll_ctl epfd is a socket", epoll_ctl(c, EPOLL_CTL_ADD, s, &ev));
    show("epoll_wait nothing, 20ms", epoll_wait(ep, out, 8, 20));
    show("epoll_wait maxevents 0", epoll_wait(ep, out, 0, 0));
    write(pfd[1], "x", 1);
    send(c, "y", 1, 0);
    usleep(20000);
    /* Linux reports both at once; the preload asks the kernel about the pipe every few calls while the stack
     * socket is ready (PosixLayer.KernelCheckEvery, 8), then at every call while the pipe stays ready. */
    int n, calls = 0;
    do n = epoll_wait(ep, out, 8, 1000);
    while (++calls < 8 && n != 2);
    unsigned long seen = 0;
    for (int i = 0; i < n; i++) seen |= out[i].data.u64 << 4 | out[i].events;
    show("epoll_wait socket + pipe, within 8 calls", n);
    printf("%-44s %d\n", "  both reported", n == 2 && (out[0].data.u64 + out[1].data.u64) == 3);
    show("epoll_wait level-triggered again", epoll_wait(ep, out, 8, 0));
    epoll_ctl(ep, EPOLL_CTL_DEL, pfd[0], NULL);
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = 1;
    show("epoll_ctl MOD to EPOLLET", epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev));
    show("epoll_wait ET first", epoll_wait(ep, out, 8, 0));
    show("epoll_wait ET no new edge", epoll_wait(ep, out, 8, 0));
    char buf[16];
    recv(s, buf, sizeof buf, 0);
    show("drain to EAGAIN", recv(s, buf, sizeof buf, MSG_DONTWAIT));
    send(c, "z", 1, 0);
    show("epoll_wait ET new data", epoll_wait(ep, out, 8, 1000));
    ev.events = EPOLLIN | EPOLLONESHOT;
    epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
    show("epoll_wait ONESHOT", epoll_wait(ep, out, 8, 1000));
    show("epoll_wait ONESHOT disarmed", epoll_wait(ep, out, 8, 10));
    epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
    show("epoll_wait ONESHOT re-armed", epoll_wait(ep, out, 8, 1000));
    recv(s, buf, sizeof buf, 0);
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
    n = epoll_wait(ep, out, 8, 1000);
    printf("%-44s n %d in %d out %d rdhup %d\n", "epoll_wait writable", n, !!(out[0].events & EPOLLIN), !!(out[0].events & EPOLLOUT), !!(out[0].events & EPOLLRDHUP));
    shutdown(c, SHUT_WR);
    usleep(20000);
    n = epoll_wait(ep, out, 8, 1000);
    printf("%-44s n %d in %d rdhup %d hup %d\n", "epoll_wait after peer SHUT_WR", n, !!(out[0].events & EPOLLIN), !!(out[0].events & EPOLLRDHUP), !!(out[0].events & EPOLLHUP));
    struct linger lg = { 1, 0 };
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c);
    usleep(20000);
    n = epoll_wait(ep, out, 8, 1000);
    printf("%-44s n %d err %d hup %d\n", "epoll_wait after peer RST", n, !!(out[0].events & EPOLLERR), !!(out[0].events & EPOLLHUP));
    close(s);
    show("epoll_wait after the socket closed", epoll_wait(ep, out, 8, 0));
    /* A listener: readable when a connection is queued. */
    ev.events = EPOLLIN;
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    show("epoll_wait listener idle", epoll_wait(ep, out, 8, 0));
    c = connect_to(port_of(l), 0);
    show("epoll_wait listener with a connection", epoll_wait(ep, out, 8, 1000));
    s = accept(l, NULL, NULL);
    close(s);
    close(c);
    close(ep);
    close(pfd[0]);
    close(pfd[1]);
    close(l);
    (void)seen;
}

/* Edge-triggered epoll as Linux defines it: an edge is an ARRIVAL (data, a FIN, a queued
 * connection, send space after the socket ran out of it), reported with the socket's whole
 * readiness at that moment; consuming never makes an edge, and a second arrival makes a second one
 * even when the first was not consumed. */
static void test_epoll_edges(void)
{
    section("epoll edges");
    int l = listener(0), c, s, n;
    pair(l, &c, &s);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = 1 }, out[8];
    char buf[64];
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    show("ET idle", epoll_wait(ep, out, 8, 0));
    send(c, "a", 1, 0);
    show("ET first arrival", epoll_wait(ep, out, 8, 1000));
    show("ET nothing new", epoll_wait(ep, out, 8, 0));
    send(c, "b", 1, 0);
    show("ET second arrival, first unread", epoll_wait(ep, out, 8, 1000));
    show("recv 1 of 2", recv(s, buf, 1, 0));
    show("ET after a partial read", epoll_wait(ep, out, 8, 20));
    show("recv the rest", recv(s, buf, sizeof buf, 0));
    show("ET after draining", epoll_wait(ep, out, 8, 0));

    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
    n = epoll_wait(ep, out, 8, 0);
    printf("%-44s n %d in %d out %d\n", "ET IN|OUT after MOD", n, n > 0 && (out[0].events & EPOLLIN), n > 0 && !!(out[0].events & EPOLLOUT));
    show("ET IN|OUT nothing new", epoll_wait(ep, out, 8, 0));
    show("send from the watched socket", send(s, "r", 1, 0));
    wait_readable(c, 1000);
    recv(c, buf, sizeof buf, 0);
    show("ET IN|OUT after own send acknowledged", epoll_wait(ep, out, 8, 20));
    send(c, "d", 1, 0);
    n = epoll_wait(ep, out, 8, 1000);
    printf("%-44s n %d in %d out %d\n", "ET IN|OUT on arrival", n, n > 0 && (out[0].events & EPOLLIN), n > 0 && !!(out[0].events & EPOLLOUT));
    recv(s, buf, sizeof buf, 0);

    /* Send space: an edge once the socket had run out of it and the peer's reading freed some. */
    ev.events = EPOLLOUT | EPOLLET;
    epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
    show("ET OUT after MOD", epoll_wait(ep, out, 8, 0));
    fcntl(s, F_SETFL, O_NONBLOCK);
    static char big[65536];
    long total = 0, r;
    int quiet = 0;
    for (int round = 0; round < 200 && !quiet; round++) {
        while ((r = send(s, big, sizeof big, 0)) > 0) total += r;
        if (r < 0 && errno != EAGAIN) break;
        quiet = epoll_wait(ep, out, 8, 50) == 0; /* full and staying full */
    }
    flag("send buffer filled", quiet);
    show("ET OUT while full", epoll_wait(ep, out, 8, 0));
    long got = 0;
    while (got < total && (r = recv(c, big, sizeof big, 0)) > 0) got += r;
    flag("peer read everything", got == total);
    n = epoll_wait(ep, out, 8, 1000);
    printf("%-44s n %d out %d\n", "ET OUT after the peer drained", n, n > 0 && !!(out[0].events & EPOLLOUT));
    show("ET OUT nothing new", epoll_wait(ep, out, 8, 0));
    close(ep);
    close(c);
    close(s);

    /* A listener: each queued connection is an edge. */
    ep = epoll_create1(0);
    ev.events = EPOLLIN | EPOLLET;
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    show("ET listener idle", epoll_wait(ep, out, 8, 0));
    int c1 = connect_to(port_of(l), 0);
    show("ET listener, a connection", epoll_wait(ep, out, 8, 1000));
    int c2 = connect_to(port_of(l), 0);
    show("ET listener, another, none accepted", epoll_wait(ep, out, 8, 1000));
    int a1 = accept(l, NULL, NULL);
    show("ET listener after one accept", epoll_wait(ep, out, 8, 20));
    int a2 = accept(l, NULL, NULL);

    /* A FIN is an edge: readable with RDHUP. */
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    epoll_ctl(ep, EPOLL_CTL_ADD, a1, &ev);
    show("ET accepted socket idle", epoll_wait(ep, out, 8, 0));
    shutdown(c1, SHUT_WR);
    n = epoll_wait(ep, out, 8, 1000);
    printf("%-44s n %d in %d rdhup %d\n", "ET after peer SHUT_WR", n, n > 0 && (out[0].events & EPOLLIN), n > 0 && !!(out[0].events & EPOLLRDHUP));
    show("ET after the FIN, nothing new", epoll_wait(ep, out, 8, 0));
    close(ep);
    close(a1);
    close(a2);
    close(c1);
    close(c2);
    close(l);

    /* UDP: each datagram is an edge. */
    int srv = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in any = sin_of((struct in_addr){ htonl(INADDR_ANY) }, 0);
    bind(srv, (struct sockaddr *)&any, sizeof any);
    int cli = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = sin_of(target, port_of(srv));
    ep = epoll_create1(0);
    ev.events = EPOLLIN | EPOLLET;
    epoll_ctl(ep, EPOLL_CTL_ADD, srv, &ev);
    sendto(cli, "1", 1, 0, (struct sockaddr *)&to, sizeof to);
    show("ET UDP first datagram", epoll_wait(ep, out, 8, 1000));
    sendto(cli, "2", 1, 0, (struct sockaddr *)&to, sizeof to);
    show("ET UDP second datagram, first unread", epoll_wait(ep, out, 8, 1000));
    recv(srv, buf, sizeof buf, 0);
    show("ET UDP after reading one", epoll_wait(ep, out, 8, 20));
    /* Each datagram sent frees its buffer once gone: a write-space edge every time. */
    epoll_ctl(ep, EPOLL_CTL_DEL, srv, NULL);
    ev.events = EPOLLOUT | EPOLLET;
    epoll_ctl(ep, EPOLL_CTL_ADD, cli, &ev);
    show("ET UDP OUT after ADD", epoll_wait(ep, out, 8, 0));
    show("ET UDP OUT nothing new", epoll_wait(ep, out, 8, 0));
    sendto(cli, "3", 1, 0, (struct sockaddr *)&to, sizeof to);
    show("ET UDP OUT after a send", epoll_wait(ep, out, 8, 20));
    close(ep);
    close(cli);
    close(srv);
}

static void test_poll_select(void)
{
    section("poll/select");
    int l = listener(0), c, s;
    pair(l, &c, &s);
    int pfd[2];
    pipe(pfd);
    struct pollfd p[3] = { { s, POLLIN, 0 }, { pfd[0], POLLIN, 0 }, { -1, POLLIN, 0 } };
    show("poll nothing ready, 20ms", poll(p, 3, 20));
    send(c, "a", 1, 0);
    wait_readable(s, 1000);
    show("poll socket ready", poll(p, 3, 0));
    printf("%-44s %d %d %d\n", "  revents", p[0].revents, p[1].revents, p[2].revents);
    write(pfd[1], "b", 1);
    struct timespec ts = { 1, 0 };
    show("ppoll both ready", ppoll(p, 3, &ts, NULL));
    printf("%-44s %d %d %d\n", "  revents", p[0].revents, p[1].revents, p[2].revents);
    struct pollfd w = { c, POLLOUT | POLLWRNORM, 0 };
    show("poll writable", poll(&w, 1, 0));
    printf("%-44s %d\n", "  revents", w.revents);
    struct pollfd bad = { 9999, POLLIN, 0 };
    show("poll closed fd", poll(&bad, 1, 0));
    printf("%-44s %d\n", "  revents", bad.revents);
    fd_set r, wr;
    FD_ZERO(&r);
    FD_ZERO(&wr);
    FD_SET(s, &r);
    FD_SET(pfd[0], &r);
    FD_SET(c, &wr);
    int nfds = (s > pfd[0] ? s : pfd[0]);
    nfds = (nfds > c ? nfds : c) + 1;
    struct timeval tv = { 1, 0 };
    show("select read both + write", select(nfds, &r, &wr, NULL, &tv));
    printf("%-44s %d %d %d\n", "  set", FD_ISSET(s, &r), FD_ISSET(pfd[0], &r), FD_ISSET(c, &wr));
    char buf[8];
    recv(s, buf, sizeof buf, 0);
    read(pfd[0], buf, sizeof buf);
    FD_ZERO(&r);
    FD_SET(s, &r);
    FD_SET(pfd[0], &r);
    struct timespec ts2 = { 0, 20000000 };
    show("pselect nothing ready, 20ms", pselect(nfds, &r, NULL, NULL, &ts2, NULL));
    printf("%-44s %d %d\n", "  set", FD_ISSET(s, &r), FD_ISSET(pfd[0], &r));
    show("select negative nfds", select(-1, NULL, NULL, NULL, &tv));
    close(c);
    close(s);
    close(pfd[0]);
    close(pfd[1]);
    close(l);
}

static void test_dup(void)
{
    section("dup");
    int l = listener(0), c, s;
    pair(l, &c, &s);
    int d = dup(c);
    ok("dup", d);
    int d2 = fcntl(c, F_DUPFD_CLOEXEC, 200);
    flag("F_DUPFD_CLOEXEC >= 200", d2 >= 200);
    show("  F_GETFD", fcntl(d2, F_GETFD));
    int d3 = fcntl(c, F_DUPFD, 300);
    flag("F_DUPFD >= 300", d3 >= 300);
    show("  F_GETFD", fcntl(d3, F_GETFD));
    show("dup3 same fd", dup3(d, d, 0));
    show("dup3 bad flags", dup3(d, 400, 0x1));
    show("dup2 same fd", dup2(d, d) == d ? 0 : -1);
    show("dup2 to 401", dup2(d, 401));
    show("dup3 to 402 O_CLOEXEC", dup3(d, 402, O_CLOEXEC));
    show("  F_GETFD", fcntl(402, F_GETFD));
    show("dup of closed fd", dup(9999));
    fcntl(d, F_SETFL, O_NONBLOCK);
    flag("O_NONBLOCK shared with the dup", fcntl(c, F_GETFL) & O_NONBLOCK);
    fcntl(d, F_SETFL, 0);
    close(c);
    show("send through the dup", send(d, "dup", 3, 0));
    char buf[8];
    wait_readable(s, 1000);
    show("recv", recv(s, buf, sizeof buf, 0));
    close(d);
    close(d2);
    close(d3);
    close(401);
    show("peer still open via 402", send(402, "x", 1, 0));
    int pfd[2];
    pipe(pfd);
    show("dup2 pipe over the last socket fd", dup2(pfd[0], 402));
    wait_readable(s, 1000);
    show("recv after all dups closed", recv(s, buf, sizeof buf, 0) >= 1 ? recv(s, buf, sizeof buf, 0) : -1);
    close(402);
    close(pfd[0]);
    close(pfd[1]);
    close(s);
    close(l);
}

static void test_udp(void)
{
    section("udp");
    int srv = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in any = sin_of((struct in_addr){ htonl(INADDR_ANY) }, 0);
    bind(srv, (struct sockaddr *)&any, sizeof any);
    int port = port_of(srv);
    int cli = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = sin_of(target, port);
    show("send unconnected", send(cli, "x", 1, 0));
    show("sendto", sendto(cli, "hello", 5, 0, (struct sockaddr *)&to, sizeof to));
    char buf[64];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    wait_readable(srv, 1000);
    int avail = -1;
    ioctl(srv, FIONREAD, &avail);
    printf("%-44s %d\n", "FIONREAD", avail);
    show("recvfrom", recvfrom(srv, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl));
    printf("%-44s family %d len %u port-matches %d\n", "  from", from.sin_family, fl, ntohs(from.sin_port) == port_of(cli));
    int ub = 4096, ubgot = -1;
    socklen_t ubl = sizeof ubgot;
    setsockopt(srv, SOL_SOCKET, SO_RCVBUF, &ub, sizeof ub);
    getsockopt(srv, SOL_SOCKET, SO_RCVBUF, &ubgot, &ubl);
    printf("%-44s %d\n", "UDP SO_RCVBUF 4096 reads back", ubgot);
    setsockopt(cli, SOL_SOCKET, SO_SNDBUF, &ub, sizeof ub);
    getsockopt(cli, SOL_SOCKET, SO_SNDBUF, &ubgot, &ubl);
    printf("%-44s %d\n", "UDP SO_SNDBUF 4096 reads back", ubgot);
    show("sendto short addrlen", sendto(cli, "x", 1, 0, (struct sockaddr *)&to, 8));
    show("connect", connect(cli, (struct sockaddr *)&to, sizeof to));
    show("send connected", send(cli, "abc", 3, 0));
    wait_readable(srv, 1000);
    show("recv 2 of 3 (datagram truncated)", recv(srv, buf, 2, 0));
    show("recv MSG_DONTWAIT empty", recv(srv, buf, sizeof buf, MSG_DONTWAIT));
    struct mmsghdr mm[3];
    struct iovec iv[3] = { { "m1", 2 }, { "m22", 3 }, { "m333", 4 } };
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 3; i++) { mm[i].msg_hdr.msg_iov = &iv[i]; mm[i].msg_hdr.msg_iovlen = 1; }
    show("sendmmsg 3", sendmmsg(cli, mm, 3, 0));
    printf("%-44s %u %u %u\n", "  lengths", mm[0].msg_len, mm[1].msg_len, mm[2].msg_len);
    usleep(20000);
    char b[3][8];
    struct iovec rv[3] = { { b[0], 8 }, { b[1], 8 }, { b[2], 8 } };
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 3; i++) { mm[i].msg_hdr.msg_iov = &rv[i]; mm[i].msg_hdr.msg_iovlen = 1; }
    show("recvmmsg up to 3", recvmmsg(srv, mm, 3, MSG_DONTWAIT, NULL));
    printf("%-44s %u %u %u\n", "  lengths", mm[0].msg_len, mm[1].msg_len, mm[2].msg_len);
    /* The timeout is checked after each datagram (Linux do_recvmmsg) and written back as the time left. */
    struct timespec bad = { -1, 0 };
    show("recvmmsg negative timeout", recvmmsg(srv, mm, 3, MSG_DONTWAIT, &bad));
    for (int i = 0; i < 3; i++) { mm[i].msg_hdr.msg_iov = &iv[i]; mm[i].msg_hdr.msg_iovlen = 1; }
    sendmmsg(cli, mm, 3, 0);
    wait_readable(srv, 1000);
    usleep(20000);
    for (int i = 0; i < 3; i++) { mm[i].msg_hdr.msg_iov = &rv[i]; mm[i].msg_hdr.msg_iovlen = 1; }
    struct timespec zero = { 0, 0 };
    show("recvmmsg 3 queued, zero timeout", recvmmsg(srv, mm, 3, 0, &zero));
    printf("%-44s %ld.%09ld\n", "  time left", (long)zero.tv_sec, zero.tv_nsec);
    struct timespec ten = { 10, 0 };
    show("recvmmsg the other 2, 10 s timeout", recvmmsg(srv, mm, 3, MSG_DONTWAIT, &ten));
    flag("  time left below 10 s", ten.tv_sec < 10 && (ten.tv_sec > 0 || ten.tv_nsec > 0));
    struct timeval rto = { 0, 50000 };
    setsockopt(srv, SOL_SOCKET, SO_RCVTIMEO, &rto, sizeof rto);
    sendto(cli, "w1", 2, 0, (struct sockaddr *)&to, sizeof to);
    wait_readable(srv, 1000);
    ten.tv_sec = 10;
    show("recvmmsg blocking, 1 queued, SO_RCVTIMEO", recvmmsg(srv, mm, 3, 0, &ten));
    close(cli);
    close(srv);
}

/* ppoll/pselect/epoll_pwait's signal mask holds for the whole call. The SIGALRM handler writes to a
 * pipe that the call also watches: a handler that ran during the call would make it return 1. */
static int alarm_pipe = -1;
static void on_alarm_write(int sig) { (void)sig; alarms++; if (write(alarm_pipe, "!", 1) < 0) alarms += 100; }

static void test_signal_masks(void)
{
    section("signal masks");
    int l = listener(0), c, s, pfd[2];
    pair(l, &c, &s);
    if (pipe(pfd) < 0) { perror("pipe"); exit(2); }
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    alarm_pipe = pfd[1];
    struct sigaction sa = { .sa_handler = on_alarm_write };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    sigset_t blocks, lets, old;
    sigemptyset(&blocks);
    sigaddset(&blocks, SIGALRM);
    sigemptyset(&lets);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN }, out[4];
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    epoll_ctl(ep, EPOLL_CTL_ADD, pfd[0], &ev);
    char junk[16];
    for (int call = 0; call < 3; call++) {
        static const char *names[] = { "ppoll", "pselect", "epoll_pwait" };
        for (int unblock = 0; unblock < 2; unblock++) {
            /* unblock 0: the thread lets SIGALRM through, the call's mask blocks it (held until return);
             * unblock 1: the thread blocks it, the call's mask lets it through (EINTR). */
            if (unblock) sigprocmask(SIG_BLOCK, &blocks, &old);
            const sigset_t *mask = unblock ? &lets : &blocks;
            int before = alarms;
            struct itimerval it = { { 0, 0 }, { 0, 30000 } };
            setitimer(ITIMER_REAL, &it, NULL);
            struct timespec ts = { 0, 300000000 };
            long r;
            if (call == 0) {
                struct pollfd p[2] = { { s, POLLIN, 0 }, { pfd[0], POLLIN, 0 } };
                r = ppoll(p, 2, &ts, mask);
            } else if (call == 1) {
                fd_set rs;
                FD_ZERO(&rs);
                FD_SET(s, &rs);
                FD_SET(pfd[0], &rs);
                r = pselect((s > pfd[0] ? s : pfd[0]) + 1, &rs, NULL, NULL, &ts, mask);
            } else {
                r = epoll_pwait(ep, out, 4, 300, mask);
            }
            int err = errno;
            if (unblock) sigprocmask(SIG_SETMASK, &old, NULL);
            char label[64];
            snprintf(label, sizeof label, "%s, the call's mask %s", names[call], unblock ? "lets it through" : "blocks it");
            errno = err;
            show(label, r);
            printf("%-44s %d\n", "  handled (by now)", alarms - before);
            while (read(pfd[0], junk, sizeof junk) > 0) {}
        }
    }
    close(ep);
    close(pfd[0]);
    close(pfd[1]);
    close(c);
    close(s);
    close(l);
}

static void test_signals_and_fork(void)
{
    section("signals and fork");
    int l = listener(0), c, s;
    pair(l, &c, &s);
    struct sigaction sa = { .sa_handler = on_alarm };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART */
    struct itimerval it = { { 0, 0 }, { 0, 50000 } };
    setitimer(ITIMER_REAL, &it, NULL);
    char buf[8];
    show("blocking recv interrupted by a signal", recv(s, buf, sizeof buf, 0));
    printf("%-44s %d\n", "  alarms", (int)alarms);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child closes its inherited copies and opens a fresh loopback pair (the kernel's in
         * every mode: a forked child never reaches the parent's stack): clean, no hang. */
        close(c);
        close(s);
        inet_pton(AF_INET, "127.0.0.1", &target);
        int l2 = listener(0), c2, s2;
        pair(l2, &c2, &s2);
        int okay = send(c2, "k", 1, 0) == 1 && wait_readable(s2, 1000) == 1 && recv(s2, buf, 1, 0) == 1;
        _exit(okay ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    printf("%-44s exited %d code %d\n", "fork child", WIFEXITED(status), WEXITSTATUS(status));
    show("parent sends after fork", send(c, "after", 5, 0));
    wait_readable(s, 1000);
    show("parent receives after fork", recv(s, buf, sizeof buf, 0));
    close(c);
    close(s);
    close(l);
}

/* epoll_wait over a set with stack sockets asks the kernel about its kernel fds only when the set may hold
 * some: kernel fds added before any socket, through a dup of the epoll fd, or by a fork child that shares the
 * epoll must still be reported together with a ready socket. Linux reports both at the first call; the preload
 * asks the kernel every few calls while the stack has events (PosixLayer.KernelCheckEvery, 8), then at every call
 * once a kernel fd was seen ready. So: the calls reporting both among `rounds` that follow the first call that did,
 * if one of the first 8 did (else 0). */
static int both_reported(int ep, int rounds, int a, int b)
{
    /* Both readable first (a generous bound: the stack's own delivery on a loaded machine). */
    struct pollfd p[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };
    for (int i = 0; i < 100 && poll(p, 2, 100) != 2; i++) {}
    struct epoll_event out[4];
    int first = 0;
    while (first < 8 && epoll_wait(ep, out, 4, 0) != 2) first++;
    if (first == 8) return 0;
    int calls = 0;
    for (int i = 0; i < rounds; i++) calls += epoll_wait(ep, out, 4, 0) == 2;
    return calls;
}

static void test_epoll_kernel_fds(void)
{
    section("epoll sets with kernel fds");
    int p1[2], p2[2];
    if (pipe(p1) < 0 || pipe(p2) < 0) { perror("pipe"); exit(2); }
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN };
    show("ADD a pipe", epoll_ctl(ep, EPOLL_CTL_ADD, p1[0], &ev));
    int l = listener(0), c, s;
    pair(l, &c, &s);
    show("ADD a socket", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
    send(c, "a", 1, 0);
    wait_readable(s, 1000);
    show("pipe written", write(p1[1], "p", 1));
    show("calls reporting both of 5", both_reported(ep, 5, s, p1[0]));
    show("DEL the pipe", epoll_ctl(ep, EPOLL_CTL_DEL, p1[0], &ev));
    show("calls reporting both of 3", both_reported(ep, 3, s, s));
    int ep2 = dup(ep);
    show("ADD another pipe through a dup", epoll_ctl(ep2, EPOLL_CTL_ADD, p2[0], &ev));
    show("pipe written", write(p2[1], "q", 1));
    show("calls reporting both of 5", both_reported(ep, 5, s, p2[0]));
    int ep3 = epoll_create1(0);
    show("ADD the socket to a new set", epoll_ctl(ep3, EPOLL_CTL_ADD, s, &ev));
    show("calls reporting both of 3", both_reported(ep3, 3, s, s));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(epoll_ctl(ep3, EPOLL_CTL_ADD, p1[0], &ev) == 0 ? 0 : 1);
    int status = -1;
    waitpid(pid, &status, 0);
    printf("%-44s exited %d code %d\n", "fork child added the pipe to the set", WIFEXITED(status), WEXITSTATUS(status));
    show("calls reporting both of 5", both_reported(ep3, 5, s, p1[0]));
    close(ep3);
    close(ep2);
    close(ep);
    close(p1[0]);
    close(p1[1]);
    close(p2[0]);
    close(p2[1]);
    close(c);
    close(s);
    close(l);
}

/* Whether the kernel has fd open, asked without the preload (a raw system call). */
static int kernel_has(int fd) { return syscall(SYS_fcntl, fd, F_GETFD) >= 0; }

/* The number of a closed socket is a closed fd, whatever the preload keeps behind it (it keeps a closed stack
 * socket's number reserved for its next socket, issue 6): every call fails with EBADF, poll says POLLNVAL,
 * dup2 onto it gives the program that number, close_range leaves nothing stale behind, and neither a forked
 * child nor an exec'd image has it open. Close-on-exec is per number, as asked. */
static void test_closed_numbers(void)
{
    section("closed numbers");
    int l = listener(0), c, s;
    int pfd[2];
    if (pipe(pfd) < 0) { perror("pipe"); exit(2); }
    int ep = epoll_create1(0);
    pair(l, &c, &s);
    int n = s;
    show("close", close(s));
    char buf[8];
    int v = 0, nread = 0;
    socklen_t vl = sizeof v;
    show("close again", close(n));
    show("read", read(n, buf, 1));
    show("write", write(n, "x", 1));
    show("recv", recv(n, buf, 1, 0));
    show("send", send(n, "x", 1, MSG_NOSIGNAL));
    show("fcntl F_GETFD", fcntl(n, F_GETFD));
    show("fcntl F_GETFL", fcntl(n, F_GETFL));
    show("getsockopt SO_TYPE", getsockopt(n, SOL_SOCKET, SO_TYPE, &v, &vl));
    show("shutdown", shutdown(n, SHUT_RDWR));
    show("ioctl FIONREAD", ioctl(n, FIONREAD, &nread));
    show("dup", dup(n));
    show("dup2 from it", dup2(n, 500));
    struct epoll_event ev = { .events = EPOLLIN };
    show("epoll_ctl ADD", epoll_ctl(ep, EPOLL_CTL_ADD, n, &ev));
    show("epoll_wait on it", epoll_wait(n, &ev, 1, 0));
    struct pollfd p = { .fd = n, .events = POLLIN | POLLOUT };
    show("poll", poll(&p, 1, 0));
    printf("%-44s %#x\n", "  revents", p.revents);
    fd_set w;
    FD_ZERO(&w);
    FD_SET(n, &w);
    struct timeval tv = { 0, 0 };
    show("select", select(n + 1, NULL, &w, NULL, &tv));
    flag("dup2 a pipe onto it gives that number", dup2(pfd[1], n) == n);
    show("write through it", write(n, "ab", 2));
    show("read the pipe", read(pfd[0], buf, sizeof buf));
    show("close it", close(n));
    close(pfd[0]);
    close(pfd[1]);
    close(ep);

    /* Close-on-exec of new sockets' numbers, reused ones included. */
    int a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    show("socket SOCK_CLOEXEC: F_GETFD", fcntl(a, F_GETFD));
    close(a);
    int b = socket(AF_INET, SOCK_STREAM, 0);
    show("socket: F_GETFD", fcntl(b, F_GETFD));
    show("F_SETFD FD_CLOEXEC", fcntl(b, F_SETFD, FD_CLOEXEC));
    show("  F_GETFD", fcntl(b, F_GETFD));
    close(b);
    int cc = connect_to(port_of(l), 0);
    int sc = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    show("accept4 SOCK_CLOEXEC: F_GETFD", fcntl(sc, F_GETFD));
    close(sc);
    int sn = (close(cc), cc = connect_to(port_of(l), 0), accept4(l, NULL, NULL, 0));
    show("accept4: F_GETFD", fcntl(sn, F_GETFD));
    close(sn);
    close(cc);

    /* close_range over open and closed sockets' numbers; the kernel hands them out again. */
    int c2, s2;
    pair(l, &c2, &s2);
    close(c2);
    int lo = c, hi = c;
    int fds[] = { c, c2, s2 };
    for (int i = 0; i < 3; i++) {
        if (fds[i] < lo) lo = fds[i];
        if (fds[i] > hi) hi = fds[i];
    }
    /* Other fds in between (the oracle's or the preload's own) are left alone: one close_range per run of
     * numbers that holds none. */
    long r = 0;
    int run = -1;
    for (int fd = lo; fd <= hi + 1; fd++) {
        int mine = fd <= hi && (fd == c || fd == s2 || fcntl(fd, F_GETFD) < 0);
        if (mine && run < 0) run = fd;
        if (!mine && run >= 0) {
            if (close_range(run, fd - 1, 0) < 0) r = -1;
            run = -1;
        }
    }
    show("close_range", r);
    show("send on a socket it closed", send(c, "x", 1, MSG_NOSIGNAL));
    int taken[64], k = 0;
    for (int fd = lo; fd <= hi && k < 64; fd++) taken[k++] = eventfd(0, 0);
    int c3 = connect_to(port_of(l), 0), s3 = accept(l, NULL, NULL);
    int collides = 0;
    for (int i = 0; i < k; i++) collides |= taken[i] == c3 || taken[i] == s3;
    flag("new sockets collide with the kernel's reuse", collides);
    show("send on the new connection", send(c3, "new", 3, MSG_NOSIGNAL));
    wait_readable(s3, 1000);
    show("recv on the new connection", recv(s3, buf, sizeof buf, 0));
    uint64_t one = 1;
    int intact = 1;
    for (int i = 0; i < k; i++) intact &= write(taken[i], &one, 8) == 8;
    flag("the eventfds are intact", intact);
    for (int i = 0; i < k; i++) close(taken[i]);
    close(c3);

    /* A forked child and an exec'd image do not have a closed socket's number open. */
    int m = s3;
    close(s3);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(kernel_has(m) ? 1 : 0);
    int status = -1;
    waitpid(pid, &status, 0);
    printf("%-44s exited %d code %d\n", "fork child: the number is not open", WIFEXITED(status), WEXITSTATUS(status));
    pid = fork();
    if (pid == 0) {
        char arg[16];
        snprintf(arg, sizeof arg, "%d", m);
        execl("/proc/self/exe", "posix_oracle", "--closed", arg, (char *)NULL);
        _exit(3);
    }
    waitpid(pid, &status, 0);
    printf("%-44s exited %d code %d\n", "exec'd image: the number is not open", WIFEXITED(status), WEXITSTATUS(status));
    close(l);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 2 && strcmp(argv[1], "--closed") == 0) return kernel_has(atoi(argv[2])) ? 1 : 0;
    inet_pton(AF_INET, argc > 1 ? argv[1] : "127.0.0.1", &target);
    struct sigaction sp = { .sa_handler = on_sigpipe };
    sigemptyset(&sp.sa_mask);
    sigaction(SIGPIPE, &sp, NULL);
    test_socket_basics();
    test_bind();
    test_connect();
    test_data();
    test_options();
    test_epoll();
    test_epoll_edges();
    test_poll_select();
    test_dup();
    test_udp();
    test_signal_masks();
    test_signals_and_fork();
    test_closed_numbers();
    test_epoll_kernel_fds();
    printf("== done\n");
    return 0;
}
