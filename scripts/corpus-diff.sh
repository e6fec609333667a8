#!/usr/bin/env bash
# corpus-diff.sh: runs published packetdrill corpora with real packetdrill on
# this machine's kernel and with synprobe against its Linux lab, and says where
# the two disagree. Needs root (network namespaces, tun), Go, bison and flex.
#
#   PACKETDRILL_SRC=/work/scratch/packetdrill/gtests/net/packetdrill \
#     scripts/corpus-diff.sh google=/work/scratch/corpora/google/gtests/net/tcp \
#                            ligurio=/work/scratch/corpora/ligurio \
#                            linux=/work/scratch/corpora/linux-selftests
#
# (about 50 minutes for these three, 435 scripts, on two shared cores).
# Each argument is NAME=DIR[:FLAVOR]. FLAVOR chooses packetdrill's command
# line as each corpus's own runner has it: "google" (run_all.py: the IPv4
# variant, or IPv6 for *v6.pkt, with its -D symbols), "kernel" (ksft_runner.sh's
# arguments) or "plain" (packetdrill's defaults). Without one it is guessed:
# kernel when DIR holds ksft_runner.sh, google when DIR is under gtests/net,
# else plain. Every .pkt under DIR is one script. Neither packetdrill nor any
# corpus is part of this repository: keep both outside it.
#
# Per script: (1) synprobe parses it (no packets); (2) packetdrill --dry_run
# parses it and packetdrill runs it in a fresh network namespace (unshare -n),
# from the directory its shell commands expect, so the corpus's defaults.sh
# sets that namespace's sysctls; (3) synprobe lab run runs it against the
# Linux lab (a namespace of its own). Scripts run JOBS at a time (default 2:
# packetdrill's timing is strict, and the machine may be shared).
#
# Output, in OUT (default /work/scratch/corpus), rewritten as results come:
#   latest.tsv  one line per script: corpus, file, role, parses, verdicts,
#               agreement and the first failing line or reason of each tool
#               (every corpus run into OUT so far, those named first)
#   fails.txt   listener scripts packetdrill passes and synprobe does not
#               (fail, error or rejected), with synprobe's reason
#   table.txt   the table per corpus (also printed at the end)
#   raw/        packetdrill's output and synprobe's JSON per script
#
# Roles: "client" scripts make the target connect() (or send with
# MSG_FASTOPEN / TCP_FASTOPEN_CONNECT), which a remote black box cannot be
# made to do; "listener" scripts listen() and take connections (the target
# is the server); "none" do neither (system calls only).
#
# Environment: PACKETDRILL_SRC (or --packetdrill-src DIR), JOBS (-j N), OUT
# (-o DIR), TIMEOUT per run in seconds (default 120), SYNPROBE (a built
# binary; default: built from this checkout), REPORT_ONLY=1 (rebuild the
# table from raw/ without running anything), REUSE_PD=1 (keep packetdrill's
# results already in OUT/raw and run synprobe only), ONLY (a grep -E pattern on
# file paths: run only those). Results of an earlier run stay in raw/ until
# this one replaces them; remove OUT/raw for a clean slate.
set -euo pipefail
export GOTOOLCHAIN=local
repo=${CORPUS_DIFF_REPO:-$(cd "$(dirname "$0")/.." && pwd)}
# Bash reads a script while it runs it: run from a copy, so that editing
# this file cannot change a run under way.
if [ -z "${CORPUS_DIFF_COPY:-}" ]; then
	copy=$(mktemp "${TMPDIR:-/tmp}/corpus-diff.XXXXXX")
	cp "$0" "$copy"
	CORPUS_DIFF_COPY=$copy CORPUS_DIFF_REPO=$repo exec bash "$copy" "$@"
fi
cleanup() { rm -f "$CORPUS_DIFF_COPY"; }
trap cleanup EXIT

JOBS=${JOBS:-2}
OUT=${OUT:-/work/scratch/corpus}
TIMEOUT=${TIMEOUT:-120}
ONLY=${ONLY:-}
REPORT_ONLY=${REPORT_ONLY:-0}
while [ $# -gt 0 ]; do
	case $1 in
	--packetdrill-src) PACKETDRILL_SRC=$2; shift 2 ;;
	-j) JOBS=$2; shift 2 ;;
	-o) OUT=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	--) shift; break ;;
	-*) echo "corpus-diff: unknown flag $1 (see --help)" >&2; exit 2 ;;
	*) break ;;
	esac
