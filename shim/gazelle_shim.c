/* libgazelle.so: the preload library.
 *
 * It exports the POSIX socket calls unversioned (a glibc program binds `read@GLIBC_2.2.5`; only an
 * unversioned definition interposes it). Every call whose fd is not the stack's goes straight to libc
 * through dlsym(RTLD_NEXT) without entering .NET: a program that never opens an IPv4 socket never
 * starts the .NET runtime. The first IPv4 socket dlopens the NativeAOT stack library with
 * RTLD_DEEPBIND, so the runtime's own libc calls bind to libc and never come back here.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <linux/close_range.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gazelle_abi.h"
#include "hooks.h"
#include "program_signals.h"

#define GZ_EXPORT __attribute__((visibility("default")))

/* ---- libc's own definitions, resolved once at load ---------------------------------------- */

#define GZ_DECLARE_REAL(ret, name, params, args) static ret (*real_##name) params;
GZ_FD_HOOKS(GZ_DECLARE_REAL)
static int (*real_socket)(int, int, int);
static int (*real_fcntl)(int, int, ...);
static int (*real_fcntl64)(int, int, ...);
static int (*real_ioctl)(int, unsigned long, ...);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static int (*real_epoll_ctl)(int, int, int, struct epoll_event *);
static int (*real_epoll_create)(int);
static int (*real_epoll_create1)(int);
static int (*real_close)(int);
static int (*real_dup)(int);
static int (*real_poll)(struct pollfd *, nfds_t, int);
static int (*real_ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
static int (*real_select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
static int (*real_pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
static pid_t (*real_fork)(void);
static void (*real_closefrom)(int);

static void *resolve_next(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        /* Without libc's definition the call cannot work at all: fail loudly, once, at load. */
        fprintf(stderr, "gazelle: cannot resolve libc's %s: %s\n", name, dlerror());
    }
    return f;
}

__attribute__((constructor)) static void gz_resolve_libc(void)
{
#define GZ_RESOLVE(ret, name, params, args) real_##name = (ret(*) params)resolve_next(#name);
    GZ_FD_HOOKS(GZ_RESOLVE)
    real_socket = resolve_next("socket");
    real_fcntl = resolve_next("fcntl");
    real_fcntl64 = dlsym(RTLD_NEXT, "fcntl64"); /* glibc >= 2.28 only */
    if (!real_fcntl64) real_fcntl64 = real_fcntl;
    real_ioctl = resolve_next("ioctl");
    real_dup2 = resolve_next("dup2");
    real_dup3 = resolve_next("dup3");
    real_epoll_ctl = resolve_next("epoll_ctl");
    real_epoll_create = resolve_next("epoll_create");
    real_epoll_create1 = resolve_next("epoll_create1");
    real_close = resolve_next("close");
    real_dup = resolve_next("dup");
    real_poll = resolve_next("poll");
    real_ppoll = resolve_next("ppoll");
    real_select = resolve_next("select");
    real_pselect = resolve_next("pselect");
    real_fork = resolve_next("fork");
    real_closefrom = dlsym(RTLD_NEXT, "closefrom"); /* glibc >= 2.34 only */
}

/* ---- the stack's entry points (exports of libgazelle-stack.so, named gz_<call>) ----------- */

struct gz_stack_api {
    int (*init)(const struct gz_shim_info *info);
    int (*socket)(int domain, int type, int protocol);
    int (*close)(int fd);
    int (*dup)(int fd);
#define GZ_API_MEMBER(ret, name, params, args) ret (*name) params;
    GZ_FD_HOOKS(GZ_API_MEMBER)
    int (*fcntl)(int fd, int cmd, long arg);
    int (*ioctl)(int fd, unsigned long request, void *arg);
    int (*dup2)(int oldfd, int newfd);
    int (*dup3)(int oldfd, int newfd, int flags);
    int (*epoll_ctl)(int epfd, int op, int fd, struct epoll_event *event);
    int (*poll)(struct pollfd *fds, nfds_t n, int timeout_ms);
    int (*ppoll)(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask);
    int (*select)(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout);
    int (*pselect)(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *timeout, const sigset_t *mask);
    void (*before_fork)(void);
    int (*close_range)(unsigned first, unsigned last, int flags);
    void (*exit_flush)(void);
    long (*debug_collect)(void);
    long (*stats)(char *buf, size_t size);
};

static struct gz_stack_api api;
static unsigned char fd_table[GZ_FD_LIMIT];
static int epoll_kernel_fds[GZ_FD_LIMIT]; /* gazelle_abi.h */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static atomic_int stack_state; /* 0 not loaded, 1 running, -1 unavailable (kernel only) */

/* Depth of calls into the stack on this thread. A hooked call that arrives while it is non-zero
 * came from inside the stack (the runtime or the stack calling libc): it must go to libc, and it
 * is counted because with RTLD_DEEPBIND it should never happen. */
static __thread int in_stack __attribute__((tls_model("initial-exec")));
static atomic_long reentries;

static inline int fd_is_stack(int fd)
{
    return (unsigned)fd < GZ_FD_LIMIT && fd_table[fd] != GZ_FD_KERNEL;
}

/* A number the program closed that the layer keeps reserved for its next socket (gazelle_abi.h): for the
 * program it is a closed fd. Only asked once fd_is_stack(fd) holds. */
static inline int fd_is_pooled(int fd) { return fd_table[fd] == GZ_FD_POOLED; }

#define GZ_EBADF_IF_POOLED(fd)          \
    do {                                \
        if (fd_is_pooled(fd)) {         \
            errno = EBADF;              \
            return -1;                  \
        }                               \
    } while (0)

/* ---- kernel fds in epoll sets (gazelle_abi.h, epoll_kernel_fds) -----------------------------
 * epoll_wait over a set that holds stack sockets asks the kernel about its kernel fds with a zero-timeout
 * epoll_pwait (a system call per call, ~1 per request of nginx and wrk); a set that holds none need not ask.
 * The shim counts, per epoll it saw created, the kernel fds registered in it: every registration of a kernel
 * fd passes through epoll_ctl here or the stack's own calls (which count the same way). An epoll the count
 * cannot follow is given up: dup'd (registrations through the other number), shared with a fork child (the
 * child's registrations), created or closed behind the shim's back (a raw system call: not seen). */
static inline void epoll_count_add(int epfd, int d)
{
    if ((unsigned)epfd >= GZ_FD_LIMIT) return;
    int v = __atomic_load_n(&epoll_kernel_fds[epfd], __ATOMIC_RELAXED);
    while (v > 0 && !__atomic_compare_exchange_n(&epoll_kernel_fds[epfd], &v, v + d, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {}
}

static inline void epoll_count_set(int fd, int v)
{
    if ((unsigned)fd < GZ_FD_LIMIT && __atomic_load_n(&epoll_kernel_fds[fd], __ATOMIC_RELAXED) != v)
        __atomic_store_n(&epoll_kernel_fds[fd], v, __ATOMIC_SEQ_CST);
}

/* fd's number now names another file (closed, or dup2'd over) or fd was duplicated (give its epoll up). */
static inline void epoll_number_gone(int fd) { epoll_count_set(fd, 0); }
static inline void epoll_number_duplicated(int fd)
{
    if ((unsigned)fd < GZ_FD_LIMIT && __atomic_load_n(&epoll_kernel_fds[fd], __ATOMIC_RELAXED) > 0) epoll_count_set(fd, GZ_EPOLL_UNKNOWN);
}

GZ_EXPORT int epoll_create(int size)
{
    int r = real_epoll_create(size);
    if (r >= 0) epoll_count_set(r, 1);
    return r;
}

GZ_EXPORT int epoll_create1(int flags)
{
    int r = real_epoll_create1(flags);
    if (r >= 0) epoll_count_set(r, 1);
    return r;
}

static const char *stack_library_path(char *buf, size_t size)
{
    const char *env = getenv("GAZELLE_STACK_LIB");
    if (env && *env) return env;
    /* Default: beside this library. */
    Dl_info info;
    if (!dladdr((void *)&stack_library_path, &info) || !info.dli_fname) return "libgazelle-stack.so";
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash) return "libgazelle-stack.so";
    snprintf(buf, size, "%.*s/libgazelle-stack.so", (int)(slash - info.dli_fname), info.dli_fname);
    return buf;
}

/* Signals whose disposition belongs to the program. Starting the .NET runtime changes some of them
 * (it ignores SIGPIPE, for one): load_stack puts the program's back, so a preloaded program keeps
 * its SIGPIPE handler or default. The runtime's own signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
 * real-time ones used to suspend threads for the GC) are left to it. */
static const int program_signals[] = { SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM,
                                        SIGCHLD, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGWINCH, SIGURG };
#define GZ_PROGRAM_SIGNALS (sizeof program_signals / sizeof program_signals[0])

static void restore_program_signals(const struct sigaction *saved)
{
    for (size_t i = 0; i < GZ_PROGRAM_SIGNALS; i++) {
        struct sigaction now;
        if (gz_libc_sigaction(program_signals[i], NULL, &now) == 0 && (now.sa_handler != saved[i].sa_handler || now.sa_flags != saved[i].sa_flags))
            gz_libc_sigaction(program_signals[i], &saved[i], NULL);
    }
}

static int forked_child;

/* atexit: the stack lives in this process, so what its closed connections still owe their peers
 * (data, a FIN) would die with it, where the kernel would deliver it after the owner is gone. The
 * stack closes what is still open and drives the connections to the end (bounded) first. A forked
 * child never enters .NET (its stack_state is -1); _exit and fatal signals skip this, as they must. */
static void flush_at_exit(void)
{
    if (atomic_load(&stack_state) <= 0 || forked_child || !api.exit_flush) return;
    in_stack++;
    api.exit_flush();
    in_stack--;
}

/* Threads that the runtime and DPDK start (the finalizer, EAL's interrupt and worker threads) inherit
 * the signal mask of the thread that starts them: load_stack blocks for them every signal a program
 * can catch, so a signal sent to the process is always handled on one of the program's own threads,
 * as without the preload (ppoll/pselect/epoll_pwait's mask and EINTR depend on it). Left open: the
 * runtime's synchronous faults and SIGRTMIN, with which it suspends threads for the GC. */
static void block_program_signals(sigset_t *saved)
{
    sigset_t set;
    sigfillset(&set);
    static const int runtime_signals[] = { SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGSYS };
    for (size_t i = 0; i < sizeof runtime_signals / sizeof runtime_signals[0]; i++) sigdelset(&set, runtime_signals[i]);
    sigdelset(&set, SIGRTMIN);
    pthread_sigmask(SIG_BLOCK, &set, saved);
}

static void load_stack(void)
{
    char path_buf[4096];
    const char *path = stack_library_path(path_buf, sizeof path_buf);
    struct sigaction saved_signals[GZ_PROGRAM_SIGNALS];
    for (size_t i = 0; i < GZ_PROGRAM_SIGNALS; i++) gz_libc_sigaction(program_signals[i], NULL, &saved_signals[i]);
    sigset_t saved_mask;
    block_program_signals(&saved_mask);
    in_stack++;
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!lib) {
        in_stack--;
        pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
        fprintf(stderr, "gazelle: cannot load the stack (%s): sockets run on the kernel\n", dlerror());
        atomic_store(&stack_state, -1);
        return;
    }
#define GZ_BIND(member) *(void **)&api.member = dlsym(lib, "gz_" #member);
#define GZ_BIND_HOOK(ret, name, params, args) GZ_BIND(name)
    GZ_BIND(init)
    GZ_BIND(socket)
    GZ_BIND(close) GZ_BIND(dup)
    GZ_FD_HOOKS(GZ_BIND_HOOK)
    GZ_BIND(fcntl) GZ_BIND(ioctl) GZ_BIND(dup2) GZ_BIND(dup3) GZ_BIND(epoll_ctl)
    GZ_BIND(poll) GZ_BIND(ppoll) GZ_BIND(select) GZ_BIND(pselect) GZ_BIND(before_fork) GZ_BIND(close_range)
    GZ_BIND(exit_flush)
    GZ_BIND(debug_collect) GZ_BIND(stats)
    struct gz_shim_info info = { fd_table, GZ_FD_LIMIT, GZ_ABI_VERSION, gz_signal_counts_of_thread, epoll_kernel_fds };
    int rc = api.init ? api.init(&info) : -ENOSYS;
    in_stack--;
    restore_program_signals(saved_signals);
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
    if (rc < 0) {
        /* The stack printed its own one-line reason (no configuration, no DPDK, ...). */
        atomic_store(&stack_state, -1);
        return;
    }
    atomic_store(&stack_state, 1);
    atexit(flush_at_exit);
}

static inline int stack_running(void)
{
    int s = atomic_load_explicit(&stack_state, memory_order_acquire);
    if (s == 0) {
        pthread_once(&load_once, load_stack);
        s = atomic_load(&stack_state);
    }
    return s > 0;
}

/* Stack entry points return a result >= 0 or -errno. */
#define GZ_RESULT(expr)                     \
    do {                                    \
        in_stack++;                         \
        long gz_r_ = (long)(expr);          \
        in_stack--;                         \
        if (gz_r_ < 0) {                    \
            errno = (int)-gz_r_;            \
            return -1;                      \
        }                                   \
        return gz_r_;                       \
    } while (0)

static inline int came_from_stack(void)
{
    if (__builtin_expect(in_stack != 0, 0)) {
        atomic_fetch_add(&reentries, 1);
        return 1;
    }
    return 0;
}

/* ---- the fd-routed hooks, generated from hooks.h ------------------------------------------ */

/* ---- fork: the child never enters .NET ------------------------------------------------------
 * Only the forking thread survives a fork, so the child cannot run the .NET runtime (its GC and
 * other threads are gone; a lock may be held forever). In the child the shim itself answers for the
 * stack sockets it inherited ("orphans"): close() works (it frees the number), every other socket
 * call fails with ENOTCONN, poll/select report them POLLERR|POLLHUP (so nothing waits forever on
 * them), and new sockets go to the kernel. Pending sockets (given their kernel socket before the fork,
 * see fork below) and epoll sets are real kernel objects:
 * in the child they simply become the kernel's. The parent keeps its sockets and stack untouched.
 * A program the child execs starts fresh: the preload applies anew. */
static void become_forked_child(void)
{
    forked_child = 1;
    atomic_store(&stack_state, -1); /* new sockets: the kernel's */
    for (int fd = 0; fd < GZ_FD_LIMIT; fd++) {
        if (fd_table[fd] == GZ_FD_POOLED) real_close(fd); /* the parent's reserve: closed numbers for the child too */
        if (fd_table[fd] == GZ_FD_PENDING || fd_table[fd] == GZ_FD_EPOLL || fd_table[fd] == GZ_FD_POOLED) fd_table[fd] = GZ_FD_KERNEL;
    }
}

/* An inherited stack socket in a forked child: 1 = refused (errno set), 0 = let libc do it. */
static int orphan_refuses(int fd, const char *call)
{
    (void)fd;
    (void)call; /* close and dup are written out below */
    errno = ENOTCONN;
    return 1;
}

#define GZ_DEFINE_FD_HOOK(ret, name, params, args)                                   \
    GZ_EXPORT ret name params                                                        \
    {                                                                                \
        if (!came_from_stack() && fd_is_stack(fd)) {                                 \
            GZ_EBADF_IF_POOLED(fd);                                                  \
            if (__builtin_expect(forked_child, 0)) {                                 \
                if (orphan_refuses(fd, #name)) return -1;                            \
            } else if (api.name) {                                                   \
                GZ_RESULT(api.name args);                                            \
            }                                                                        \
        }                                                                            \
        return real_##name args;                                                     \
    }
GZ_FD_HOOKS(GZ_DEFINE_FD_HOOK)

/* ---- calls that need more than one fd test ------------------------------------------------ */

GZ_EXPORT int close(int fd)
{
    if (came_from_stack()) return real_close(fd);
    if (fd_is_stack(fd)) {
        GZ_EBADF_IF_POOLED(fd);
        epoll_number_gone(fd);
        if (__builtin_expect(forked_child, 0)) {
            fd_table[fd] = GZ_FD_KERNEL;
        } else if (api.close) {
            GZ_RESULT(api.close(fd));
        }
        return real_close(fd);
    }
    epoll_number_gone(fd);
    return real_close(fd);
}

GZ_EXPORT int dup(int fd)
{
    if (came_from_stack()) return real_dup(fd);
    if (fd_is_stack(fd)) {
        GZ_EBADF_IF_POOLED(fd);
        epoll_number_duplicated(fd);
        if (__builtin_expect(forked_child, 0)) {
            errno = ENOTCONN;
            return -1;
        }
        if (api.dup) GZ_RESULT(api.dup(fd));
        return real_dup(fd);
    }
    epoll_number_duplicated(fd);
    return real_dup(fd);
}

GZ_EXPORT int socket(int domain, int type, int protocol)
{
    int base_type = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    /* The stack's territory is IPv4 TCP and UDP; every other family and type is the kernel's. */
    if (!came_from_stack() && domain == AF_INET && (base_type == SOCK_STREAM || base_type == SOCK_DGRAM)
        && stack_running() && api.socket) {
        in_stack++;
        int r = api.socket(domain, type, protocol);
        in_stack--;
        if (r != GZ_PASS) {
            if (r < 0) {
                errno = -r;
                return -1;
            }
            return r;
        }
    }
    return real_socket(domain, type, protocol);
}

static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) epoll_number_duplicated(fd);
    if (!came_from_stack() && fd_is_stack(fd) && !forked_child && api.fcntl) {
        GZ_EBADF_IF_POOLED(fd);
        GZ_RESULT(api.fcntl(fd, cmd, (long)arg));
    }
    return real(fd, cmd, arg);
}

GZ_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *); /* every fcntl argument fits a pointer-sized slot */
    va_end(ap);
    return fcntl_common(real_fcntl, fd, cmd, arg);
}

