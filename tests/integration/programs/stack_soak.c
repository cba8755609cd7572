/* stack_soak: a soak of many TCP connections between two processes, each preloaded with its own stack
 * (or both on the kernel, as a reference), and the checks that the stacks return to their baseline.
 *
 *   stack_soak server ADDR PORT CONNECTIONS WORKERS
 *       Listens on ADDR:PORT. Serves one warm-up connection, waits until its stack has settled, takes the
 *       baseline (the stack's stats through gazelle_stats(), the fd numbers in /proc/self/fd), then accepts
 *       CONNECTIONS connections in the main thread and hands each to one of WORKERS threads over a pipe: a
 *       socket accepted by one thread and used by another, in an epoll set that also holds a kernel fd
 *       (the pipe); odd workers use edge-triggered epoll. (A gate connection, served right after the
 *       baseline, tells the client to start.) Each connection carries one request, answered
 *       (by content), then the client's close (EOF) and ours. Afterwards: back to the baseline.
 *   stack_soak client ADDR PORT CONNECTIONS THREADS
 *       One warm-up connection, the gate connection, the baseline, then THREADS threads, each with its own connections opened
 *       BATCH at a time (connect, request, response checked byte for byte, close). Afterwards: back to the
 *       baseline, TIME_WAIT accounted for (see check_client_settles).
 *   stack_soak eofserver ADDR PORT
 *       Accepts one connection, answers one request, then expects the client's FIN: read() must return 0
 *       within 5 s (not ECONNRESET, not nothing).
 *   stack_soak exitclient ADDR PORT
 *       Connects, exchanges one request, and exits through exit() without closing the socket (as wget
 *       does): the preload must close it at exit so the server sees EOF.
 *
 * Prints one line per check ("ok ..." / "FAIL ...") and exits non-zero on any failure. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 8
#define MAX_PAYLOAD 6000
#define HEADER 8 /* "Q" or "R" + 7 decimal digits of payload length */
#define MAX_FD 65536

static int failures;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;
#define CHECK(cond, ...)                                                            \
    do {                                                                            \
        pthread_mutex_lock(&print_lock);                                            \
        if (cond) printf("ok   ");                                                  \
        else { printf("FAIL "); failures++; }                                       \
        printf(__VA_ARGS__);                                                        \
        printf("\n");                                                               \
        fflush(stdout);                                                             \
        pthread_mutex_unlock(&print_lock);                                          \
    } while (0)

static struct sockaddr_in target;

/* ---- the request/response protocol -------------------------------------------------------------- */

static size_t payload_length(unsigned seed) { return 1 + (seed * 2654435761u >> 7) % MAX_PAYLOAD; }

static void fill_payload(unsigned char *p, size_t n, unsigned seed)
{
    unsigned x = seed * 747796405u + 2891336453u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

/* The answer to a payload: reversed, each byte XOR 0x5A (so an echo would not pass). */
static void answer(const unsigned char *in, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = in[n - 1 - i] ^ 0x5A;
}

static size_t build_request(unsigned char *msg, unsigned seed)
{
    size_t n = payload_length(seed);
    char h[HEADER + 1];
    snprintf(h, sizeof h, "Q%07zu", n);
    memcpy(msg, h, HEADER);
    fill_payload(msg + HEADER, n, seed);
    return HEADER + n;
}

/* The payload length in a header: exactly 7 decimal digits after the type letter; 0 when malformed. */
static size_t header_length(const unsigned char *h, char type)
{
    size_t n = 0;
    if (h[0] != type) return 0;
    for (int i = 1; i < HEADER; i++) {
        if (h[i] < '0' || h[i] > '9') return 0;
        n = n * 10 + (h[i] - '0');
    }
    return n;
}

static int send_all(int fd, const void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = send(fd, (const char *)buf + done, n - done, MSG_NOSIGNAL);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            poll(&p, 1, 1000);
            continue;
        }
        if (r <= 0) return -1;
        done += r;
    }
    return 0;
}

