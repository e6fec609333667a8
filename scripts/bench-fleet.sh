#!/usr/bin/env bash
# bench-fleet.sh: synprobe audit --targets over 1,000 lab addresses, and
# the memory of a --targets run over 1,000 and 100,000 targets, against
# the requirements of issue 12:
#
#   full audit of 1,000 lab addresses: under 60 s, peak RSS under 1 GiB,
#   the target never switches on SYN cookies (TcpExtSyncookiesSent stays
#   0), and the verdicts of a sample equal to auditing each one alone;
#   the memory of a --targets run does not grow with the number of
#   targets (1k and 100k).
#
# The lab is internal/scalelab with Plan.Serve (scalelabctl up PREFIX
# serve): one namespace's Linux kernel answers every address of PREFIX,
# its open ports (80 among them) served by an application that answers a
# request and closes, as a web server does. The audit runs from the lab's
# probe namespace (--netns). Its first two eighths are plain hosts: the
# 1,000 addresses are taken from there (x.x.x.0 and .255 left out).
#
#   scripts/bench-fleet.sh
#   FLEET_CONCURRENCY=200 FLEET_SAMPLE=10 scripts/bench-fleet.sh
#
# The memory runs are handshakes to closed ports of the same hosts (a SYN,
# a RST: every target runs, and fast): 1,000 and FLEET_MANY (100,000)
# targets at FLEET_MEM_CONCURRENCY at once; the larger one takes a few
# minutes. Needs root; jq is Debian's, installed here if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
PREFIX=${FLEET_PREFIX:-10.93.0.0/20}
N=${FLEET_TARGETS:-1000}
CONCURRENCY=${FLEET_CONCURRENCY:-100}
SAMPLE=${FLEET_SAMPLE:-5}
MANY=${FLEET_MANY:-100000}
MEM_CONCURRENCY=${FLEET_MEM_CONCURRENCY:-64}

if [ "$(id -u)" != 0 ]; then
	echo "bench-fleet: skipped: needs root (network namespaces, AF_PACKET)"
	exit 0
fi
if ! command -v jq >/dev/null; then
	echo "bench-fleet: installing jq"
	apt-get install -y jq >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y jq >/dev/null 2>&1; } ||
		{ echo "bench-fleet: jq could not be installed"; exit 1; }
fi

. scripts/scalelab.sh
scalelab_start bench-fleet "$PREFIX" serve
read -r PNS TNS _ <"$work/lab.out"
echo "scale lab: $PREFIX answered in namespace $TNS (port 80 served); probing from $PNS"
# A counter of the SYNs the target receives, in the lab's own table.
ip netns exec "$TNS" nft add rule ip scalelab input 'tcp flags & (syn|ack) == syn counter'

calc() { awk "BEGIN { print $1 }"; }
syns() { ip netns exec "$TNS" nft list chain ip scalelab input | awk '/counter packets/ { print $(NF-2) }'; }
tcpext() { ip netns exec "$TNS" awk -v k="$1" '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == k) c = i; h = 1 } else print $c }' /proc/net/netstat; }
# timed OUT CMD...: runs CMD under /usr/bin/time; sets wall (s), rss (KiB), rc.
timed() {
	local out=$1
	shift
	rc=0
	/usr/bin/time -f '%e %M' -o "$work/time" "$@" 2>"$out" || rc=$?
	# the last line: time puts "Command exited with non-zero status N" before it
	read -r wall rss < <(tail -n 1 "$work/time")
}
verdicts() { jq -r '.results[] | "\(.name) \(.verdict)"' | sort; }