GZ_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(real_fcntl64, fd, cmd, arg);
}

GZ_EXPORT int ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (!came_from_stack() && fd_is_stack(fd) && !forked_child && api.ioctl) {
        GZ_EBADF_IF_POOLED(fd);
        GZ_RESULT(api.ioctl(fd, request, arg));
    }
    return real_ioctl(fd, request, arg);
}

/* dup2/dup3 in a forked child: an orphan cannot be duplicated; one that is replaced is gone. */
static int orphan_dup_refused(int oldfd, int newfd)
{
    if (fd_is_stack(oldfd)) {
        errno = ENOTCONN;
        return 1;
    }
    if ((unsigned)newfd < GZ_FD_LIMIT) fd_table[newfd] = GZ_FD_KERNEL;
    return 0;
}

GZ_EXPORT int dup2(int oldfd, int newfd)
{
    if (oldfd != newfd && !came_from_stack()) {
        epoll_number_duplicated(oldfd);
        epoll_number_gone(newfd);
    }
    if (forked_child && !came_from_stack() && (fd_is_stack(oldfd) || fd_is_stack(newfd))) {
        if (orphan_dup_refused(oldfd, newfd)) return -1;
        return real_dup2(oldfd, newfd);
    }
    /* Either side may be the stack's: dup2 onto a stack socket closes that socket first; onto a pooled number
     * the program gets that number (the layer forgets it). */
    if (!came_from_stack() && (fd_is_stack(oldfd) || fd_is_stack(newfd)) && api.dup2) {
        if (fd_is_stack(oldfd)) GZ_EBADF_IF_POOLED(oldfd);
        GZ_RESULT(api.dup2(oldfd, newfd));
    }
    return real_dup2(oldfd, newfd);
}

