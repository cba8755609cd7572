/* stack_stress ADDR [CONNECTIONS] [THREADS]: one epoll server thread and several client threads in
 * one process, each client with its own connections (connect to ADDR, send, read the echo, close),
 * the server accepting and echoing for all of them. Afterwards the process's open fds are back to
 * their baseline. Prints one line per check and exits non-zero on any failure. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in server_addr;
static int per_thread;
static int listener_fd;
static volatile int clients_done;
static int client_failures;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

static void *server(void *arg)
{
    (void)arg;
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = listener_fd }, out[64];
    epoll_ctl(ep, EPOLL_CTL_ADD, listener_fd, &ev);
    char buf[4096];
    while (!clients_done) {
        int n = epoll_wait(ep, out, 64, 50);
        for (int i = 0; i < n; i++) {
            int fd = out[i].data.fd;
            if (fd == listener_fd) {
                int c;
                while ((c = accept4(listener_fd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct epoll_event ce = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            ssize_t r;
            while ((r = recv(fd, buf, sizeof buf, 0)) > 0) send(fd, buf, r, MSG_NOSIGNAL);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
            }
        }
    }
    close(ep);
    return NULL;
}

static void *client(void *arg)
{
    long id = (long)arg;
    char msg[160], got[160];
    int failures = 0;
    for (int i = 0; i < per_thread; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)&server_addr, sizeof server_addr) < 0) { failures++; close(c); continue; }
        snprintf(msg, sizeof msg, "thread %ld connection %d %-70s", id, i, "x");
        size_t want = strlen(msg), have = 0;
        if (send(c, msg, want, 0) != (ssize_t)want) failures++;
        while (have < want) {
            ssize_t r = recv(c, got + have, want - have, 0);
            if (r <= 0) break;
            have += r;
        }
        if (have != want || memcmp(msg, got, want) != 0) failures++;
        close(c);
    }
    pthread_mutex_lock(&lock);
    client_failures += failures;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: %s ADDR [CONNECTIONS] [THREADS]\n", argv[0]); return 2; }
    int total = argc > 2 ? atoi(argv[2]) : 1000, threads = argc > 3 ? atoi(argv[3]) : 4;
    per_thread = total / threads;
    listener_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in any = { .sin_family = AF_INET };
    socklen_t len = sizeof any;
    if (bind(listener_fd, (struct sockaddr *)&any, sizeof any) || listen(listener_fd, 128)
        || getsockname(listener_fd, (struct sockaddr *)&any, &len)) { perror("listener"); return 2; }
    server_addr = any;
    inet_pton(AF_INET, argv[1], &server_addr.sin_addr);
    int baseline = open_fds();
    pthread_t srv, cl[64];
    pthread_create(&srv, NULL, server, NULL);
    for (long t = 0; t < threads; t++) pthread_create(&cl[t], NULL, client, (void *)t);
    for (int t = 0; t < threads; t++) pthread_join(cl[t], NULL);
    clients_done = 1;
    pthread_join(srv, NULL);
    int failures = 0;
    printf("%s %d connections over %d client threads, %d failures\n", client_failures ? "FAIL" : "ok  ",
           per_thread * threads, threads, client_failures);
    failures += client_failures != 0;
    int now = open_fds();
    printf("%s open fds back to baseline (%d, baseline %d)\n", now == baseline ? "ok  " : "FAIL", now, baseline);
    failures += now != baseline;
    close(listener_fd);
    return failures ? 1 : 0;
}
