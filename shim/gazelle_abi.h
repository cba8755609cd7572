/* The contract between the preload shim (C) and the NativeAOT stack library (C#).
 * Keep in step with aot/ShimAbi.cs. */
#ifndef GAZELLE_ABI_H
#define GAZELLE_ABI_H

/* Who serves an fd, one byte per fd in a table the shim owns and the stack writes.
 * Every non-zero kind is routed to the stack; zero goes straight to libc. */
enum gz_fd_kind {
    GZ_FD_KERNEL = 0,   /* not ours: libc, without entering .NET */
    GZ_FD_SOCKET = 1,   /* a socket served by the stack */
    GZ_FD_PENDING = 2,  /* an IPv4 socket not yet placed: bind/connect decide stack or kernel */
    GZ_FD_EPOLL = 3,    /* an epoll instance that watches stack sockets */
    GZ_FD_POOLED = 4,   /* closed by the program; the layer keeps the number reserved for its next socket:
                         * every call on it fails as on a closed fd (EBADF), dup2/dup3 onto it go to the
                         * stack (it forgets the number), a forked child closes it */
};

/* Size of the fd table: fds at or above it are never the stack's. */
#define GZ_FD_LIMIT 65536

/* Returned by the stack's socket() when the call is not its to serve: the shim calls libc. */
#define GZ_PASS (1 << 30)

/* Per thread, the program's signal handlers that thread ran, counted by the shim's trampoline in one
 * word: low 32 bits all of them, high 32 bits those installed without SA_RESTART. A blocking call
 * compares it between its wait rounds to honour SA_RESTART without a system call. */
struct gz_signal_counts {
    unsigned long long packed;
};

/* Per fd number, what the shim knows of the kernel epoll instance there (GZ_FD_LIMIT ints): 0 = nothing
 * (not an epoll the shim saw created, or one it cannot account for); n >= 1 = an epoll created through the
 * shim with at most n - 1 kernel fds registered in it (ADD counts, a successful DEL uncounts; a registered fd
 * that is closed leaves the count high). Negative = given up (dup'd, inherited by a fork child): like 0.
 * Exactly 1 lets epoll_wait skip asking the kernel when the stack has nothing (no kernel fd can be ready). */
#define GZ_EPOLL_UNKNOWN (-(1 << 30))

/* What the shim hands the stack at start. */
struct gz_shim_info {
    unsigned char *fd_table;  /* GZ_FD_LIMIT bytes */
    int fd_limit;
    int abi_version;
    struct gz_signal_counts *(*signal_counts)(void);  /* the calling thread's counts */
    int *epoll_kernel_fds;    /* GZ_FD_LIMIT ints, as above */
};
#define GZ_ABI_VERSION 3

#endif
