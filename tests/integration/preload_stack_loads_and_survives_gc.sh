#!/usr/bin/env bash
# The first IPv4 socket loads the NativeAOT stack; a forced GC inside it completes; the runtime's own
# libc calls never come back into the shim (RTLD_DEEPBIND); kernel sockets keep working.
source "$(dirname "$0")/lib.sh"
LD_PRELOAD=$PRELOAD timeout 60 "$BUILD/tests/preload_probe" socket
