/* The one list of interposed calls whose first argument is an fd (an X-macro, as F-Stack does):
 * each becomes an unversioned export that goes to the stack when the stack owns the fd and to
 * libc otherwise. X(return type, name, parameters, arguments); the fd parameter is named `fd`.
 * Calls that need more than an fd test (socket, close, dup, poll, select, fcntl, ioctl, dup2, fork, ...)
 * are written out in gazelle_shim.c. */
#define GZ_FD_HOOKS(X) \
    X(int, bind, (int fd, const struct sockaddr *addr, socklen_t len), (fd, addr, len)) \
    X(int, listen, (int fd, int backlog), (fd, backlog)) \
    X(int, accept, (int fd, struct sockaddr *addr, socklen_t *len), (fd, addr, len)) \
    X(int, accept4, (int fd, struct sockaddr *addr, socklen_t *len, int flags), (fd, addr, len, flags)) \
    X(int, connect, (int fd, const struct sockaddr *addr, socklen_t len), (fd, addr, len)) \
    X(int, getsockname, (int fd, struct sockaddr *addr, socklen_t *len), (fd, addr, len)) \
    X(int, getpeername, (int fd, struct sockaddr *addr, socklen_t *len), (fd, addr, len)) \
    X(int, getsockopt, (int fd, int level, int name, void *val, socklen_t *len), (fd, level, name, val, len)) \
    X(int, setsockopt, (int fd, int level, int name, const void *val, socklen_t len), (fd, level, name, val, len)) \
    X(int, shutdown, (int fd, int how), (fd, how)) \
    X(ssize_t, read, (int fd, void *buf, size_t n), (fd, buf, n)) \
    X(ssize_t, readv, (int fd, const struct iovec *iov, int cnt), (fd, iov, cnt)) \
    X(ssize_t, write, (int fd, const void *buf, size_t n), (fd, buf, n)) \
    X(ssize_t, writev, (int fd, const struct iovec *iov, int cnt), (fd, iov, cnt)) \
    X(ssize_t, recv, (int fd, void *buf, size_t n, int flags), (fd, buf, n, flags)) \
    X(ssize_t, recvfrom, (int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *len), (fd, buf, n, flags, addr, len)) \
    X(ssize_t, recvmsg, (int fd, struct msghdr *msg, int flags), (fd, msg, flags)) \
    X(int, recvmmsg, (int fd, struct mmsghdr *vec, unsigned int n, int flags, struct timespec *timeout), (fd, vec, n, flags, timeout)) \
    X(ssize_t, send, (int fd, const void *buf, size_t n, int flags), (fd, buf, n, flags)) \
    X(ssize_t, sendto, (int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t len), (fd, buf, n, flags, addr, len)) \
    X(ssize_t, sendmsg, (int fd, const struct msghdr *msg, int flags), (fd, msg, flags)) \
    X(int, sendmmsg, (int fd, struct mmsghdr *vec, unsigned int n, int flags), (fd, vec, n, flags)) \
    X(ssize_t, sendfile, (int fd, int in_fd, off_t *offset, size_t n), (fd, in_fd, offset, n)) \
    X(ssize_t, sendfile64, (int fd, int in_fd, off_t *offset, size_t n), (fd, in_fd, offset, n)) \
    X(int, epoll_wait, (int fd, struct epoll_event *events, int max, int timeout), (fd, events, max, timeout)) \
    X(int, epoll_pwait, (int fd, struct epoll_event *events, int max, int timeout, const sigset_t *mask), (fd, events, max, timeout, mask))