done
if [ $# -eq 0 ]; then
	echo "corpus-diff: name at least one corpus as NAME=DIR[:FLAVOR] (see --help)" >&2
	exit 2
fi
if [ "$(id -u)" != 0 ] && [ "$REPORT_ONLY" != 1 ]; then
	echo "corpus-diff: needs root (network namespaces and tun devices)" >&2
	exit 3
fi
mkdir -p "$OUT/raw"
bin="$OUT/bin"
mkdir -p "$bin"

# Corpus specs, validated before anything runs.
declare -a names dirs flavors
for spec in "$@"; do
	name=${spec%%=*}
	rest=${spec#*=}
	if [ "$name" = "$spec" ] || [ -z "$name" ] || [[ $name == */* ]]; then
		echo "corpus-diff: $spec: want NAME=DIR[:FLAVOR]" >&2
		exit 2
	fi
	dir=${rest%%:*}
	flavor=
	[ "$dir" != "$rest" ] && flavor=${rest#*:}
	if [ ! -d "$dir" ]; then
		echo "corpus-diff: $name: $dir is not a directory" >&2
		exit 2
	fi
	dir=$(cd "$dir" && pwd)
	if [ -z "$flavor" ]; then
		if [ -f "$dir/ksft_runner.sh" ]; then
			flavor=kernel
		elif [[ $dir == */gtests/net* ]]; then
			flavor=google
		else
			flavor=plain
		fi
	fi
	case $flavor in google | kernel | plain) ;; *)
		echo "corpus-diff: $name: flavor $flavor: want google, kernel or plain" >&2
		exit 2
		;;
	esac
	names+=("$name")
	dirs+=("$dir")
	flavors+=("$flavor")
done

if [ "$REPORT_ONLY" != 1 ]; then
	# packetdrill, built from the local checkout in a copy under OUT (or
	# the one built there before, when PACKETDRILL_SRC is unset).
	for tool in unshare ip tc python3 go; do
		command -v $tool >/dev/null || { echo "corpus-diff: $tool not found (apt-get install -y iproute2 python3)" >&2; exit 3; }
	done
	if [ -z "${PACKETDRILL_SRC:-}" ] && [ -x "$bin/packetdrill" ]; then
		echo "corpus-diff: reusing $bin/packetdrill (PACKETDRILL_SRC unset)" >&2
	elif [ -z "${PACKETDRILL_SRC:-}" ] || [ ! -f "$PACKETDRILL_SRC/packetdrill.c" ]; then
		echo "corpus-diff: PACKETDRILL_SRC must name packetdrill's source (gtests/net/packetdrill of github.com/google/packetdrill), got '${PACKETDRILL_SRC:-}'" >&2
		exit 2
	elif [ ! -x "$bin/packetdrill" ] || [ -n "$(find "$PACKETDRILL_SRC" -newer "$bin/packetdrill" -name '*.[chly]' | head -1)" ]; then
		for tool in bison flex make cc; do
			command -v $tool >/dev/null || { echo "corpus-diff: $tool not found, needed to build packetdrill (apt-get install -y bison flex build-essential)" >&2; exit 3; }
		done
		echo "corpus-diff: building packetdrill from $PACKETDRILL_SRC" >&2
		rm -rf "$bin/pd-src"
		cp -r "$PACKETDRILL_SRC" "$bin/pd-src"
		(cd "$bin/pd-src" && ./configure >/dev/null && make -j2 packetdrill >"$bin/pd-build.log" 2>&1) ||
			{ echo "corpus-diff: building packetdrill failed: see $bin/pd-build.log" >&2; exit 3; }
		cp "$bin/pd-src/packetdrill" "$bin/packetdrill"
	fi
	if [ -n "${SYNPROBE:-}" ]; then
		cp "$SYNPROBE" "$bin/synprobe"
	else
		(cd "$repo" && go build -o "$bin/synprobe" ./cmd/synprobe)
	fi
	# A parse-only helper: synprobe's parser on one file, no packets, with
	# packetdrill's -D symbols where this checkout's parser takes them
	# (script.ParseWith), else without.
	mkdir -p "$bin/parsecheck"
	for parse in 'script.ParseWith(f, src, script.ParseConfig{Defines: defines})' 'script.Parse(f, src)'; do
		cat >"$bin/parsecheck/main.go" <<EOF
