/* fork_probe: the fork/exec contract of a preloaded process (see the fork notes in shim/gazelle_shim.c).
 *   fork_probe        - opens an IPv4 socket (the stack loads), forks: the child must be cut off from
 *                       .NET (gazelle_stack_state() == -1), still get working kernel sockets, and exec
 *                       this program again ("exec" mode), where the preload starts fresh; the parent
 *                       keeps its stack and works after the child is gone.
 *   fork_probe exec   - in the exec'd image: a socket loads the stack anew (state 1).
 *   fork_probe orphans ADDR - with a stack serving ADDR: a connected stack socket is inherited by a
 *                       child, which gets ENOTCONN on it, sees POLLERR|POLLHUP from poll, and closes
 *                       it; the parent's connection keeps working.
 * Prints one line per check ("ok ..." / "FAIL ...") and exits non-zero on any failure. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <netinet/in.h>
#include <stdio.h>
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
        CHECK(close(c) == 0 && close(s) == 0 && close(l) == 0, "child: close works");
        CHECK(loopback_exchange(), "child: kernel sockets work");
        _exit(failures ? 1 : 0);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child passed (status %d)", status);
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
        return failures ? 1 : 0;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0 && stack_state() == 1, "parent: the first socket loaded the stack (state %d)", stack_state());
    pid_t pid = fork();
    if (pid == 0) {
        CHECK(stack_state() == -1, "child: cut off from .NET (state %d)", stack_state());
        CHECK(loopback_exchange(), "child: new sockets run on the kernel");
        CHECK(close(fd) == 0, "child: closes an inherited socket");
        fflush(stdout);
        execl("/proc/self/exe", argv[0], "exec", (char *)NULL);
        printf("FAIL exec: %m\n");
        _exit(1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child and its exec'd image passed (status %d)", status);
    CHECK(stack_state() == 1, "parent: the stack still runs");
    CHECK(loopback_exchange(), "parent: sockets work after the fork");
    close(fd);
    return failures ? 1 : 0;
}