GZ_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    if (oldfd != newfd && !came_from_stack()) {
        epoll_number_duplicated(oldfd);
        epoll_number_gone(newfd);
    }
    if (forked_child && !came_from_stack() && (fd_is_stack(oldfd) || fd_is_stack(newfd))) {
        if (orphan_dup_refused(oldfd, newfd)) return -1;
        return real_dup3(oldfd, newfd, flags);
    }
    if (!came_from_stack() && (fd_is_stack(oldfd) || fd_is_stack(newfd)) && api.dup3) {
        if (fd_is_stack(oldfd)) GZ_EBADF_IF_POOLED(oldfd);
        GZ_RESULT(api.dup3(oldfd, newfd, flags));
    }
    return real_dup3(oldfd, newfd, flags);
}

GZ_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    if (forked_child && fd_is_stack(fd)) {
        errno = ENOTCONN;
        return -1;
    }
    if (!came_from_stack() && (fd_is_stack(epfd) || fd_is_stack(fd)) && api.epoll_ctl) {
        if (fd_is_stack(epfd)) GZ_EBADF_IF_POOLED(epfd);
        if (fd_is_stack(fd)) GZ_EBADF_IF_POOLED(fd);
        GZ_RESULT(api.epoll_ctl(epfd, op, fd, event));
    }
    if (came_from_stack()) return real_epoll_ctl(epfd, op, fd, event);
    /* A kernel fd into a kernel epoll: counted before it can be ready there, uncounted once surely gone. */
    if (op == EPOLL_CTL_ADD) epoll_count_add(epfd, 1);
    int r = real_epoll_ctl(epfd, op, fd, event);
    if ((op == EPOLL_CTL_ADD && r < 0) || (op == EPOLL_CTL_DEL && r == 0)) epoll_count_add(epfd, -1);
    return r;
}