package main

import (
	"fmt"
	"os"
	"strings"

	"synprobe/conformance/script"
)

// main parses each file named after any "-D NAME=VALUE" pairs and prints
// "ok" or "error<TAB>message" per file.
func main() {
	args := os.Args[1:]
	defines := map[string]string{}
	for len(args) > 1 && args[0] == "-D" {
		name, value, _ := strings.Cut(args[1], "=")
		defines[name] = value
		args = args[2:]
	}
	for _, f := range args {
		src, err := os.ReadFile(f)
		if err == nil {
			_, err = $parse
		}
		if err != nil {
			fmt.Println("error\t" + strings.Join(strings.Fields(err.Error()), " "))
			continue
		}
		fmt.Println("ok\t")
	}
	_ = defines
}
EOF
		(cd "$repo" && go build -o "$bin/parsecheck/parsecheck" "$bin/parsecheck/main.go" 2>/dev/null) && break
	done
	[ -x "$bin/parsecheck/parsecheck" ] || { echo "corpus-diff: cannot build the parse helper against $repo" >&2; exit 3; }
fi

# One script: parse with both tools, run with both, leave everything in raw/.
# Arguments: corpus name, flavor, corpus dir, script path relative to it.
run_one() {
	local corpus=$1 flavor=$2 root=$3 rel=$4
	local f="$root/$rel" raw="$OUT/raw/$corpus/$rel"
	mkdir -p "$(dirname "$raw")"
	# The family: the script's own --ip_version, else IPv6 for *v6.pkt
	# (as run_all.py has it), else IPv4. One variant runs per script.
	local family=ipv4
	[[ $rel == *v6.pkt ]] && family=ipv6
	if grep -q '^--ip_version=ipv6' "$f"; then family=ipv6; fi
	if grep -q '^--ip_version=ipv4' "$f"; then family=ipv4; fi
	local -a args
	case $flavor in
	google)
		args=(--send_omit_free)
		if [ $family = ipv6 ]; then
			args+=(--ip_version=ipv6 --mtu=1520 --local_ip=fd3d:0a0b:17d6::1 --gateway_ip=fd3d:0a0b:17d6:8888::1
				--remote_ip=fd3d:fa7b:d17d::1 -D TFO_COOKIE=c1d1e9742a47a9bc -D CMSG_LEVEL_IP=SOL_IPV6 -D CMSG_TYPE_RECVERR=IPV6_RECVERR)
		else
			args+=(--ip_version=ipv4 --local_ip=192.168.0.1 --gateway_ip=192.168.0.1 --netmask_ip=255.255.0.0
				--remote_ip=192.0.2.1 -D TFO_COOKIE=3021b9d889017eeb -D CODE=host_unreachable -D CMSG_LEVEL_IP=SOL_IP -D CMSG_TYPE_RECVERR=IP_RECVERR)
		fi
		;;
	kernel)
		if [ $family = ipv6 ]; then
			args=(--ip_version=ipv6 --mtu=1520 --local_ip=fd3d:0a0b:17d6::1 --gateway_ip=fd3d:0a0b:17d6:8888::1
				--remote_ip=fd3d:fa7b:d17d::1 -D TFO_COOKIE=c1d1e9742a47a9bc -D TFO_COOKIE_ZERO=82af1a8f9a205c34
				-D CMSG_LEVEL_IP=SOL_IPV6 -D CMSG_TYPE_RECVERR=IPV6_RECVERR)
		else
			args=(--ip_version=ipv4 --local_ip=192.168.0.1 --gateway_ip=192.168.0.1 --netmask_ip=255.255.0.0
				--remote_ip=192.0.2.1 -D TFO_COOKIE=3021b9d889017eeb -D TFO_COOKIE_ZERO=b7c12350a90dc8f5
				-D CMSG_LEVEL_IP=SOL_IP -D CMSG_TYPE_RECVERR=IP_RECVERR)
		fi
		;;
	plain) args=() ;;
	esac
	# Shell commands in a script name files relative to where its corpus
	# runs it: the script's directory, or the corpus root for ligurio's
	# `scripts/defaults.sh`.
	local cwd
	cwd=$(dirname "$f")
	if grep -q '`scripts/' "$f" && [ -d "$root/scripts" ]; then cwd=$root; fi
	local relcwd
	relcwd=$(realpath --relative-to="$cwd" "$f")

	# The script's role, from its system calls with comments removed.
	local body role=none
	body=$(sed -e 's,//.*,,' "$f" | tr '\n' ' ' | sed -e 's,/\*[^*]*\*\+\([^/*][^*]*\*\+\)*/,,g')
	if grep -qE 'connect\(|sendto\([^)]*MSG_FASTOPEN|TCP_FASTOPEN_CONNECT' <<<"$body"; then
		role=client
	elif grep -qE 'listen\(' <<<"$body"; then
		role=listener
	fi

	local sp_parse pd_parse pd_verdict=- sp_verdict=- pd_detail= sp_detail=
	local -a defines=()
	local i
	for ((i = 0; i < ${#args[@]}; i++)); do
		[ "${args[$i]}" = -D ] && defines+=(-D "${args[$((i + 1))]}")
	done
	sp_parse=$("$bin/parsecheck/parsecheck" "${defines[@]}" "$f")
	# REUSE_PD=1: packetdrill's results of an earlier run into OUT stand;
	# only synprobe runs (another synprobe against the same reference).
	local reused=0
	if [ "${REUSE_PD:-0}" = 1 ] && [ -s "$raw.tsv" ]; then
		pd_parse=$(cut -f4 "$raw.tsv")
		pd_verdict=$(cut -f6 "$raw.tsv")
		pd_detail=$(cut -f8 "$raw.tsv")
		reused=1
	elif (cd "$cwd" && timeout 30 "$bin/packetdrill" --dry_run "${args[@]}" "$relcwd") >"$raw.pd-parse" 2>&1; then
		pd_parse=ok
	else
		pd_parse=error
	fi

	if [ $reused = 1 ]; then
		:
	elif [ $pd_parse = ok ]; then
		local rc=0 try
		# A fresh namespace per run, as packetdrill's own runners do. A
		# failure is tried once more: packetdrill's timing is strict and
		# the machine may be busy.
		for try in 1 2; do
			rc=0
			(cd "$cwd" && timeout "$TIMEOUT" unshare -n sh -c 'ip link set lo up && exec "$@"' sh \
				"$bin/packetdrill" "${args[@]}" "$relcwd") >"$raw.pd" 2>&1 || rc=$?
			[ $rc = 0 ] && break
			cp "$raw.pd" "$raw.pd.try$try"
		done
		case $rc in
		0) pd_verdict=pass ;;
		124) pd_verdict=timeout ;;
		*) pd_verdict=fail ;;
		esac
		[ $rc = 0 ] && [ -f "$raw.pd.try1" ] && pd_detail="passed when tried again"
		if [ $rc != 0 ]; then
			pd_detail=$(grep -m1 -E 'error|fail|assert|timed out' "$raw.pd" | tr '\t' ' ' | cut -c1-300 || true)
			[ -z "$pd_detail" ] && pd_detail=$(tail -1 "$raw.pd" | tr '\t' ' ' | cut -c1-300)
		fi
	else
		pd_detail=$(grep -m1 . "$raw.pd-parse" | tr '\t' ' ' | cut -c1-300)
	fi

	# The -D symbols packetdrill gets go to synprobe too, when it takes
	# them (run -D NAME=VALUE).
	sp_defines=()
	[ "$sp_takes_defines" = 1 ] && sp_defines=("${defines[@]}")
	if [ "${sp_parse%%$'\t'*}" = ok ]; then
		sp_lab "$root" "$rel" "$family" "$raw"
		# A listener script packetdrill passes and synprobe does not is
		# run again: "flaky" when the second run passes or skips.
		if [ "$pd_verdict" = pass ] && [ $role = listener ] && [ "$sp_verdict" != pass ] && [ "$sp_verdict" != skip ]; then
			local first=$sp_verdict first_detail=$sp_detail
			cp "$raw.sp.json" "$raw.sp.try1.json"
			sp_lab "$root" "$rel" "$family" "$raw"
			if [ "$sp_verdict" = pass ] || [ "$sp_verdict" = skip ]; then
				sp_detail="first run $first: $first_detail; second run $sp_verdict"
				sp_verdict=flaky
			fi
		fi
	else
		sp_verdict=rejected
		sp_detail=${sp_parse#*$'\t'}
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$corpus" "$rel" "$role" "$pd_parse" "${sp_parse%%$'\t'*}" \
		"$pd_verdict" "$sp_verdict" "$pd_detail" "$sp_detail" >"$raw.tsv"
}

