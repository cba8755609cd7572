#!/usr/bin/env bash
# A datagram the stack holds (batching) leaves before the program's next call that goes to the kernel: the
# sender writes to /dev/null right after it and then sleeps, with the flush thread's period at 10 minutes, so
# only the shim's flush before that write can deliver it in time (see preload_udp_send_then_sleep_delivers.sh).
MODE=write exec bash "$(dirname "$0")/preload_udp_send_then_sleep_delivers.sh"
