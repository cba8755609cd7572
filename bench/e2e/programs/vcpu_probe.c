/* Where the host put this VM's CPUs, sampled while a benchmark runs (issue 6: our figures, and the
 * kernel's, land at two levels run to run on the same build).
 * Each sample prints one line:
 *   <unix time, s.ms> rt <ns> cpu0 <ns> cpu1 <ns> steal0 <ms> steal1 <ms>
 * - rt: round trip of one cache line between a thread on CPU 0 and one on CPU 1 (best of short chunks, so
 *   a preempted chunk does not count). On these 2-vCPU KVM guests it is either ~60-80 ns (the two vCPUs run
 *   on host cores that share a last-level cache) or ~450-490 ns (they do not: every line that crosses
 *   between the two processes of a benchmark costs ~200 ns more each way). The host moves between the two
 *   every few seconds to minutes; nothing in the guest chooses it.
 * - cpuN: nanoseconds per iteration of a dependent integer loop pinned on CPU N (best of short windows):
 *   the same loop runs ~40% slower when the host core's other hyperthread is busy with another guest.
 * - stealN: steal time of CPU N since the previous sample, in ms (/proc/stat): the host ran something else
 *   on that vCPU's place.
 * Sampling costs about a millisecond of each CPU per sample.
 *   vcpu_probe [period-ms [samples]]      (default: one sample; period 0 = one sample) */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { Chunks = 20, ChunkTrips = 20, Windows = 5, WindowIters = 30000 };

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static inline void relax(void)
{
    __builtin_ia32_pause();
}

/* A line each side writes in turn: odd values from the CPU 0 side, even ones from the CPU 1 side. */
static _Alignas(64) _Atomic uint64_t line;

static void *answer(void *arg)
{
    (void)arg;
    pin(1);
    for (uint64_t i = 0; i < (uint64_t)Chunks * ChunkTrips; i++) {
        while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 1)
            relax();
        atomic_store_explicit(&line, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

/* Best chunk's round trip in ns, or -1 when CPU 1 cannot be used. */
static double round_trip(void)
{
    pthread_t t;
    atomic_store(&line, 0);
    if (pthread_create(&t, NULL, answer, NULL) != 0)
        return -1;
    pin(0);
    double best = 1e18;
    uint64_t i = 0;
    for (int c = 0; c < Chunks; c++) {
        double t0 = now_ns();
        for (int k = 0; k < ChunkTrips; k++, i++) {
            atomic_store_explicit(&line, 2 * i + 1, memory_order_release);
            while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 2)
                relax();
        }
        double d = (now_ns() - t0) / ChunkTrips;
        if (d < best)
            best = d;
    }
    pthread_join(t, NULL);
    return best;
}

/* Best window's ns per iteration of six dependent xor-add chains, on CPU cpu. */
static double core_speed(int cpu)
{
    if (pin(cpu) != 0)
        return -1;
    double best = 1e18;
    for (int w = 0; w < Windows; w++) {
        uint64_t a = w, b = w + 1, c = w + 2, d = w + 3, e = w + 4, f = w + 5;
        double t0 = now_ns();
        for (int i = 0; i < WindowIters; i++) {
            a += b ^ c; b += c ^ d; c += d ^ e; d += e ^ f; e += f ^ a; f += a ^ b;
            a = a << 1 | a >> 63;
            c = c << 3 | c >> 61;
        }
        double t = (now_ns() - t0) / WindowIters;
        __asm__ volatile("" : : "r"(a), "r"(b), "r"(c), "r"(d), "r"(e), "r"(f));
        if (t < best)
            best = t;
    }
    return best;
}

/* Steal ticks (USER_HZ) of cpu0 and cpu1 from /proc/stat; 0 when unreadable. */
static void steal_ticks(unsigned long long out[2])
{
    out[0] = out[1] = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return;
    char buf[512];
    while (fgets(buf, sizeof buf, f) != NULL) {
        int cpu;
        unsigned long long v[8];
        if (sscanf(buf, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6], &v[7]) == 9 && cpu >= 0 && cpu < 2)
            out[cpu] = v[7];
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    long period = argc > 1 ? atol(argv[1]) : 0;
    long samples = argc > 2 ? atol(argv[2]) : (period > 0 ? -1 : 1);
    double tick_ms = 1000.0 / sysconf(_SC_CLK_TCK);
    unsigned long long prev[2], cur[2];
    steal_ticks(prev);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (long n = 0; samples < 0 || n < samples; n++) {
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        double rt = round_trip();
        double c0 = core_speed(0), c1 = core_speed(1);
        steal_ticks(cur);
        printf("%lld.%03ld rt %.0f cpu0 %.3f cpu1 %.3f steal0 %.0f steal1 %.0f\n", (long long)wall.tv_sec,
               wall.tv_nsec / 1000000, rt, c0, c1, (cur[0] - prev[0]) * tick_ms, (cur[1] - prev[1]) * tick_ms);
        memcpy(prev, cur, sizeof prev);
        if (period > 0)
            usleep((useconds_t)period * 1000);
    }
    return 0;
}
