#!/usr/bin/env bash
# A preloaded program that never opens an IPv4 socket pays nothing: no .NET runtime, no stack library.
source "$(dirname "$0")/lib.sh"
LD_PRELOAD=$PRELOAD "$BUILD/tests/preload_probe" files
# An unmodified Debian program doing file work only: python3 counts its own threads and maps.
out=$(LD_PRELOAD=$PRELOAD python3 -c '
import os, tempfile
with tempfile.NamedTemporaryFile("w+") as f:
    f.write("x" * 1000); f.flush(); f.seek(0); assert len(f.read()) == 1000
r, w = os.pipe(); os.write(w, b"abc"); assert os.read(r, 3) == b"abc"
maps = open("/proc/self/maps").read()
print(len(os.listdir("/proc/self/task")), "libgazelle-stack" in maps, "libgazelle.so" in maps)
')
[ "$out" = "1 False True" ] || fail "python3 file work under preload: threads/stack-mapped/shim-mapped = $out (want: 1 False True)"
echo "python3 file work: $out"