static int recv_all(int fd, void *buf, size_t n)
{
    size_t have = 0;
    while (have < n) {
        ssize_t r = recv(fd, (char *)buf + have, n - have, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        have += r;
    }
    return 0;
}

/* One exchange on a connected socket: 1 when the answer is exact. */
static int exchange(int fd, unsigned seed)
{
    static __thread unsigned char msg[HEADER + MAX_PAYLOAD], got[HEADER + MAX_PAYLOAD], want[MAX_PAYLOAD];
    size_t len = build_request(msg, seed), n = len - HEADER;
    if (send_all(fd, msg, len) < 0 || recv_all(fd, got, len) < 0) return 0;
    answer(msg + HEADER, want, n);
    char h[HEADER + 1];
    snprintf(h, sizeof h, "R%07zu", n);
    return memcmp(got, h, HEADER) == 0 && memcmp(got + HEADER, want, n) == 0;
}

static int connect_target(void)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0) return -1;
    if (connect(c, (struct sockaddr *)&target, sizeof target) < 0) {
        close(c);
        return -1;
    }
    return c;
}

/* ---- observing the stack: gazelle_stats() and /proc/self/fd ------------------------------------- */

struct stats { char text[16384]; int present; };

static void read_stats(struct stats *s)
{
    long (*f)(char *, size_t) = (long (*)(char *, size_t))dlsym(RTLD_DEFAULT, "gazelle_stats");
    s->present = f && f(s->text, sizeof s->text) > 0;
    if (!s->present) s->text[0] = 0;
}

static long stat_of(const struct stats *s, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = s->text; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        if (strncmp(p, name, n) == 0 && p[n] == ' ') return atol(p + n + 1);
    return 0;
}

#define NAMED_FDS 256
struct fdset { unsigned char open[MAX_FD / 8]; int count; char name[NAMED_FDS][48]; };

static void read_fds(struct fdset *s)
{
    memset(s, 0, sizeof *s);
    DIR *d = opendir("/proc/self/fd");
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd == self || fd >= MAX_FD) continue;
        /* A number the program closed that the preload keeps reserved for its next socket is a closed fd for
         * the program (EBADF): its count is bounded by the posix.pooled_numbers check. */
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) continue;
        s->open[fd / 8] |= 1 << (fd % 8);
        s->count++;
        if (fd < NAMED_FDS) {
            char path[64];
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            ssize_t n = readlink(path, s->name[fd], sizeof s->name[fd] - 1);
            s->name[fd][n > 0 ? n : 0] = 0;
        }
    }
    closedir(d);
}

/* 1 when the same fd numbers are open; otherwise names the first difference. */
static int same_fds(const struct fdset *a, const struct fdset *b, char *why, size_t size)
{
    for (int fd = 0; fd < MAX_FD; fd++) {
        int x = a->open[fd / 8] >> (fd % 8) & 1, y = b->open[fd / 8] >> (fd % 8) & 1;
        if (x != y) {
            snprintf(why, size, "fd %d %s: %s", fd, x ? "closed since the baseline" : "still open",
                     fd < NAMED_FDS ? (x ? a->name[fd] : b->name[fd]) : "?");
            return 0;
        }
    }
    snprintf(why, size, "%d fds", a->count);
    return 1;
}