static int pollfds_hold_stack(const struct pollfd *fds, nfds_t n)
{
    for (nfds_t i = 0; i < n; i++)
        if (fd_is_stack(fds[i].fd)) return 1;
    return 0;
}

static int fdsets_hold_stack(int nfds, const fd_set *r, const fd_set *w, const fd_set *e)
{
    if (nfds > FD_SETSIZE) nfds = FD_SETSIZE;
    for (int fd = 0; fd < nfds; fd++)
        if (fd_is_stack(fd) && ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e)))) return 1;
    return 0;
}

/* poll in a forked child with orphans: they are always "ready" (POLLERR|POLLHUP), so never wait. */
static int orphan_poll(struct pollfd *fds, nfds_t n)
{
    int r = real_poll(fds, n, 0);
    if (r < 0) return r;
    int count = 0;
    for (nfds_t i = 0; i < n; i++) {
        if (fds[i].fd >= 0 && fd_is_stack(fds[i].fd)) fds[i].revents = POLLERR | POLLHUP;
        if (fds[i].revents) count++;
    }
    return count;
}

static int orphan_select(int nfds, fd_set *r, fd_set *w, fd_set *e)
{
    struct timeval zero = { 0, 0 };
    fd_set r0, w0;
    if (r) r0 = *r;
    if (w) w0 = *w;
    int k = real_select(nfds, r, w, e, &zero);
    if (k < 0) return k;
    if (nfds > FD_SETSIZE) nfds = FD_SETSIZE;
    int count = 0;
    for (int fd = 0; fd < nfds; fd++) {
        if (fd_is_stack(fd)) {
            if (r && FD_ISSET(fd, &r0)) FD_SET(fd, r);
            if (w && FD_ISSET(fd, &w0)) FD_SET(fd, w);
        }
        count += (r && FD_ISSET(fd, r)) + (w && FD_ISSET(fd, w)) + (e && FD_ISSET(fd, e));
    }
    return count;
}

