# scalelab.sh, sourced by the scripts that run synprobe against the scale
# lab (internal/scalelab): builds synprobe and scalelabctl into $work,
# starts the lab, and removes both on exit.
#
#   . scripts/scalelab.sh
#   scalelab_start NAME PREFIX [serve]   # sets work, PNS, TNS, lab_line
#
# The lab lives as long as its standard input is open: the EXIT trap
# closes it, and scalelabctl removes its namespaces.

work=$(mktemp -d)
lab_pid=
scalelab_cleanup() {
	if [ -n "$lab_pid" ]; then
		exec {lab_in}>&- 2>/dev/null || true
		wait "$lab_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap scalelab_cleanup EXIT
trap 'exit 130' INT TERM

scalelab_start() {
	local name=$1 prefix=$2
	shift 2
	go build -o "$work/synprobe" ./cmd/synprobe
	go build -o "$work/scalelabctl" ./internal/scalelab/scalelabctl
	mkfifo "$work/lab.in"
	"$work/scalelabctl" up "$prefix" "$@" <"$work/lab.in" >"$work/lab.out" &
	lab_pid=$!
	exec {lab_in}>"$work/lab.in"
	for _ in $(seq 100); do
		[ -s "$work/lab.out" ] && break
		kill -0 "$lab_pid" 2>/dev/null || { echo "$name: the scale lab did not start"; exit 1; }
		sleep 0.1
	done
	read -r lab_line <"$work/lab.out"
	read -r PNS TNS _ <<<"$lab_line"
}