static void sleep_ms(int ms)
{
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

/* Polls the stats (each read polls the stack: its timers run) until cond holds, at most seconds. */
static int wait_stats(struct stats *s, int (*cond)(const struct stats *, const struct stats *), const struct stats *base, int seconds)
{
    for (int i = 0; i < seconds * 20; i++) {
        read_stats(s);
        if (!s->present || cond(s, base)) return 1;
        sleep_ms(50);
    }
    return 0;
}

/* Checks shared by both roles after the soak: packet pools and fds against the baseline; no resets and
 * every connection opened by the stack, counted from the start (before the warm-up and the gate). */
static void check_common(const char *role, const struct stats *base, const struct stats *start, const struct stats *now,
                         const struct fdset *base_fds, const char *opens, long expected_opens)
{
    struct fdset fds;
    char why[128];
    read_fds(&fds);
    CHECK(same_fds(base_fds, &fds, why, sizeof why), "%s: the same fd numbers are open as at the baseline (%s)", role, why);
    for (int fd = 0; fd < NAMED_FDS; fd++)
        if (base_fds->name[fd][0] || fds.name[fd][0]) fprintf(stderr, "%s: fd %d: baseline %s, end %s\n", role, fd, base_fds->name[fd], fds.name[fd]);
    if (!now->present) {
        printf("skip %s: no stack in this process (kernel run): stack checks skipped\n", role);
        return;
    }
    /* Received payload not yet read stays in its frame (tcp.held_frames): the baseline may be taken while the
     * next connection's request waits so, and such frames are data, not a leak. */
#define UNHELD(s, name) (stat_of(s, name) - stat_of(s, "tcp.held_frames"))
    CHECK(UNHELD(now, "pool.in_use") == UNHELD(base, "pool.in_use"),
          "%s: packet buffers held by the stack, beyond unread payload, back to baseline (%ld, baseline %ld)",
          role, UNHELD(now, "pool.in_use"), UNHELD(base, "pool.in_use"));
    CHECK(UNHELD(now, "pool.mbufs_in_use") == UNHELD(base, "pool.mbufs_in_use"),
          "%s: mbufs allocated from the pool, beyond unread payload, back to baseline (%ld, baseline %ld)",
          role, UNHELD(now, "pool.mbufs_in_use"), UNHELD(base, "pool.mbufs_in_use"));
    CHECK(stat_of(now, "tcp.held_frames") == 0, "%s: no received frame held once every connection is closed (%ld)",
          role, stat_of(now, "tcp.held_frames"));
    CHECK(stat_of(now, "posix.fds") == stat_of(base, "posix.fds") && stat_of(now, "shim.marked_fds") == stat_of(base, "shim.marked_fds")
              && stat_of(now, "posix.pooled_numbers") <= 64,
          "%s: fds held by the preload back to baseline (layer %ld, shim table %ld; baseline %ld, %ld), closed numbers kept <= 64 (%ld)",
          role, stat_of(now, "posix.fds"), stat_of(now, "shim.marked_fds"), stat_of(base, "posix.fds"), stat_of(base, "shim.marked_fds"),
          stat_of(now, "posix.pooled_numbers"));
    /* Resets: no connection may be aborted by one. Two are benign and can happen when a peer is slow to
     * run (2 shared cores): our tail-loss probe or retransmission crosses the peer's ACK, the connection
     * closes on that ACK, and the peer's answer to the duplicate then finds no connection and gets a RST
     * (RFC 9293 §3.10.7.1); that RST ends the peer's TIME_WAIT entry early. So every RST we sent must be
     * matched by a retransmission of ours, and every RST we received must have ended a TIME_WAIT entry. */
#define DELTA(name) (stat_of(now, "counter.TcpLayer." name) - stat_of(start, "counter.TcpLayer." name))
    long sent = DELTA("ResetsSent"), received = DELTA("ResetsReceived"), in_time_wait = DELTA("ResetsInTimeWait");
    long retransmitted = DELTA("RetransmittedSegments") + DELTA("TailLossProbes");
    CHECK(received == in_time_wait && sent <= retransmitted,
          "%s: no connection was reset (RSTs received %ld, all in TIME_WAIT: %ld; RSTs sent %ld, retransmissions %ld)",
          role, received, in_time_wait, sent, retransmitted);
    fprintf(stderr, "--- %s: stats at the baseline\n%s--- %s: stats at the end\n%s", role, base->text, role, now->text);
    long opened = stat_of(now, opens) - stat_of(start, opens);
    CHECK(opened == expected_opens, "%s: the stack opened every connection (%s +%ld, want %ld)", role, opens, opened, expected_opens);
}

/* A process's exit takes the memif link down, which changes its peer's fds: each side says when it has
 * checked (touches SOAK_DONE_FILE) and stays until the other has (SOAK_HOLD_FILE exists), 60 s at most. */
static void hold_for_peer(void)
{
    const char *done = getenv("SOAK_DONE_FILE"), *hold = getenv("SOAK_HOLD_FILE");
    if (done && *done) close(open(done, O_CREAT | O_WRONLY, 0600));
    for (int i = 0; hold && *hold && access(hold, F_OK) != 0 && i < 600; i++) sleep_ms(100);
}

/* ---- server -------------------------------------------------------------------------------------- */

struct conn { size_t have; unsigned char buf[HEADER + MAX_PAYLOAD]; };
static struct conn *conns[MAX_FD];
static atomic_int closed_connections, server_errors;

static void server_error(int fd, const char *what)
{
    if (atomic_fetch_add(&server_errors, 1) == 0) fprintf(stderr, "server: fd %d: %s (errno %d)\n", fd, what, errno);
}
static int total_connections;

struct worker { pthread_t thread; int pipe[2]; int edge; };

/* Reads what has arrived; answers a complete request; 1 when the connection is finished (EOF or error). */
static int serve_readable(int fd, int edge)
{
    struct conn *c = conns[fd];
    for (;;) {
        size_t room = sizeof c->buf - c->have;
        ssize_t r = room ? recv(fd, c->buf + c->have, room, 0) : 0;
        if (r < 0 && errno == EAGAIN) return 0;
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r < 0 || c->have != 0) server_error(fd, r < 0 ? "recv failed" : "EOF inside a request");
            return 1;
        }
        c->have += r;
        if (c->have >= HEADER) {
            size_t n = header_length(c->buf, 'Q');
            if (n == 0 || n > MAX_PAYLOAD) {
                server_error(fd, "bad request header");
                return 1;
            }
            if (c->have == HEADER + n) {
                static __thread unsigned char out[HEADER + MAX_PAYLOAD];
                snprintf((char *)out, HEADER + 1, "R%07zu", n);
                answer(c->buf + HEADER, out + HEADER, n);
                if (send_all(fd, out, HEADER + n) < 0) server_error(fd, "send failed");
                c->have = 0;
            } else if (c->have > HEADER + n) {
                server_error(fd, "more than one request");
                return 1;
            }
        }
        if (!edge) return 0; /* level-triggered: epoll says again if more is there */
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = w->pipe[0] }, out[64];
    epoll_ctl(ep, EPOLL_CTL_ADD, w->pipe[0], &ev);
    while (atomic_load(&closed_connections) < total_connections && atomic_load(&server_errors) == 0) {
        int n = epoll_wait(ep, out, 64, 100);
        for (int i = 0; i < n; i++) {
            int fd = out[i].data.fd;
            if (fd == w->pipe[0]) {
                int got;
                if (read(w->pipe[0], &got, sizeof got) != sizeof got) continue;
                conns[got] = calloc(1, sizeof(struct conn));
                struct epoll_event ce = { .events = EPOLLIN | EPOLLRDHUP | (w->edge ? EPOLLET : 0), .data.fd = got };
                if (epoll_ctl(ep, EPOLL_CTL_ADD, got, &ce) < 0) server_error(got, "epoll_ctl ADD failed");
                continue;
            }
            if (serve_readable(fd, w->edge)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                free(conns[fd]);
                conns[fd] = NULL;
                close(fd);
                atomic_fetch_add(&closed_connections, 1);
            }
        }
    }
    close(ep);
    return NULL;
}