GZ_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (forked_child && pollfds_hold_stack(fds, n)) return orphan_poll(fds, n);
    if (!came_from_stack() && pollfds_hold_stack(fds, n) && api.poll) GZ_RESULT(api.poll(fds, n, timeout));
    return real_poll(fds, n, timeout);
}

GZ_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask)
{
    if (forked_child && pollfds_hold_stack(fds, n)) return orphan_poll(fds, n);
    if (!came_from_stack() && pollfds_hold_stack(fds, n) && api.ppoll) GZ_RESULT(api.ppoll(fds, n, timeout, mask));
    return real_ppoll(fds, n, timeout, mask);
}

GZ_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout)
{
    if (forked_child && fdsets_hold_stack(nfds, r, w, e)) return orphan_select(nfds, r, w, e);
    if (!came_from_stack() && fdsets_hold_stack(nfds, r, w, e) && api.select) GZ_RESULT(api.select(nfds, r, w, e, timeout));
    return real_select(nfds, r, w, e, timeout);
}

GZ_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *timeout, const sigset_t *mask)
{
    if (forked_child && fdsets_hold_stack(nfds, r, w, e)) return orphan_select(nfds, r, w, e);
    if (!came_from_stack() && fdsets_hold_stack(nfds, r, w, e) && api.pselect) GZ_RESULT(api.pselect(nfds, r, w, e, timeout, mask));
    return real_pselect(nfds, r, w, e, timeout, mask);
}

