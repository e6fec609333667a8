#!/usr/bin/env bash
# bench-analyze.sh: the speed of synprobe's capture analysis against
# tshark's TCP conversation statistics (tshark -r FILE -q -z conv,tcp) on
# the same large capture of short connections. Goal: at least 1,000,000
# packets/s on one core, and at least 10 times tshark's speed.
#
#   scripts/bench-analyze.sh            # 200000 connections (1.8M packets)
#   CONNS=50000 RUNS=1 scripts/bench-analyze.sh
#
# Both tools run pinned to one CPU (taskset, when present) with the file in
# the page cache; each is timed as a whole process, best of RUNS. tshark is
# Debian's, installed here if missing (skipped with a message when that
# fails).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
CONNS=${CONNS:-200000}
RUNS=${RUNS:-3}
TSHARK_RUNS=${TSHARK_RUNS:-1}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/gencapture" ./conformance/capture/internal/gencapture
go build -o "$work/synprobe" ./cmd/synprobe
"$work/gencapture" -conns "$CONNS" "$work/short.pcap"
packets=$((CONNS * 9))
size=$(du -h "$work/short.pcap" | cut -f1)
echo "capture: $packets packets, $size"

pin=()
if command -v taskset >/dev/null; then
	pin=(taskset -c 0)
fi

# calc EXPR: floating-point arithmetic (awk is everywhere; bc is not).
calc() { awk "BEGIN { print $1 }"; }

# best_of N CMD...: the lowest wall time in seconds of N runs.
best_of() {
	local n=$1 best="" t start end
	shift
	for _ in $(seq "$n"); do
		start=$(date +%s.%N)
		"$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; return 1; }
		end=$(date +%s.%N)
		t=$(calc "$end - $start")
		if [[ -z $best ]] || [[ $(calc "$t < $best") == 1 ]]; then
			best=$t
		fi
	done
	echo "$best"
}

cat "$work/short.pcap" >/dev/null # into the page cache
# The command as users run it: listing only failures (what big captures
# want), and the full JSON report of every connection.
declare -A ours
declare -A args=([only-failures]="--only-failures" [full-json]="--format json")
for mode in only-failures full-json; do
	# shellcheck disable=SC2086
	ours[$mode]=$(GOMAXPROCS=1 best_of "$RUNS" "${pin[@]}" "$work/synprobe" analyze ${args[$mode]} -o "$work/report" "$work/short.pcap")
	printf 'synprobe analyze %s (GOMAXPROCS=1): %.3f s, %.0f packets/s\n' "${args[$mode]}" "${ours[$mode]}" "$(calc "$packets / ${ours[$mode]}")"
done

if ! command -v tshark >/dev/null; then
	echo "tshark not found: installing Debian's tshark"
	if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -q tshark >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q tshark >/dev/null 2>&1; }; }; then
		echo "could not install tshark (apt-get failed): comparison skipped"
		exit 0
	fi
fi
theirs=$(best_of "$TSHARK_RUNS" "${pin[@]}" tshark -r "$work/short.pcap" -q -z conv,tcp)
printf 'tshark -q -z conv,tcp (%s): %.3f s, %.0f packets/s\n' "$(tshark --version 2>/dev/null | head -1)" "$theirs" "$(calc "$packets / $theirs")"
for mode in only-failures full-json; do
	printf 'ratio (%s): synprobe is %.1fx faster than tshark (goal: 10x)\n' "${args[$mode]}" "$(calc "$theirs / ${ours[$mode]}")"
done