/* The table as before any connection: the listener alone, nothing in the 4-tuple index. */
static int only_listener(const struct stats *s, const struct stats *base)
{
    (void)base;
    return stat_of(s, "tcp.connections") == 1 && stat_of(s, "tcp.state.listen") == 1 && stat_of(s, "tcp.flows") == 0;
}

/* The connections of the warm-up are gone: none is closing any more (the gate may be arriving). */
static int warm_up_gone(const struct stats *s, const struct stats *base)
{
    (void)base;
    return stat_of(s, "tcp.state.closewait") + stat_of(s, "tcp.state.lastack") + stat_of(s, "tcp.state.finwait1")
         + stat_of(s, "tcp.state.finwait2") + stat_of(s, "tcp.state.closing") + stat_of(s, "tcp.state.timewait") == 0;
}

static int serve_one(int l)
{
    int c = accept(l, NULL, NULL);
    unsigned char buf[HEADER + MAX_PAYLOAD], out[HEADER + MAX_PAYLOAD];
    if (c < 0 || recv_all(c, buf, HEADER) < 0) return 0;
    size_t n = header_length(buf, 'Q');
    if (n == 0 || n > MAX_PAYLOAD || recv_all(c, buf + HEADER, n) < 0) return 0;
    snprintf((char *)out, HEADER + 1, "R%07zu", n);
    answer(buf + HEADER, out + HEADER, n);
    int ok = send_all(c, out, HEADER + n) == 0 && recv(c, buf, 1, 0) == 0;
    close(c);
    return ok;
}

