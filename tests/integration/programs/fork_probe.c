/* fork_probe: the fork/exec contract of a preloaded process (see the fork notes in shim/gazelle_shim.c).
 *   fork_probe [ADDR] - opens an IPv4 socket (the stack loads), forks: the child must be cut off from
 *                       .NET (gazelle_stack_state() == -1), still get working kernel sockets, and exec
 *                       this program again ("exec" mode), where the preload starts fresh; the parent
 *                       keeps its stack and works after the child is gone. With ADDR (the stack's
 *                       address), the parent and the exec'd image also make a TCP exchange over the stack.
 *   fork_probe exec [ADDR] - in the exec'd image: a socket loads the stack anew (state 1).
 *   fork_probe orphans ADDR - with a stack serving ADDR: a connected stack socket is inherited by a
 *                       child, which gets ENOTCONN on it, sees POLLERR|POLLHUP from poll, closes it
 *                       and leaves through exit() (the preload's exit handler must not enter the stack
 *                       there: with GAZELLE_STATS set, no stats file may appear); the parent's
 *                       connection keeps working.
 * Prints one line per check ("ok ..." / "FAIL ...") and exits non-zero on any failure. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...) do { if (cond) { printf("ok   "); } else { printf("FAIL "); failures++; } printf(__VA_ARGS__); printf("\n"); fflush(stdout); } while (0)

static int stack_state(void)
{
    int (*f)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "gazelle_stack_state");
    return f ? f() : -99;
}

/* A loopback TCP exchange on the kernel: 1 on success. */
static int loopback_exchange(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len)) return 0;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, sizeof a)) return 0;
    int s = accept(l, NULL, NULL);
    char b[4] = { 0 };
    int ok = s >= 0 && write(c, "abc", 3) == 3 && read(s, b, 3) == 3 && memcmp(b, "abc", 3) == 0;
    close(c);
    close(s);
    close(l);
    return ok;
}

/* A TCP exchange with ourselves over the stack at ADDR (its local delivery): 1 on success. */
static int stack_exchange(const char *addr)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    inet_pton(AF_INET, addr, &a.sin_addr);
    socklen_t len = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len)) return 0;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, sizeof a)) return 0;
    int s = accept(l, NULL, NULL);
    char b[4] = { 0 };
    int ok = s >= 0 && write(c, "xyz", 3) == 3 && read(s, b, 3) == 3 && memcmp(b, "xyz", 3) == 0;
    close(c);
    close(s);
    close(l);
    return ok;
}

/* The value of one line of gazelle_stats() (docs/stats.md), -1 without a stack. */
static long stack_stat(const char *name)
{
    long (*f)(char *, size_t) = (long (*)(char *, size_t))dlsym(RTLD_DEFAULT, "gazelle_stats");
    static char text[16384];
    if (!f || f(text, sizeof text) <= 0) return -1;
    size_t n = strlen(name);
    for (char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ' ') return atol(p + n + 1);
    return 0;
}

static int orphans(const char *addr)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    inet_pton(AF_INET, addr, &a.sin_addr);
    socklen_t len = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len)) return 1;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&a, sizeof a) == 0, "parent: connected over the stack");
    int s = accept(l, NULL, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char b;
        errno = 0;
        CHECK(recv(c, &b, 1, MSG_DONTWAIT) == -1 && errno == ENOTCONN, "child: an inherited stack socket says ENOTCONN (%m)");
        errno = 0;
        CHECK(send(c, "x", 1, MSG_NOSIGNAL) == -1 && errno == ENOTCONN, "child: send says ENOTCONN");
        struct pollfd p = { .fd = c, .events = POLLIN };
        CHECK(poll(&p, 1, -1) == 1 && (p.revents & (POLLERR | POLLHUP)) == (POLLERR | POLLHUP), "child: poll reports ERR|HUP, no hang");
        CHECK(close(c) == 0 && close(s) == 0, "child: close works");
        CHECK(loopback_exchange(), "child: kernel sockets work");
        /* The listener stays open: the inherited exit handler runs with a stack fd in the table and must
         * still leave the stack alone (never enter .NET in a forked child). */
        exit(failures ? 1 : 0);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child passed (status %d)", status);
    /* Had the child's exit entered the stack, it would have written the GAZELLE_STATS file (docs/stats.md). */
    const char *stats = getenv("GAZELLE_STATS");
    if (stats && *stats) CHECK(access(stats, F_OK) != 0, "child: its exit left the stack alone (no %s)", stats);
    char buf[4] = { 0 };
    CHECK(send(c, "abc", 3, 0) == 3 && recv(s, buf, 3, 0) == 3 && memcmp(buf, "abc", 3) == 0, "parent: the connection still works");
    close(c);
    close(s);
    close(l);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "orphans") == 0) return orphans(argv[2]);
    if (argc > 1 && strcmp(argv[1], "exec") == 0) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        CHECK(fd >= 0 && stack_state() == 1, "exec'd image: the preload starts fresh (state %d)", stack_state());
        CHECK(loopback_exchange(), "exec'd image: loopback TCP works");
        if (argc > 2) {
            CHECK(stack_exchange(argv[2]), "exec'd image: TCP over its own stack at %s works", argv[2]);
            long opens = stack_stat("counter.TcpLayer.ActiveOpens");
            CHECK(opens == 1, "exec'd image: its own stack served it (%ld active opens)", opens);
        }
        return failures ? 1 : 0;
    }
    const char *addr = argc > 1 ? argv[1] : NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0 && stack_state() == 1, "parent: the first socket loaded the stack (state %d)", stack_state());
    if (addr) CHECK(stack_exchange(addr), "parent: TCP over the stack at %s works before the fork", addr);
    pid_t pid = fork();
    if (pid == 0) {
        CHECK(stack_state() == -1, "child: cut off from .NET (state %d)", stack_state());
        CHECK(loopback_exchange(), "child: new sockets run on the kernel");
        /* The parent's socket was never placed (socket() alone makes no kernel socket over the stack): the
         * preload gave it its kernel socket before forking, so the child inherits a real one. */
        int type = 0;
        socklen_t tl = sizeof type;
        CHECK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM, "child: an inherited unplaced socket is a kernel TCP socket");
        CHECK(close(fd) == 0, "child: closes an inherited socket");
        fflush(stdout);
        execl("/proc/self/exe", argv[0], "exec", addr, (char *)NULL);
        printf("FAIL exec: %m\n");
        _exit(1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child and its exec'd image passed (status %d)", status);
    CHECK(stack_state() == 1, "parent: the stack still runs");
    CHECK(loopback_exchange(), "parent: sockets work after the fork");
    if (addr) {
        CHECK(stack_exchange(addr), "parent: TCP over the stack works after the fork");
        long opens = stack_stat("counter.TcpLayer.ActiveOpens");
        CHECK(opens == 2, "parent: its stack served both exchanges (%ld active opens)", opens);
    }
    close(fd);
    return failures ? 1 : 0;
}
