# Sourceable by the benchmark scripts: the host's placement of this VM's two CPUs while each run goes on
# (bench/e2e/programs/vcpu_probe.c says what is sampled and why). On these KVM guests the round trip of a
# cache line between CPU 0 and CPU 1 is either ~60-80 ns ("near": the host runs the two vCPUs on cores that
# share a last-level cache) or ~450-490 ns ("far"), switching every few seconds to minutes; the kernel's
# figures and ours both move with it (docs/benchmark-variance.md).

# Below this round trip (ns) a sample counts as "near"; the two levels seen here are ~70 and ~470 ns.
HOST_NEAR_NS=${HOST_NEAR_NS:-200}
host_sampler_pid=""

# host_sampler_start DIR: builds the probe into DIR and samples every 250 ms into DIR/host.log until
# host_sampler_stop. Without a C compiler or a second CPU, or with HOST_PROBE=0, the log stays empty and
# summaries say "unknown". A sample takes ~0.5 ms of each CPU from the benchmark (0.2-0.4% of a run).
host_sampler_start() {
    host_log=$1/host.log
    : >"$host_log"
    [ "$(nproc)" -ge 2 ] && [ "${HOST_PROBE:-1}" != 0 ] || return 0
    cc -O2 -Wall -Wextra -Werror -pthread -o "$1/vcpu_probe" "$ROOT/bench/e2e/programs/vcpu_probe.c" 2>/dev/null || return 0
    "$1/vcpu_probe" 250 >"$host_log" 2>/dev/null &
    host_sampler_pid=$!
}

host_sampler_stop() {
    [ -n "$host_sampler_pid" ] || return 0
    kill "$host_sampler_pid" 2>/dev/null || true
    wait "$host_sampler_pid" 2>/dev/null || true
    host_sampler_pid=""
}

host_now() { date +%s.%3N; }

# host_state FROM TO: the samples taken between the two times (host_now) summed up in one word and figures:
# "near", "far" or "near 40%" (mixed), then the median round trip, the slowest CPU's median loop time
# (~2.0 ns/iteration at full speed here, ~2.8 with the host core's other hyperthread busy) and the steal.
host_state() {
    awk -v a="$1" -v b="$2" -v near="$HOST_NEAR_NS" '
        $1 >= a && $1 <= b && $2 == "rt" { n++; rt[n] = $3; if ($3 < near) k++; c[n] = ($5 > $7 ? $5 : $7); st += $9 + $11 }
        function med(v, m,   i, j, t) { for (i = 2; i <= m; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t } return v[int((m + 1) / 2)] }
        END {
            if (!n) { print "unknown"; exit }
            w = (k == n) ? "near" : (k == 0) ? "far" : sprintf("near %d%%", 100 * k / n)
            printf "%s (rt %d ns, cpu %.2f ns, steal %d ms)\n", w, med(rt, n), med(c, n), st
        }' "$host_log"
}

# A run whose slower CPU's median loop time is above this (ns) ran on a host core shared with a busy
# hyperthread (1.97 ns at full speed here, 2.6-3.4 shared).
HOST_SLOW_NS=${HOST_SLOW_NS:-2.3}

# host_tally: counts the host_state summaries found in its input: "N near, N far, N mixed, N unknown; a CPU
# slowed in N".
host_tally() {
    grep -oE '(near [0-9]+%|near|far|unknown)( \(rt [0-9]+ ns, cpu [0-9.]+ ns)?' | awk -v slow="$HOST_SLOW_NS" '
        { w = ($1 == "near" && $2 ~ /%$/) ? "mixed" : $1; n[w]++ }
        /cpu/ { for (i = 1; i < NF; i++) if ($i == "cpu" && $(i + 1) + 0 > slow) s++ }
        END { printf "%d near, %d far, %d mixed, %d unknown; a CPU slowed in %d\n", n["near"], n["far"], n["mixed"], n["unknown"], s }'
}

# host_wait WANT: with WANT "near" or "far", waits (up to HOST_WAIT_S, default 120 s) until the last two
# samples are in that state; returns at once without a sampler or without WANT.
host_wait() {
    [ -n "$1" ] && [ -n "$host_sampler_pid" ] || return 0
    local end=$((SECONDS + ${HOST_WAIT_S:-120})) s
    while [ "$SECONDS" -lt "$end" ]; do
        s=$(tail -n 2 "$host_log" | awk -v near="$HOST_NEAR_NS" '$2 == "rt" { n++; if ($3 < near) k++ }
            END { if (n == 2) print (k == 2 ? "near" : (k == 0 ? "far" : "")) }')
        [ "$s" = "$1" ] && return 0
        sleep 0.25
    done
    echo "host_wait: the host did not become $1 within ${HOST_WAIT_S:-120} s; running anyway" >&2
}
