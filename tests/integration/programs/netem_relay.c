/* netem_relay: a user-space stand-in for `tc qdisc ... netem` where the kernel has no sch_netem (this
 * machine's kernel is built without CONFIG_NET_SCH_NETEM). It bridges two interfaces frame by frame
 * (AF_PACKET, both directions) and impairs every frame the way netem impairs a packet on egress:
 *
 *   netem_relay IF_A IF_B LOSS% REORDER% DUPLICATE% CORRUPT% DELAY_US SEED
 *
 * in netem's order (net/sched/sch_netem.c netem_enqueue): a duplicate is decided first (the copy is
 * impaired on its own), then loss, then corruption (one random bit of the frame flipped), then
 * reordering: REORDER% of the frames leave at once, the others after DELAY_US (netem's "reorder P
 * delay D" with gap 1), so frames that leave at once overtake the delayed ones. Each direction has
 * its own delay line. Runs until SIGTERM/SIGINT, then prints its counters on stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

#define SLOT_BYTES 2048 /* a 1500-byte MTU frame; larger ones are counted and dropped */
#define SLOTS 8192      /* per direction: netem's default limit is 1000 packets */

struct frame { uint64_t due_ns; uint32_t len; unsigned char data[SLOT_BYTES]; };

struct line { /* one direction: frames read from in_fd leave on out_fd */
    int in_fd, out_fd;
    struct frame *ring;
    uint32_t head, count;
    long received, sent, lost, duplicated, corrupted, immediate, delayed, overflow, oversize, send_failed;
};

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { (void)sig; stopping = 1; }

static uint64_t rng_state;
static uint64_t rnd(void) /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}
/* true with probability percent/100 */
static int chance(double percent) { return percent > 0 && (double)(rnd() >> 11) / (double)(1ULL << 53) * 100.0 < percent; }

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static int open_port(const char *ifname)
{
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    if (fd < 0) { perror("socket(AF_PACKET)"); exit(2); }
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = (int)if_nametoindex(ifname) };
    if (sll.sll_ifindex == 0) { fprintf(stderr, "netem_relay: no interface %s\n", ifname); exit(2); }
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) { perror("bind"); exit(2); }
    int one = 1, big = 8 << 20;
    /* Frames this relay sends on the interface must not come back as input. */
    if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0) { perror("PACKET_IGNORE_OUTGOING"); exit(2); }
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
    return fd;
}

static void transmit(struct line *l, const unsigned char *data, uint32_t len)
{
    for (int tries = 0; tries < 1000; tries++) {
        if (send(l->out_fd, data, len, 0) == (ssize_t)len) { l->sent++; return; }
        if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR) break;
        struct pollfd p = { .fd = l->out_fd, .events = POLLOUT };
        poll(&p, 1, 1);
    }
    l->send_failed++;
}

static void enqueue(struct line *l, const unsigned char *data, uint32_t len, double reorder, uint64_t delay_ns)
{
    if (delay_ns == 0 || chance(reorder)) { l->immediate++; transmit(l, data, len); return; }
    if (l->count == SLOTS) { l->overflow++; return; }
    struct frame *f = &l->ring[(l->head + l->count) % SLOTS];
    f->due_ns = now_ns() + delay_ns;
    f->len = len;
    memcpy(f->data, data, len);
    l->count++;
    l->delayed++;
}

/* Sends the delayed frames that are due (the delay is constant, so the line is in due order). */
static void release(struct line *l, uint64_t now)
{
    while (l->count > 0 && l->ring[l->head].due_ns <= now) {
        transmit(l, l->ring[l->head].data, l->ring[l->head].len);
        l->head = (l->head + 1) % SLOTS;
        l->count--;
    }
}

static void print(const char *name, const struct line *l)
{
    fprintf(stderr, "netem_relay %s: received %ld sent %ld lost %ld duplicated %ld corrupted %ld immediate %ld delayed %ld"
                    " overflow %ld oversize %ld send_failed %ld\n",
            name, l->received, l->sent, l->lost, l->duplicated, l->corrupted, l->immediate, l->delayed, l->overflow, l->oversize,
            l->send_failed);
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: %s IF_A IF_B LOSS%% REORDER%% DUPLICATE%% CORRUPT%% DELAY_US SEED\n", argv[0]);
        return 2;
    }
    double loss = atof(argv[3]), reorder = atof(argv[4]), duplicate = atof(argv[5]), corrupt = atof(argv[6]);
    uint64_t delay_ns = strtoull(argv[7], NULL, 10) * 1000ULL;
    rng_state = strtoull(argv[8], NULL, 10) * 0x9E3779B97F4A7C15ULL + 1;
    int a = open_port(argv[1]), b = open_port(argv[2]);
    struct line lines[2] = { { .in_fd = a, .out_fd = b }, { .in_fd = b, .out_fd = a } };
    for (int i = 0; i < 2; i++)
        if (!(lines[i].ring = malloc(sizeof(struct frame) * SLOTS))) { perror("malloc"); return 2; }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    unsigned char buf[65536];
    fprintf(stderr, "netem_relay %s <-> %s: loss %g%% reorder %g%% duplicate %g%% corrupt %g%% delay %llu us\n", argv[1], argv[2],
            loss, reorder, duplicate, corrupt, (unsigned long long)(delay_ns / 1000));
    while (!stopping) {
        uint64_t now = now_ns();
        uint64_t next = UINT64_MAX;
        for (int i = 0; i < 2; i++) {
            release(&lines[i], now);
            if (lines[i].count > 0 && lines[i].ring[lines[i].head].due_ns < next) next = lines[i].ring[lines[i].head].due_ns;
        }
        struct pollfd p[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };
        struct timespec wait = { 0, 100 * 1000000L }, *tw = &wait;
        if (next != UINT64_MAX) {
            uint64_t d = next > now ? next - now : 0;
            wait.tv_sec = (time_t)(d / 1000000000ULL);
            wait.tv_nsec = (long)(d % 1000000000ULL);
        }
        if (ppoll(p, 2, tw, NULL) < 0 && errno != EINTR) { perror("ppoll"); return 2; }
        for (int i = 0; i < 2; i++) {
            struct line *l = &lines[i];
            for (int burst = 0; burst < 64; burst++) {
                ssize_t n = recv(l->in_fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n < 0) break;
                l->received++;
                if (n > SLOT_BYTES) { l->oversize++; continue; }
                int copies = 1;
                if (chance(duplicate)) { copies = 2; l->duplicated++; }
                for (int c = 0; c < copies; c++) {
                    if (chance(loss)) { l->lost++; continue; }
                    unsigned char frame[SLOT_BYTES];
                    memcpy(frame, buf, (size_t)n);
                    if (chance(corrupt)) {
                        frame[rnd() % (uint64_t)n] ^= (unsigned char)(1u << (rnd() % 8));
                        l->corrupted++;
                    }
                    enqueue(l, frame, (uint32_t)n, reorder, delay_ns);
                }
            }
        }
    }
    print(argv[1], &lines[0]);
    print(argv[2], &lines[1]);
    return 0;
}