# sp_lab runs synprobe lab run on one script and sets sp_verdict and
# sp_detail (the first step that did not pass, or the reason).
sp_lab() {
	local root=$1 rel=$2 family=$3 raw=$4
	local target=192.0.2.2:80 rc=0
	[ "$family" = ipv6 ] && target=[2001:db8::2]:80
	(cd "$root" && timeout "$TIMEOUT" "$bin/synprobe" lab --stack linux run --format json --jobs 1 "${sp_defines[@]}" "$rel" "$target") \
		>"$raw.sp.json" 2>"$raw.sp.err" || rc=$?
	local res
	res=$(python3 - "$raw.sp.json" "$rc" <<'PY'
import json, sys
path, rc = sys.argv[1], sys.argv[2]
try:
    rep = json.load(open(path))
    r = rep["results"][0]
except Exception as e:
    print("error\texit %s, no report: %s" % (rc, e)); sys.exit()
detail = r.get("reason") or ""
for st in r.get("steps") or []:
    if st.get("verdict") not in ("pass", None):
        detail = "line %s: %s" % (st.get("line"), "; ".join(st.get("problems") or [st.get("verdict")]))
        break
if r.get("cause"):
    detail += " [cause %s]" % r["cause"]
print("%s\t%s" % (r["verdict"], " ".join(detail.split())[:400]))
PY
)
	sp_verdict=${res%%$'\t'*}
	sp_detail=${res#*$'\t'}
	if [ $rc = 124 ]; then
		sp_verdict=timeout
		sp_detail="no report after ${TIMEOUT}s"
	fi
}
export -f run_one sp_lab
sp_takes_defines=0
if [ "$REPORT_ONLY" != 1 ]; then
	# Whole help first: grep -q stopping early would make the pipeline fail.
	help=$("$bin/synprobe" run --help 2>&1 || true)
	if grep -q -- '--define' <<<"$help"; then
		sp_takes_defines=1
	fi
fi
export OUT TIMEOUT bin sp_takes_defines

# Rebuild latest.tsv, fails.txt and table.txt from raw/*.tsv.
report() {
	python3 - "$OUT" "${names[@]}" <<'PY'
import glob, os, sys, collections
out, names = sys.argv[1], sys.argv[2:]
# Corpora of earlier runs into the same OUT stay in the files, after these.
for d in sorted(os.listdir(os.path.join(out, "raw"))):
    if d not in names and os.path.isdir(os.path.join(out, "raw", d)):
        names.append(d)
rows = []
for name in names:
    for p in sorted(glob.glob(os.path.join(out, "raw", name, "**", "*.pkt.tsv"), recursive=True)):
        line = open(p).read().rstrip("\n")
        if line:
            rows.append(line.split("\t"))
def agree(r):
    corpus, f, role, pdp, spp, pdv, spv = r[:7]
    if pdv != "pass" or role != "listener":
        return "-"
    return "yes" if spv in ("pass", "skip") else "no"
with open(os.path.join(out, "latest.tsv.tmp"), "w") as w:
    w.write("corpus\tfile\trole\tpd_parse\tsp_parse\tpd_verdict\tsp_verdict\tagree\tpd_detail\tsp_detail\n")
    for r in rows:
        w.write("\t".join(r[:7] + [agree(r)] + r[7:]) + "\n")
os.replace(os.path.join(out, "latest.tsv.tmp"), os.path.join(out, "latest.tsv"))
with open(os.path.join(out, "fails.txt.tmp"), "w") as w:
    w.write("# listener scripts packetdrill passes where synprobe does not pass or skip\n")
    w.write("# corpus\tfile\tsynprobe verdict\tsynprobe's first failing line or reason\n")
    for r in rows:
        if agree(r) == "no":
            w.write("%s\t%s\t%s\t%s\n" % (r[0], r[1], r[6], r[8]))
os.replace(os.path.join(out, "fails.txt.tmp"), os.path.join(out, "fails.txt"))
lines = []
hdr = "%-8s %5s %5s %5s %6s %5s %5s %6s | %6s %4s %4s %4s %5s %4s %4s %7s" % (
    "corpus", "files", "pdprs", "spprs", "both", "pdpas", "pdfai", "listnr",
    "L+pdok", "pass", "skip", "fail", "flaky", "err", "rej", "agree")
lines.append(hdr)
for name in names:
    rs = [r for r in rows if r[0] == name]
    c = collections.Counter()
    for r in rs:
        c["files"] += 1
        c["pdparse"] += r[3] == "ok"
        c["spparse"] += r[4] == "ok"
        c["both"] += r[3] == "ok" and r[4] == "ok"
        c["pdpass"] += r[5] == "pass"
        c["pdfail"] += r[5] in ("fail", "timeout")
        c["listener"] += r[2] == "listener"
        if r[2] == "listener" and r[5] == "pass":
            c["L"] += 1
            v = r[6]
            c[{"pass": "pass", "skip": "skip", "fail": "fail", "flaky": "flaky", "rejected": "rej"}.get(v, "err")] += 1
            c["agree"] += v in ("pass", "skip")
    lines.append("%-8s %5d %5d %5d %6s %5d %5d %6d | %6d %4d %4d %4d %5d %4d %4d %7s" % (
        name, c["files"], c["pdparse"], c["spparse"],
        "%.0f%%" % (100.0 * c["both"] / c["pdparse"]) if c["pdparse"] else "-",
        c["pdpass"], c["pdfail"], c["listener"],
        c["L"], c["pass"], c["skip"], c["fail"], c["flaky"], c["err"], c["rej"],
        "%d/%d" % (c["agree"], c["L"])))
lines.append("")
lines.append("files: .pkt files; pdprs/spprs: parsed by packetdrill (--dry_run) / synprobe;")
lines.append("both: of the files packetdrill parses, the share synprobe parses too;")
lines.append("pdpas/pdfai: packetdrill pass / fail or timeout on this kernel; listnr: listener scripts;")
lines.append("L+pdok: listener scripts packetdrill passes, and synprobe lab run's verdict on them:")
lines.append("pass, skip, fail, flaky (not pass or skip, then pass or skip when run again), err (error")
lines.append("or timeout), rej (synprobe cannot parse); agree: pass or skip.")
open(os.path.join(out, "table.txt"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
}

if [ "$REPORT_ONLY" != 1 ]; then
	# The work list: every .pkt of every corpus, corpus by corpus.
	list="$OUT/worklist"
	: >"$list"
	for i in "${!names[@]}"; do
		(cd "${dirs[$i]}" && find . -name '*.pkt' -type f | sed 's,^\./,,' | sort) |
			{ if [ -n "$ONLY" ]; then grep -E "$ONLY" || true; else cat; fi; } |
			while read -r rel; do
				# Earlier results stay until this run replaces them, so
				# that the files in OUT stay whole while it runs.
				printf '%s\t%s\t%s\t%s\n' "${names[$i]}" "${flavors[$i]}" "${dirs[$i]}" "$rel"
			done >>"$list"
	done
	total=$(wc -l <"$list")
	echo "corpus-diff: $total scripts, $JOBS at a time; results in $OUT" >&2
	# A report every 30 s while the runs go on, for whoever reads OUT.
	(while sleep 30; do report >/dev/null 2>&1 || true; done) &
	reporter=$!
	cleanup() {
		kill "$reporter" 2>/dev/null || true
		rm -f "$CORPUS_DIFF_COPY"
	}
	tr '\t' '\n' <"$list" | xargs -d '\n' -n 4 -P "$JOBS" bash -c 'run_one "$@"' run_one
	kill $reporter 2>/dev/null || true
fi
report