# The targets: host addresses of the lab's first quarter, port 80.
base=$(echo "${PREFIX%/*}" | awk -F. '{ print ($1 * 256 + $2) * 65536 + $3 * 256 }')
addr() { local v=$1; echo "$((v >> 24 & 255)).$((v >> 16 & 255)).$((v >> 8 & 255)).$((v & 255))"; }
hosts=()
for ((v = base; ${#hosts[@]} < N; v++)); do
	((v & 255)) && (((v & 255) != 255)) && hosts+=("$(addr $v)")
done
printf '%s:80\n' "${hosts[@]}" >"$work/targets.txt"

# One address alone: what an audit of one costs.
s0=$(syns)
timed "$work/one.err" "$work/synprobe" audit --netns "$PNS" -f jsonl -o "$work/one.jsonl" "${hosts[0]}:80"
one_wall=$wall one_syns=$(($(syns) - s0))
echo "one address: audit in ${one_wall} s, ${one_syns} SYNs, exit $rc, peak RSS $((rss / 1024)) MiB"

# The run: every address.
sleep 2
cookies0=$(tcpext SyncookiesSent) over0=$(tcpext ListenOverflows) s0=$(syns)
timed "$work/run.err" "$work/synprobe" audit --netns "$PNS" --targets "$work/targets.txt" --concurrency "$CONCURRENCY" -o "$work/run.jsonl"
run_wall=$wall run_rss=$rss run_rc=$rc
sleep 3 # what the target still sends after the run counts too
cookies=$(($(tcpext SyncookiesSent) - cookies0)) over=$(($(tcpext ListenOverflows) - over0)) run_syns=$(($(syns) - s0))
sed 's/^/    /' "$work/run.err"
lines=$(wc -l <"$work/run.jsonl")
errors=$(jq -r 'select(any(.results[]; .verdict == "error")) | .target.address' "$work/run.jsonl" | wc -l)
failed=$(jq -r 'select(any(.results[]; .verdict == "fail")) | .target.address' "$work/run.jsonl" | wc -l)
echo "    failed checks by name (the run):"
jq -r '.results[] | select(.verdict == "fail" or .verdict == "error") | "\(.name) \(.verdict)"' "$work/run.jsonl" | sort | uniq -c | sort -rn | head -8 | sed 's/^/      /'

# The sample: addresses spread over the list, each audited alone.
equal=0
for ((i = 0; i < SAMPLE; i++)); do
	h=${hosts[$((i * N / SAMPLE))]}
	"$work/synprobe" audit --netns "$PNS" -f jsonl -o "$work/alone.jsonl" "$h:80" 2>/dev/null || true
	jq -c --arg t "$h:80" 'select(.target.address == $t)' "$work/run.jsonl" | verdicts >"$work/in-run.txt"
	verdicts <"$work/alone.jsonl" >"$work/alone.txt"
	if [ -s "$work/alone.txt" ] && cmp -s "$work/in-run.txt" "$work/alone.txt"; then
		equal=$((equal + 1))
	else
		echo "    sample $h:80: the run's verdicts (<) differ from its audit alone (>):"
		diff "$work/in-run.txt" "$work/alone.txt" | grep '^[<>]' | sed 's/^/      /' || true
	fi
done

# Memory: handshakes to closed ports, 1k and MANY targets.
mem_list() { # N: N targets, ports 100 up on each host
	local n=$1 p=100
	for ((i = 0; i < n; p++)); do
		for h in "${hosts[@]}"; do
			((i++ < n)) || break
			echo "$h:$p"
		done
	done
}
mem_run() { # N: sets mem_wall, mem_rss, mem_done
	mem_list "$1" >"$work/mem.txt"
	sleep 2
	timed "$work/mem.err" "$work/synprobe" handshake --netns "$PNS" --targets "$work/mem.txt" --concurrency "$MEM_CONCURRENCY" --timeout 1s -o "$work/mem.jsonl"
	mem_wall=$wall mem_rss=$rss mem_done=$(wc -l <"$work/mem.jsonl")
	sed 's/^/    /' "$work/mem.err"
}
mem_run 1000
small_rss=$mem_rss small_wall=$mem_wall small_done=$mem_done
mem_run "$MANY"
large_rss=$mem_rss large_wall=$mem_wall large_done=$mem_done

met() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "NOT met"; fi; }
mib() { calc "int($1 / 1024 + 0.5)"; }
echo
echo "synprobe audit --targets, $N lab addresses, --concurrency $CONCURRENCY (one address alone: ${one_wall} s, ${one_syns} SYNs):"
printf '  %-34s %-28s %s\n' "wall time" "$run_wall s (< 60 s)" "$(met "$run_wall < 60")"
printf '  %-34s %-28s %s\n' "peak RSS" "$(mib "$run_rss") MiB (< 1024 MiB)" "$(met "$run_rss < 1048576")"
printf '  %-34s %-28s %s\n' "TcpExtSyncookiesSent (target)" "$cookies (= 0)" "$(met "$cookies == 0")"
printf '  %-34s %-28s %s\n' "sample equal to auditing alone" "$equal/$SAMPLE (all)" "$(met "$equal == $SAMPLE")"
printf '  %-34s %s\n' "targets written" "$lines of $N; $failed with a failed check, $errors with an error; exit $run_rc"
printf '  %-34s %s\n' "SYNs the target got" "$run_syns ($(calc "int($run_syns / $run_wall)")/s); ListenOverflows $over"
echo "synprobe handshake --targets to closed ports, --concurrency $MEM_CONCURRENCY:"
printf '  %-34s %s\n' "1,000 targets" "peak RSS $(mib "$small_rss") MiB, $small_wall s, $small_done written"
printf '  %-34s %s\n' "$MANY targets" "peak RSS $(mib "$large_rss") MiB, $large_wall s, $large_done written"
printf '  %-34s %-28s %s\n' "RSS $MANY / 1,000 targets" "$(calc "int(100 * $large_rss / $small_rss) / 100") (about 1)" "$(met "$large_rss < 1.5 * $small_rss")"
