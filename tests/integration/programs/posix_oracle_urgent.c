/* posix_oracle_urgent: urgent data (send/recv MSG_OOB, SIOCATMARK, SO_OOBINLINE, POLLPRI, FIONREAD) and
 * SO_REUSEPORT listener groups, one deterministic line per check. Run on the kernel and over the stack:
 * the outputs must be identical (the kernel is the oracle).   usage: posix_oracle_urgent [ADDR]
 * ADDR: where clients connect (default 127.0.0.1); servers listen on INADDR_ANY. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static struct in_addr target;

static int listener(int reuseport)
{
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, reuseport ? SO_REUSEPORT : SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in any = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
    if (bind(l, (struct sockaddr *)&any, sizeof any) < 0 || listen(l, 64) < 0) { perror("listener"); exit(2); }
    return l;
}

static int port_of(int fd)
{
    struct sockaddr_in s;
    socklen_t len = sizeof s;
    getsockname(fd, (struct sockaddr *)&s, &len);
    return ntohs(s.sin_port);
}

static int connect_to(int port)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = target };
    if (connect(c, (struct sockaddr *)&to, sizeof to) < 0) { perror("connect"); exit(2); }
    return c;
}

/* Lets segments arrive and be acknowledged (poll drives a preloaded stack while it waits). */
static void settle(int fd)
{
    struct pollfd p = { .fd = fd, .events = 0 };
    for (int i = 0; i < 5; i++) poll(&p, 1, 10);
}

static void pair(int inline_oob, int *c, int *s)
{
    int l = listener(0);
    *c = connect_to(port_of(l));
    *s = accept(l, NULL, NULL);
    close(l);
    int one = 1;
    if (inline_oob) setsockopt(*s, SOL_SOCKET, SO_OOBINLINE, &one, sizeof one);
}

static void snd(int c, int s, const char *data, int flags)
{
    if (send(c, data, strlen(data), flags) != (long)strlen(data)) { perror("send"); exit(2); }
    settle(s);
}

static void state(int s, const char *label)
{
    int mark = -1, inq = -1;
    ioctl(s, SIOCATMARK, &mark);
    ioctl(s, FIONREAD, &inq);
    struct pollfd p = { .fd = s, .events = POLLIN | POLLPRI };
    poll(&p, 1, 0);
    printf("  %-24s atmark=%d inq=%d in=%d pri=%d\n", label, mark, inq, !!(p.revents & POLLIN), !!(p.revents & POLLPRI));
}

static void rd(int s, int flags, const char *label)
{
    char b[64];
    long n = recv(s, b, sizeof b, flags | MSG_DONTWAIT);
    if (n < 0) printf("  %-24s -1 %s\n", label, strerrorname_np(errno));
    else printf("  %-24s %ld '%.*s'\n", label, n, (int)n, b);
    state(s, "  then");
}

static void urgent(void)
{
    int c, s;
    puts("== urgent byte read out of band at the mark");
    pair(0, &c, &s); snd(c, s, "abc", 0); snd(c, s, "d", MSG_OOB); snd(c, s, "efg", 0);
    state(s, "start"); rd(s, 0, "recv"); rd(s, MSG_OOB | MSG_PEEK, "recv OOB|PEEK"); rd(s, MSG_OOB, "recv OOB");
    rd(s, MSG_OOB, "recv OOB again"); rd(s, 0, "recv"); close(c); close(s);
    puts("== reading past the mark loses it");
    pair(0, &c, &s); snd(c, s, "abc", 0); snd(c, s, "d", MSG_OOB); snd(c, s, "efg", 0);
    rd(s, 0, "recv"); rd(s, 0, "recv"); rd(s, MSG_OOB, "recv OOB"); close(c); close(s);
    puts("== out of band first");
    pair(0, &c, &s); snd(c, s, "abc", 0); snd(c, s, "d", MSG_OOB); snd(c, s, "efg", 0);
    rd(s, MSG_OOB, "recv OOB"); rd(s, 0, "recv"); rd(s, 0, "recv"); close(c); close(s);
    puts("== SO_OOBINLINE");
    pair(1, &c, &s); snd(c, s, "abc", 0); snd(c, s, "d", MSG_OOB); snd(c, s, "efg", 0);
    rd(s, MSG_OOB, "recv OOB"); rd(s, 0, "recv"); rd(s, 0, "recv"); close(c); close(s);
    puts("== only the last byte of send(MSG_OOB)");
    pair(0, &c, &s); snd(c, s, "xyz", MSG_OOB);
    state(s, "start"); rd(s, 0, "recv"); rd(s, MSG_OOB, "recv OOB"); rd(s, 0, "recv"); close(c); close(s);
    puts("== a newer mark discards an unread urgent byte");
    pair(0, &c, &s); snd(c, s, "a", MSG_OOB); snd(c, s, "b", MSG_OOB);
    state(s, "start"); rd(s, MSG_OOB, "recv OOB"); rd(s, 0, "recv"); close(c); close(s);
    puts("== no urgent data");
    pair(0, &c, &s); snd(c, s, "abc", 0);
    rd(s, MSG_OOB, "recv OOB"); rd(s, 0, "recv"); close(c); close(s);
}

static void reuseport(void)
{
    enum { Listeners = 2, Clients = 24 };
    puts("== SO_REUSEPORT group");
    int l[Listeners], port = 0;
    for (int i = 0; i < Listeners; i++)
    {
        l[i] = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(l[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
        printf("  %-24s %d\n", "bind", bind(l[i], (struct sockaddr *)&a, sizeof a));
        printf("  %-24s %d\n", "listen", listen(l[i], 64));
        if (i == 0) port = port_of(l[0]);
    }
    int x = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
    int r = bind(x, (struct sockaddr *)&a, sizeof a);
    printf("  %-24s %d %s\n", "bind without the option", r, r < 0 ? strerrorname_np(errno) : "");
    close(x);
    int c[Clients], got[Listeners] = { 0 }, served = 0;
    for (int i = 0; i < Clients; i++) c[i] = connect_to(port);
    for (int i = 0; i < Clients; i++)
    {
        struct pollfd p[Listeners];
        for (int k = 0; k < Listeners; k++) p[k] = (struct pollfd){ .fd = l[k], .events = POLLIN };
        if (poll(p, Listeners, 2000) <= 0) break;
        for (int k = 0; k < Listeners; k++)
            if (p[k].revents & POLLIN)
            {
                int s = accept(l[k], NULL, NULL);
                if (s < 0) continue;
                got[k]++;
                char b[8];
                if (recv(s, b, 1, MSG_PEEK | MSG_DONTWAIT) < 0) { /* nothing yet */ }
                if (send(s, "k", 1, 0) == 1) served++;
                close(s);
                break;
            }
    }
    int spread = 0;
    for (int k = 0; k < Listeners; k++) spread += got[k] > 0;
    printf("  %-24s %d\n", "connections accepted", got[0] + got[1]);
    printf("  %-24s %s\n", "every listener got some", spread == Listeners ? "yes" : "no");
    int answered = 0;
    for (int i = 0; i < Clients; i++)
    {
        char b;
        struct pollfd p = { .fd = c[i], .events = POLLIN };
        if (poll(&p, 1, 2000) > 0 && recv(c[i], &b, 1, 0) == 1 && b == 'k') answered++;
        close(c[i]);
    }
    printf("  %-24s %d of %d\n", "clients served", answered, served);
    for (int k = 0; k < Listeners; k++) close(l[k]);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    inet_pton(AF_INET, argc > 1 ? argv[1] : "127.0.0.1", &target);
    urgent();
    reuseport();
    return 0;
}