static int server(int connections, int workers)
{
    total_connections = connections;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&target, sizeof target) || listen(l, 128)) {
        perror("server: listen");
        return 2;
    }
    struct stats start;
    read_stats(&start);
    printf("listening\n");
    fflush(stdout);
    CHECK(serve_one(l), "server: the warm-up connection was served");
    struct stats base, now;
    CHECK(wait_stats(&base, warm_up_gone, NULL, 10), "server: the warm-up connection is gone from the table");
    struct fdset base_fds;
    read_fds(&base_fds);
    /* The gate: the client starts the soak once this exchange is answered, so it never races the baseline. */
    CHECK(serve_one(l), "server: the gate connection was served after the baseline");

    struct worker w[16];
    if (workers > 16) workers = 16;
    for (int i = 0; i < workers; i++) {
        if (pipe(w[i].pipe)) return 2;
        w[i].edge = i % 2;
        pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
    }
    int accepted = 0;
    for (; accepted < connections && atomic_load(&server_errors) == 0; accepted++) {
        int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
        if (c < 0) {
            perror("server: accept");
            break;
        }
        if (write(w[accepted % workers].pipe[1], &c, sizeof c) != sizeof c) break;
    }
    for (int i = 0; i < workers; i++) {
        pthread_join(w[i].thread, NULL);
        close(w[i].pipe[0]);
        close(w[i].pipe[1]);
    }
    CHECK(accepted == connections && atomic_load(&closed_connections) == connections && atomic_load(&server_errors) == 0,
          "server: %d connections accepted, %d served and closed after the client's EOF, %d errors", accepted,
          atomic_load(&closed_connections), atomic_load(&server_errors));
    /* The client closes first, so our side goes CLOSE_WAIT -> LAST_ACK -> CLOSED: nothing lingers once
     * the last ACKs are in. */
    CHECK(wait_stats(&now, only_listener, NULL, 10), "server: connection table back to baseline, the listener alone (%ld connections, %ld flows)",
          stat_of(&now, "tcp.connections"), stat_of(&now, "tcp.flows"));
    check_common("server", &base, &start, &now, &base_fds, "counter.TcpLayer.PassiveOpens", connections + 2 /* warm-up, gate */);
    hold_for_peer();
    close(l);
    return failures ? 1 : 0;
}

/* ---- client -------------------------------------------------------------------------------------- */

static int per_thread;
static atomic_int client_done, client_failures;

static void *client_main(void *arg)
{
    long id = (long)arg;
    int fds[BATCH];
    for (int i = 0; i < per_thread; i += BATCH) {
        int k = per_thread - i < BATCH ? per_thread - i : BATCH;
        for (int j = 0; j < k; j++) fds[j] = connect_target();
        for (int j = 0; j < k; j++) {
            unsigned seed = (unsigned)(id * 100000 + i + j);
            if (fds[j] < 0 || !exchange(fds[j], seed)) {
                if (atomic_fetch_add(&client_failures, 1) == 0)
                    fprintf(stderr, "client: thread %ld connection %d: %s (errno %d)\n", id, i + j, fds[j] < 0 ? "connect failed" : "exchange failed", errno);
            }
            else atomic_fetch_add(&client_done, 1);
        }
        for (int j = 0; j < k; j++) if (fds[j] >= 0) close(fds[j]);
    }
    return NULL;
}

static int nothing_but_time_wait(const struct stats *s, const struct stats *base)
{
    (void)base;
    return stat_of(s, "tcp.connections") == stat_of(s, "tcp.state.timewait") && stat_of(s, "tcp.flows") == stat_of(s, "tcp.state.timewait");
}

static int all_gone(const struct stats *s, const struct stats *base)
{
    (void)base;
    return stat_of(s, "tcp.connections") == 0 && stat_of(s, "tcp.flows") == 0;
}

