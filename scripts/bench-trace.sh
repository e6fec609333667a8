#!/usr/bin/env bash
# bench-trace.sh: the wall time of synprobe trace (the quick walk and every
# probe family) next to traceroute -T (tcptraceroute's method) on the same
# path bed (client, two routers, server in network namespaces; ICMP rate
# limits lifted on the routers), each best of 3, with no box, an MSS clamp
# and a SYN-data dropper on the first router. Goal: the quick walk in well
# under 3 s. Needs root and the traceroute package (skipped otherwise).
#
#   scripts/bench-trace.sh
#   VERBOSE=1 scripts/bench-trace.sh     # also print each tool's output
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
if [ "$(id -u)" != 0 ]; then
	echo "bench-trace: skipped (needs root for the path bed)"
	exit 0
fi
if ! command -v traceroute >/dev/null; then
	echo "bench-trace: skipped (no traceroute; Debian package traceroute)"
	exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/synprobe" ./cmd/synprobe
SYNPROBE="$work/synprobe" go test -count=1 -run '^TestTraceVsTraceroute$' -v ./internal/trace | grep -v '^=== RUN\|^--- \|^PASS\|^ok'
