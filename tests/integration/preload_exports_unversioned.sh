#!/usr/bin/env bash
# libgazelle.so must export the interposed calls unversioned: a glibc program asks for
# socket@GLIBC_2.2.5, and only an unversioned definition interposes it.
source "$(dirname "$0")/lib.sh"
syms=$(nm -D --defined-only "$PRELOAD")
for call in socket bind listen accept accept4 connect getsockname getpeername getsockopt setsockopt shutdown \
            close read readv write writev recv recvfrom recvmsg recvmmsg send sendto sendmsg sendmmsg sendfile \
            fcntl fcntl64 ioctl dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait poll ppoll select pselect fork close_range closefrom \
            __read_chk __recv_chk __recvfrom_chk __poll_chk sigaction signal siginterrupt; do
    grep -qE " T ${call}\$" <<<"$syms" || fail "$call is not exported unversioned: $(echo "$syms" | grep -E " ${call}(@|\$)" || echo missing)"
done
echo "all interposed calls exported unversioned"
