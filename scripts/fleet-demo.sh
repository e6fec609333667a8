#!/usr/bin/env bash
# fleet-demo.sh (make fleet-demo): a fleet run end to end against the
# scale lab (internal/scalelab: one Linux kernel answers a whole prefix,
# its sub-ranges open, closed, silent, rejecting with ICMP, clamping the
# MSS or stripping options; port 80 served by an application):
#
#   1. synprobe sweep of two ports over the prefix: which answer;
#   2. synprobe audit --targets of the open ports the sweep found;
#   3. synprobe summarize of both.
#
#   make fleet-demo
#   FLEET_DEMO_PREFIX=10.96.0.0/26 scripts/fleet-demo.sh
#
# Needs root (network namespaces, AF_PACKET); leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
PREFIX=${FLEET_DEMO_PREFIX:-10.96.0.0/27}

if [ "$(id -u)" != 0 ]; then
	echo "fleet-demo: needs root (network namespaces, AF_PACKET)" >&2
	exit 3
fi
. scripts/scalelab.sh
scalelab_start fleet-demo "$PREFIX" serve
sp() { "$work/synprobe" "$@"; }
show() { echo; echo "\$ $*"; }

show synprobe sweep --ports 80,81 "$PREFIX" '> open.jsonl'
sp sweep --netns "$PNS" --ports 80,81 "$PREFIX" >"$work/open.jsonl"
head -n 3 "$work/open.jsonl"
echo "... ($(wc -l <"$work/open.jsonl") lines)"

show synprobe audit --targets open.jsonl --concurrency 16 -o audit.jsonl
sp audit --netns "$PNS" --targets "$work/open.jsonl" --concurrency 16 -o "$work/audit.jsonl" || true

show synprobe summarize audit.jsonl open.jsonl
sp summarize "$work/audit.jsonl" "$work/open.jsonl"
# FLEET_DEMO_KEEP=DIR keeps the two files there.
if [ -n "${FLEET_DEMO_KEEP:-}" ]; then
	cp "$work/audit.jsonl" "$work/open.jsonl" "$FLEET_DEMO_KEEP"/
fi
