#!/usr/bin/env bash
# Every member of the shim's struct gz_stack_api (shim/gazelle_shim.c, the fd hooks of shim/hooks.h
# included) has its gz_<member> export in the NativeAOT stack library, so no call the shim routes
# to the stack silently falls back to a null entry.
source "$(dirname "$0")/lib.sh"
lib=$BUILD/libgazelle-stack.so
[ -f "$lib" ] || fail "missing $lib (run make)"
{
    echo init; echo socket
    grep -o 'X([a-z_]*, [a-z0-9_]*' "$ROOT/shim/hooks.h" | awk '{print $2}'
    sed -n '/^struct gz_stack_api {/,/^};/p' "$ROOT/shim/gazelle_shim.c" | grep -o '(\*[a-z0-9_]*)' | tr -d '(*)' | grep -vx name
} | sort -u | sed 's/^/gz_/' >"$TEST_TMP/want"
nm -D --defined-only "$lib" | grep -o ' gz_[a-z0-9_]*' | tr -d ' ' | sort -u >"$TEST_TMP/have"
missing=$(comm -23 "$TEST_TMP/want" "$TEST_TMP/have")
[ -z "$missing" ] || fail "exports missing from $lib: $missing"
[ "$(wc -l <"$TEST_TMP/want")" -ge 40 ] || fail "parsed too few api members from the shim ($(wc -l <"$TEST_TMP/want"))"
echo "all $(wc -l <"$TEST_TMP/want") gz_ entry points are exported"