static int client(int connections, int threads)
{
    struct stats start;
    close(socket(AF_INET, SOCK_STREAM, 0)); /* the first IPv4 socket starts the stack */
    read_stats(&start);
    int c = connect_target();
    CHECK(c >= 0 && exchange(c, 999999), "client: the warm-up exchange");
    if (c >= 0) close(c);
    c = connect_target(); /* answered once the server has its baseline */
    CHECK(c >= 0 && exchange(c, 999998), "client: the gate exchange (the server has its baseline)");
    if (c >= 0) close(c);
    struct stats base, now;
    read_stats(&base);
    struct fdset base_fds;
    read_fds(&base_fds);

    if (threads > 64) threads = 64;
    per_thread = connections / threads;
    pthread_t t[64];
    for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, client_main, (void *)i);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    CHECK(atomic_load(&client_done) == per_thread * threads && atomic_load(&client_failures) == 0,
          "client: %d connections over %d threads opened, answered by content and closed (%d failures)",
          atomic_load(&client_done), threads, atomic_load(&client_failures));
    read_stats(&now);
    if (now.present) {
        /* TIME_WAIT, honestly: we close first, so each connection passes FIN_WAIT_1/2 and then waits 2MSL
         * in TIME_WAIT (RFC 9293 §3.10.7.4) before its table entry goes. The test's lstack.conf sets
         * tcp_time_wait_ms = 2000 to make that short. Right after the soak every entry left must be in one
         * of those closing states (none a socket of ours), with TIME_WAIT ones among them (the last
         * connections': at least one, at most one per connection, warm-up and gate included); the
         * closing handshakes then finish (only TIME_WAIT left), and the TIME_WAIT entries all expire,
         * within 10 s: the connection table and the 4-tuple index end empty, as at start. */
        long tw = stat_of(&now, "tcp.state.timewait");
        long closing = tw + stat_of(&now, "tcp.state.finwait1") + stat_of(&now, "tcp.state.finwait2") + stat_of(&now, "tcp.state.closing");
        CHECK(stat_of(&now, "tcp.connections") == closing && tw >= 1 && tw <= connections + 2 /* warm-up, gate */,
              "client: right after the soak only closing connections remain (%ld connections, %ld of them in TIME_WAIT, %ld in FIN_WAIT/CLOSING)",
              stat_of(&now, "tcp.connections"), tw, closing - tw);
        CHECK(wait_stats(&now, nothing_but_time_wait, NULL, 10), "client: the closing handshakes finished: only TIME_WAIT entries left (%ld connections, %ld flows, %ld in TIME_WAIT)",
              stat_of(&now, "tcp.connections"), stat_of(&now, "tcp.flows"), stat_of(&now, "tcp.state.timewait"));
        CHECK(wait_stats(&now, all_gone, NULL, 10), "client: the TIME_WAIT entries expired: connection table and flows empty (%ld, %ld)",
              stat_of(&now, "tcp.connections"), stat_of(&now, "tcp.flows"));
    }
    check_common("client", &base, &start, &now, &base_fds, "counter.TcpLayer.ActiveOpens", per_thread * threads + 2 /* warm-up, gate */);
    hold_for_peer();
    return failures ? 1 : 0;
}

/* ---- exit without close ------------------------------------------------------------------------- */

static int eof_server(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&target, sizeof target) || listen(l, 4)) {
        perror("eofserver: listen");
        return 2;
    }
    printf("listening\n");
    fflush(stdout);
    int c = accept(l, NULL, NULL);
    unsigned char buf[HEADER + MAX_PAYLOAD], out[HEADER + MAX_PAYLOAD];
    size_t n = 0;
    int ok = c >= 0 && recv_all(c, buf, HEADER) == 0 && (n = header_length(buf, 'Q')) > 0 && n <= MAX_PAYLOAD
          && recv_all(c, buf + HEADER, n) == 0;
    if (ok) {
        snprintf((char *)out, HEADER + 1, "R%07zu", n);
        answer(buf + HEADER, out + HEADER, n);
        ok = send_all(c, out, HEADER + n) == 0;
    }
    CHECK(ok, "eofserver: one request answered");
    struct timeval tv = { 5, 0 };
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    errno = 0;
    ssize_t r = recv(c, buf, sizeof buf, 0);
    CHECK(r == 0, "eofserver: the client exited without close() and we read EOF (read returned %zd, %s)", r,
          r == 0 ? "FIN" : errno == EAGAIN ? "nothing within 5 s" : strerror(errno));
    close(c);
    close(l);
    return failures ? 1 : 0;
}

static int exit_client(void)
{
    int c = connect_target();
    CHECK(c >= 0 && exchange(c, 4242), "exitclient: one exchange; now exit() with the socket open");
    exit(failures ? 1 : 0); /* no close(): the preload's exit handler must close it */
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s server|client|eofserver|exitclient ADDR PORT [CONNECTIONS] [THREADS]\n", argv[0]);
        return 2;
    }
    target.sin_family = AF_INET;
    target.sin_port = htons(atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &target.sin_addr) != 1) return 2;
    int connections = argc > 4 ? atoi(argv[4]) : 1000, threads = argc > 5 ? atoi(argv[5]) : 4;
    if (strcmp(argv[1], "server") == 0) return server(connections, threads);
    if (strcmp(argv[1], "client") == 0) return client(connections, threads);
    if (strcmp(argv[1], "eofserver") == 0) return eof_server();
    if (strcmp(argv[1], "exitclient") == 0) return exit_client();
    return 2;
}
