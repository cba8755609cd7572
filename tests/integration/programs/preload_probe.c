/* Checks the preload mechanism from inside a preloaded process (tests/integration/preload_*.sh).
 *   preload_probe files   - file and pipe work only: the stack must not load (no runtime threads)
 *   preload_probe socket  - an IPv4 socket loads the stack; a forced GC inside it; a kernel loopback
 *                           TCP exchange and pipe I/O still work; no hooked call re-entered the shim
 * Prints one line per check ("ok ..." / "FAIL ...") and exits non-zero on any failure. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...) do { if (cond) { printf("ok   "); } else { printf("FAIL "); failures++; } printf(__VA_ARGS__); printf("\n"); } while (0)

static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static int stack_mapped(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    while (fgets(line, sizeof line, f)) if (strstr(line, "libgazelle-stack.so")) found = 1;
    fclose(f);
    return found;
}

static int file_and_pipe_work(void)
{
    char path[] = "/tmp/gz-probe-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, "hello", 5) != 5) return 0;
    lseek(fd, 0, SEEK_SET);
    char buf[8] = {0};
    int ok = read(fd, buf, 5) == 5 && memcmp(buf, "hello", 5) == 0;
    close(fd);
    unlink(path);
    int p[2];
    if (pipe(p) != 0) return 0;
    ok = ok && write(p[1], "pipe", 4) == 4 && read(p[0], buf, 4) == 4 && memcmp(buf, "pipe", 4) == 0;
    close(p[0]);
    close(p[1]);
    return ok;
}

static int kernel_loopback_exchange(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (l < 0 || bind(l, (void *)&a, sizeof a) || listen(l, 1) || getsockname(l, (void *)&a, &len)) return 0;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (void *)&a, sizeof a)) return 0;
    int s = accept(l, NULL, NULL);
    char buf[16] = {0};
    int ok = s >= 0 && send(c, "ping", 4, 0) == 4 && recv(s, buf, 4, MSG_WAITALL) == 4 && memcmp(buf, "ping", 4) == 0
             && write(s, "pong", 4) == 4 && read(c, buf, 4) == 4 && memcmp(buf, "pong", 4) == 0;
    close(s);
    close(c);
    close(l);
    return ok;
}

int main(int argc, char **argv)
{
    long (*collect)(void) = (long (*)(void))dlsym(RTLD_DEFAULT, "gazelle_debug_collect");
    long (*reentries)(void) = (long (*)(void))dlsym(RTLD_DEFAULT, "gazelle_shim_reentries");
    int (*state)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "gazelle_stack_state");
    CHECK(collect && reentries && state, "libgazelle.so is preloaded (its diagnostics resolve)");
    if (!collect || !reentries || !state) return 1;

    if (argc > 1 && strcmp(argv[1], "files") == 0) {
        CHECK(file_and_pipe_work(), "file and pipe I/O work");
        CHECK(state() == 0, "stack not started (state %d)", state());
        CHECK(!stack_mapped(), "libgazelle-stack.so not mapped");
        CHECK(thread_count() == 1, "one thread, no runtime threads (%d)", thread_count());
    } else {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        CHECK(s >= 0, "IPv4 socket created");
        close(s);
        CHECK(state() == 1, "stack started by the first IPv4 socket (state %d)", state());
        CHECK(stack_mapped(), "libgazelle-stack.so mapped");
        CHECK(thread_count() > 1, "runtime threads present (%d)", thread_count());
        long gen2 = collect();
        CHECK(gen2 >= 1, "forced GC inside the stack completed (gen2 count %ld)", gen2);
        CHECK(kernel_loopback_exchange(), "kernel loopback TCP exchange after the GC");
        CHECK(file_and_pipe_work(), "file and pipe I/O after the GC");
        CHECK(collect() > gen2, "second forced GC completed");
        CHECK(reentries() == 0, "no hooked call re-entered the shim from inside the stack (%ld)", reentries());
    }
    return failures ? 1 : 0;
}