/* close_range/closefrom close numbers the layer holds: its stack sockets (closed as close() would) and the
 * numbers it keeps reserved, which the kernel would then hand out again while the layer still counted them
 * as its own. The layer lets go of them first, then the kernel closes the range. (A raw close_range syscall
 * that bypasses these is not seen: the layer's reserve would be stale.) */
static int range_holds_ours(unsigned first, unsigned last)
{
    if (atomic_load(&stack_state) <= 0 || forked_child) return 0;
    for (unsigned fd = first; fd <= last && fd < GZ_FD_LIMIT; fd++)
        if (fd_table[fd] != GZ_FD_KERNEL) return 1;
    return 0;
}

static void epoll_numbers_gone(unsigned first, unsigned last)
{
    for (unsigned fd = first; fd <= last && fd < GZ_FD_LIMIT; fd++) epoll_number_gone((int)fd);
}

GZ_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
    if (!came_from_stack() && first <= last && !(flags & CLOSE_RANGE_CLOEXEC)) epoll_numbers_gone(first, last);
    if (!came_from_stack() && range_holds_ours(first, last) && api.close_range) {
        in_stack++;
        int r = api.close_range(first, last, flags);
        in_stack--;
        if (r < 0) {
            errno = -r;
            return -1;
        }
    }
    return (int)syscall(SYS_close_range, first, last, flags);
}

