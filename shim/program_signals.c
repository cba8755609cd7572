/* The program's signal handlers, counted per thread.
 *
 * Linux ends a blocking accept/connect/recv/send with EINTR when a signal handler runs during it,
 * unless the handler was installed with SA_RESTART (and the socket has no timeout): then the call
 * goes on (signal(7)). A blocking call on a stack socket busy-polls in user space, where nothing
 * interrupts it, so the stack must learn that a handler ran, and with which flags. Holding signals
 * and asking the kernel (sigprocmask, sigpending) costs system calls on every call that waits; instead
 * the program's handlers are installed behind a trampoline that bumps a per-thread count before
 * calling them, and a waiting call compares the count between rounds: two memory reads.
 *
 * The program sees its own dispositions: sigaction/signal report what it installed, the kernel holds
 * the trampoline with the program's flags and mask (so its own system calls restart or not as
 * before). Left to libc as they are: SIG_DFL and SIG_IGN, SIGKILL/SIGSTOP, and the signals the .NET
 * runtime relies on (synchronous faults, SIGRTMIN). The runtime and DPDK, bound to libc by
 * RTLD_DEEPBIND, never come through here.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "gazelle_abi.h"
#include "program_signals.h"

#define GZ_EXPORT __attribute__((visibility("default")))
#define GZ_MAX_SIGNAL 65

static __thread struct gz_signal_counts counts __attribute__((tls_model("initial-exec")));

/* What the program installed, for the signals whose kernel handler is the trampoline. */
static struct sigaction program_action[GZ_MAX_SIGNAL];
static volatile sig_atomic_t behind_trampoline[GZ_MAX_SIGNAL];

static int (*libc_sigaction)(int, const struct sigaction *, struct sigaction *);

struct gz_signal_counts *gz_signal_counts_of_thread(void)
{
    return &counts;
}

int gz_libc_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (!libc_sigaction) {
        libc_sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
        if (!libc_sigaction) {
            errno = ENOSYS;
            return -1;
        }
    }
    return libc_sigaction(sig, act, old);
}

static int countable(int sig)
{
    switch (sig) {
    case SIGKILL: case SIGSTOP:                                     /* cannot be caught */
    case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE: case SIGTRAP: case SIGABRT: case SIGSYS:
        return 0;                                                   /* synchronous faults: the runtime's */
    default:
        return sig > 0 && sig < GZ_MAX_SIGNAL && sig != SIGRTMIN;   /* SIGRTMIN: the GC's thread suspension */
    }
}

static void trampoline(int sig, siginfo_t *info, void *context)
{
    const struct sigaction *a = &program_action[sig];
    int flags = a->sa_flags;
    void (*handler)(int) = a->sa_handler;
    void (*action)(int, siginfo_t *, void *) = a->sa_sigaction;
    /* One atomic add: a handler may interrupt another on this thread. */
    __atomic_fetch_add(&counts.packed, 1ULL + ((flags & SA_RESTART) ? 0 : 1ULL << 32), __ATOMIC_RELAXED);
    if (flags & SA_RESETHAND) {
        /* The kernel has put SIG_DFL back on delivery; the program's view follows. */
        behind_trampoline[sig] = 0;
        program_action[sig].sa_handler = SIG_DFL;
        program_action[sig].sa_flags = 0;
    }
    if (flags & SA_SIGINFO) action(sig, info, context);
    else if (handler != SIG_DFL && handler != SIG_IGN) handler(sig);
}

GZ_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (!countable(sig)) return gz_libc_sigaction(sig, act, old);
    struct sigaction previous;
    if (gz_libc_sigaction(sig, NULL, &previous) != 0) return -1;
    if (behind_trampoline[sig]) previous = program_action[sig];
    if (act) {
        int handles = (act->sa_flags & SA_SIGINFO) || (act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN);
        if (!handles) {
            if (gz_libc_sigaction(sig, act, NULL) != 0) return -1;
            behind_trampoline[sig] = 0;
        } else {
            /* Store the program's action before the kernel can deliver to the trampoline. */
            behind_trampoline[sig] = 0;
            struct sigaction kernel_side = *act;
            kernel_side.sa_sigaction = trampoline;
            kernel_side.sa_flags |= SA_SIGINFO;
            program_action[sig] = *act;
            if (gz_libc_sigaction(sig, &kernel_side, NULL) != 0) return -1;
            behind_trampoline[sig] = 1;
        }
    }
    if (old) *old = previous;
    return 0;
}

/* glibc's signal() installs through its internal sigaction, which interposition cannot see: it is
 * redone here with its BSD semantics (SA_RESTART, the signal blocked while its handler runs). */
GZ_EXPORT __sighandler_t signal(int sig, __sighandler_t handler)
{
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
    /* sa_handler and sa_sigaction share storage: whichever the old action set is returned. */
    return old.sa_handler;
}

/* siginterrupt(sig, 1) clears SA_RESTART, (sig, 0) sets it; glibc does it through its internal sigaction. */
GZ_EXPORT int siginterrupt(int sig, int interrupt)
{
    struct sigaction act;
    if (sigaction(sig, NULL, &act) != 0) return -1;
    if (interrupt) act.sa_flags &= ~SA_RESTART;
    else act.sa_flags |= SA_RESTART;
    return sigaction(sig, &act, NULL);
}
