/* Blocking socket calls interrupted by signals, as signal(7) describes Linux: a handler installed with
 * SA_RESTART restarts accept/recv (the call goes on waiting) unless the socket has a timeout
 * (SO_RCVTIMEO), any other handler ends the call with EINTR, and an ignored signal does neither.
 * Each case blocks the main thread in one call while a helper thread sends it signals 150 ms apart;
 * the line printed gives the call's result and which handlers had run when it returned. Run once on the
 * kernel and once preloaded: the outputs must be identical.
 *   signal_restart ADDRESS     (an address of the stack's, or 127.0.0.1 for the kernel)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t restarting_hits, ending_hits;
static void on_restarting(int sig) { (void)sig; restarting_hits++; }
static void on_ending(int sig) { (void)sig; ending_hits++; }

struct volley { pthread_t target; int first, second; };

static void pause_ms(long ms)
{
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
}

static void *send_volley(void *arg)
{
    struct volley *v = arg;
    pause_ms(150);
    pthread_kill(v->target, v->first);
    if (v->second) { pause_ms(150); pthread_kill(v->target, v->second); }
    return NULL;
}

static void install(int sig, void (*handler)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) { perror("sigaction"); exit(2); }
}

static const char *errno_name(int e)
{
    switch (e) {
    case EINTR: return "EINTR";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    default: return "other";
    }
}

static struct sockaddr_in endpoint(const char *address, int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (inet_pton(AF_INET, address, &a.sin_addr) != 1) { fprintf(stderr, "bad address %s\n", address); exit(2); }
    return a;
}

enum call { RECV_UDP, RECVFROM_UDP, READ_UDP, ACCEPT_TCP };

/* One case: a fresh socket blocked in `call`, the signals `first` then `second` (0: none) sent to it. */
static void run_case(const char *name, const char *address, enum call call, int first, int second, int timeout_s)
{
    int udp = call != ACCEPT_TCP;
    int fd = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    /* Port 0: nothing connects, and a fixed port collided with another run of this test on the machine. */
    struct sockaddr_in a = endpoint(address, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("bind"); exit(2); }
    if (!udp && listen(fd, 8) != 0) { perror("listen"); exit(2); }
    if (timeout_s) {
        struct timeval tv = { timeout_s, 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    restarting_hits = ending_hits = 0;
    struct volley v = { pthread_self(), first, second };
    pthread_t t;
    pthread_create(&t, NULL, send_volley, &v);
    char buf[64];
    long r;
    switch (call) {
    case RECV_UDP: r = recv(fd, buf, sizeof buf, 0); break;
    case RECVFROM_UDP: r = recvfrom(fd, buf, sizeof buf, 0, NULL, NULL); break;
    case READ_UDP: r = read(fd, buf, sizeof buf); break;
    default: r = accept(fd, NULL, NULL); break;
    }
    int e = errno;
    /* Counted at return: a call ended too early shows the later handler's count as 0. */
    int restarting_at_return = restarting_hits, ending_at_return = ending_hits;
    pthread_join(t, NULL);
    printf("%-58s -> %ld %s, SA_RESTART handler ran %d, plain handler ran %d\n", name, r, r < 0 ? errno_name(e) : "-",
           restarting_at_return, ending_at_return);
    fflush(stdout);
    close(fd);
}

/* What sigaction and signal report back: the program's own handlers and flags, SA_RESETHAND honoured
 * (the preload installs a counting trampoline in the kernel; the program must not see it). */
static void report_dispositions(void)
{
    struct sigaction now;
    sigaction(SIGUSR2, NULL, &now);
    printf("sigaction(SIGUSR2) reports: handler %s, SA_RESTART %s\n", now.sa_handler == on_restarting ? "ours" : "other",
           (now.sa_flags & SA_RESTART) ? "set" : "clear");
    void (*previous)(int) = signal(SIGUSR2, on_ending);
    sigaction(SIGUSR2, NULL, &now);
    printf("signal(SIGUSR2) returned: %s; now handler %s, SA_RESTART %s\n", previous == on_restarting ? "the old handler" : "other",
           now.sa_handler == on_ending ? "the new one" : "other", (now.sa_flags & SA_RESTART) ? "set" : "clear");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* programs still call it; the preload must honour it */
    siginterrupt(SIGUSR2, 1);
#pragma GCC diagnostic pop
    sigaction(SIGUSR2, NULL, &now);
    printf("after siginterrupt(SIGUSR2, 1): SA_RESTART %s\n", (now.sa_flags & SA_RESTART) ? "set" : "clear");
    install(SIGUSR2, on_ending, SA_RESETHAND);
    ending_hits = 0;
    raise(SIGUSR2);
    sigaction(SIGUSR2, NULL, &now);
    printf("SA_RESETHAND handler ran %d, then disposition %s\n", ending_hits, now.sa_handler == SIG_DFL ? "SIG_DFL" : "other");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: signal_restart ADDRESS\n"); return 2; }
    const char *addr = argv[1];
    install(SIGUSR2, on_restarting, SA_RESTART);
    install(SIGUSR1, on_ending, 0);
    signal(SIGWINCH, SIG_DFL); /* its default is to ignore it */
    run_case("recv UDP: plain handler", addr, RECV_UDP, SIGUSR1, 0, 0);
    run_case("recv UDP: SA_RESTART handler, then plain handler", addr, RECV_UDP, SIGUSR2, SIGUSR1, 0);
    run_case("recvfrom UDP: ignored SIGWINCH, then plain handler", addr, RECVFROM_UDP, SIGWINCH, SIGUSR1, 0);
    run_case("read UDP: SA_RESTART handler, then plain handler", addr, READ_UDP, SIGUSR2, SIGUSR1, 0);
    run_case("recv UDP with SO_RCVTIMEO 5 s: SA_RESTART handler", addr, RECV_UDP, SIGUSR2, 0, 5);
    run_case("accept TCP: SA_RESTART handler, then plain handler", addr, ACCEPT_TCP, SIGUSR2, SIGUSR1, 0);
    run_case("accept TCP with SO_RCVTIMEO 5 s: SA_RESTART handler", addr, ACCEPT_TCP, SIGUSR2, 0, 5);
    report_dispositions();
    return 0;
}