GZ_EXPORT void closefrom(int lowfd)
{
    if (!came_from_stack() && lowfd >= 0) epoll_numbers_gone((unsigned)lowfd, ~0U);
    if (!came_from_stack() && lowfd >= 0 && range_holds_ours((unsigned)lowfd, ~0U) && api.close_range) {
        in_stack++;
        api.close_range((unsigned)lowfd, ~0U, 0);
        in_stack--;
    }
    if (real_closefrom) real_closefrom(lowfd);
    else syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0);
}

/* _FORTIFY_SOURCE variants: check the buffer bound as glibc does, then take the ordinary path. */
GZ_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    if (fdslen / sizeof(*fds) < n) abort();
    return poll(fds, n, timeout);
}

GZ_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask, size_t fdslen)
{
    if (fdslen / sizeof(*fds) < n) abort();
    return ppoll(fds, n, timeout, mask);
}

GZ_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen) abort();
    return read(fd, buf, n);
}

GZ_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    if (n > buflen) abort();
    return recv(fd, buf, n, flags);
}

GZ_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *addr, socklen_t *len)
{
    if (n > buflen) abort();
    return recvfrom(fd, buf, n, flags, addr, len);
}

GZ_EXPORT pid_t fork(void)
{
    /* Lazy pending sockets (numbers only, no kernel socket yet) get their kernel socket first: the child
     * treats pending sockets as the kernel's. */
    if (atomic_load(&stack_state) > 0 && !forked_child && api.before_fork) {
        in_stack++;
        api.before_fork();
        in_stack--;
    }
    pid_t pid = real_fork();
    if (pid == 0 && atomic_load(&stack_state) > 0) become_forked_child(); /* never call .NET here */
    /* Parent and child share every epoll instance now: a registration either makes is not counted by the other. */
    for (int fd = 0; fd < GZ_FD_LIMIT; fd++)
        if (epoll_kernel_fds[fd] > 0) epoll_kernel_fds[fd] = GZ_EPOLL_UNKNOWN;
    return pid;
}

/* ---- diagnostics (used by tests and tools; not POSIX) -------------------------------------- */

/* Hooked calls that arrived from inside the stack (should stay 0 thanks to RTLD_DEEPBIND). */
GZ_EXPORT long gazelle_shim_reentries(void) { return atomic_load(&reentries); }

/* 1 when the NativeAOT stack is loaded and running, -1 when it could not start, 0 before first use. */
GZ_EXPORT int gazelle_stack_state(void) { return atomic_load(&stack_state); }

/* The stack's stats ("name value" lines, docs/stats.md) into buf, NUL-terminated; returns their full
 * length (as snprintf), or -1 with errno ENOTCONN when the stack serves nothing here. Never loads it. */
GZ_EXPORT long gazelle_stats(char *buf, size_t size)
{
    if (atomic_load(&stack_state) <= 0 || forked_child || !api.stats) {
        errno = ENOTCONN;
        return -1;
    }
    in_stack++;
    long r = api.stats(buf, size);
    in_stack--;
    if (r < 0) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

/* Forces a full garbage collection inside the stack; returns the gen-2 collection count or -1. */
GZ_EXPORT long gazelle_debug_collect(void)
{
    if (!stack_running() || !api.debug_collect) return -1;
    in_stack++;
    long r = api.debug_collect();
    in_stack--;
    return r;
}
