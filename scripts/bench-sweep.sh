#!/usr/bin/env bash
# bench-sweep.sh: synprobe sweep against masscan on the scale lab
# (internal/scalelab: one namespace answers for 10.200.0.0/16, sub-ranges
# open, closed, silent, ICMP port/admin unreachable, MSS-clamped, option-
# stripped; the right class of every probe is known by construction).
#
# Two jobs, side by side in one run: one port (80) on all 65,536 lab
# addresses, and all 65,535 ports of one lab host (10.200.0.1). masscan
# runs with --wait 1 at 100k, 300k and 1M pps; the rate where it classifies
# most probes right is its reference. Goal: synprobe's wall time at most
# half of that, with 100% of the probes classified right.
#
#   scripts/bench-sweep.sh
#   SWEEP_RATE=500000 SWEEP_WAIT=250ms scripts/bench-sweep.sh
#
# synprobe runs twice per job: with masscan's wait (1 s, one retry), for
# reference, and with SWEEP_WAIT (250 ms) and SWEEP_RETRIES (2), the row
# the goal is checked against: the lab answers in well under a millisecond,
# and the retries, not a long wait, are what makes every probe count.
#
# Accuracy: a probe is right when the tool's class is the plan's. masscan
# reports open and closed ports only (-oL, --show closed): a filtered or
# silent probe it does not report counts as right for it. masscan sometimes
# never leaves its final wait ("waiting -N secs"); it is killed after
# MASSCAN_TIMEOUT more seconds than its job should take, and the row says so.
# Needs root; masscan is Debian's, installed here if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
PREFIX=10.200.0.0/16
HOST=10.200.0.1
SWEEP_RATE=${SWEEP_RATE:-1000000}
SWEEP_WAIT=${SWEEP_WAIT:-250ms}
SWEEP_RETRIES=${SWEEP_RETRIES:-2}
MASSCAN_RATES=${MASSCAN_RATES:-"100000 300000 1000000"}
MASSCAN_TIMEOUT=${MASSCAN_TIMEOUT:-30}

if [ "$(id -u)" != 0 ]; then
	echo "bench-sweep: skipped: needs root (network namespaces, AF_PACKET)"
	exit 0
fi
have_masscan=1
if ! command -v masscan >/dev/null; then
	echo "bench-sweep: installing masscan"
	if ! { apt-get install -y masscan >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y masscan >/dev/null 2>&1; }; }; then
		echo "bench-sweep: masscan could not be installed: synprobe only"
		have_masscan=0
	fi
fi

. scripts/scalelab.sh
scalelab_start bench-sweep "$PREFIX"
read -r PNS _ GMAC PIF PADDR <"$work/lab.out"
echo "scale lab: $PREFIX answered in namespace ${PNS%-probe}-target; probing from $PNS ($PIF $PADDR)"

calc() { awk "BEGIN { print $1 }"; }
now() { date +%s.%N; }

rows=()
row() { rows+=("$(printf '%-22s %-9s %10s %9s %11s %9s  %s' "$@")"); }

# run_synprobe NAME TARGET PORTS PROBES WAIT RETRIES: one synprobe row;
# sets sweep_wall and sweep_acc.
run_synprobe() {
	local name=$1 target=$2 ports=$3 probes=$4 wait=$5 retries=$6 t0 t1 pps
	sleep 2 # the target's half-open connections of the last run expire (1 s)
	t0=$(now)
	"$work/synprobe" sweep --netns "$PNS" --ports "$ports" --rate "$SWEEP_RATE" --retries "$retries" \
		--wait "$wait" --progress never -o "$work/sweep.jsonl" "$target" 2>"$work/sweep.log"
	t1=$(now)
	sweep_wall=$(calc "$t1 - $t0")
	sweep_acc=$("$work/scalelabctl" check "$PREFIX" "$target" "$ports" synprobe "$work/sweep.jsonl" | awk '{print $3}')
	pps=$(sed -n 's/.* at \([0-9]*\) pps.*/\1/p' "$work/sweep.log")
	row "$name" synprobe "$SWEEP_RATE" "$(printf %.2f "$sweep_wall")" "$(calc "int($probes / $sweep_wall)")" "$sweep_acc%" "--wait $wait --retries $retries; sent at $pps pps"
	sed 's/^/    /' "$work/sweep.log"
}

# run_job NAME TARGET PORTS PROBES
run_job() {
	local name=$1 target=$2 ports=$3 probes=$4
	local t0 t1 wall acc sweep_wall sweep_acc
	# First with masscan's own wait, for reference; the goal is checked
	# against the second, the sweep's benchmark setting.
	run_synprobe "$name" "$target" "$ports" "$probes" 1s 1
	run_synprobe "$name" "$target" "$ports" "$probes" "$SWEEP_WAIT" "$SWEEP_RETRIES"
	[ "$have_masscan" = 1 ] || return 0
	local best_acc=-1 best_wall=0 best_rate= note
	for rate in $MASSCAN_RATES; do
		sleep 2
		local limit
		limit=$(calc "int($probes / $rate + 1 + $MASSCAN_TIMEOUT)")
		t0=$(now)
		note=
		timeout -k 5 "$limit" ip netns exec "$PNS" masscan "$target" -p "$ports" --rate "$rate" --wait 1 \
			--adapter "$PIF" --adapter-ip "$PADDR" --router-mac "$GMAC" --show closed \
			-oL "$work/masscan.txt" >"$work/masscan.log" 2>&1 || note="did not exit: killed after ${limit}s"
		t1=$(now)
		wall=$(calc "$t1 - $t0")
		acc=$("$work/scalelabctl" check "$PREFIX" "$target" "$ports" masscan "$work/masscan.txt" | awk '{print $3}')
		row "$name" masscan "$rate" "$(printf %.2f "$wall")" "$(calc "int($probes / $wall)")" "$acc%" "--wait 1 $note"
		if [ -z "$note" ] && awk "BEGIN { exit !($acc > $best_acc || ($acc == $best_acc && $wall < $best_wall)) }"; then
			best_acc=$acc best_wall=$wall best_rate=$rate
		fi
	done
	if [ -n "$best_rate" ]; then
		local ratio verdict=met
		ratio=$(calc "$sweep_wall / $best_wall")
		awk "BEGIN { exit !($ratio <= 0.5 && $sweep_acc == 100) }" || verdict="NOT met"
		rows+=("  $name: synprobe/masscan(${best_rate} pps, ${best_acc}%) wall = $(printf %.2f "$ratio") (goal <= 0.50, synprobe 100%: $verdict)")
	fi
}

run_job "65536 addrs x 1 port" "$PREFIX" 80 65536
run_job "1 host x 65535 ports" "$HOST" 1-65535 65535

echo
echo "(rate: asked, pps; probes/s: probes over the whole wall time, start-up and waits included)"
printf '%-22s %-9s %10s %9s %11s %9s  %s\n' job tool "rate" "wall s" "probes/s" accuracy notes
printf '%s\n' "${rows[@]}"
