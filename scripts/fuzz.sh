#!/usr/bin/env bash
# Fuzzes the command decoder and validator (Sources/ECPProtocol) with libFuzzer.
#
#   scripts/fuzz.sh [SECONDS]        # default 60
#
# Builds Tests/Fuzz/CommandFuzzer.swift with the module's sources, -sanitize=fuzzer,address, into
# .build/fuzz/command-fuzzer; seeds it from Tests/Fuzz/corpus/ (the committed corpus, without its
# crash-* files); runs it for SECONDS with -max_len=4096 -timeout=5, going on past findings.
# Each new finding (one input per distinct failure) is written to Tests/Fuzz/corpus/crash-<sha1>,
# where the normal test run (FuzzCorpusTests) replays it. Exits 1 when anything was found, 2 when
# the fuzzer could not be built or run.
#
# Environment: FUZZ_JOBS (parallel fuzzing processes, default 1), FUZZ_FLAGS (more libFuzzer
# flags), SWIFTC (the compiler, default swiftc).
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [SECONDS]" >&2
    exit 64
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
swiftc="${SWIFTC:-swiftc}"
jobs="${FUZZ_JOBS:-1}"
out=.build/fuzz
binary="$out/command-fuzzer"
corpus=Tests/Fuzz/corpus
work="$out/corpus"
artifacts="$out/artifacts"
log="$out/fuzz.log"
mkdir -p "$out" "$work"
# Swift's crash backtracer hangs on a crash in an address-sanitized fuzzer: leave crash reports
# to libFuzzer and the sanitizer.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0"
rm -rf "$artifacts"
mkdir -p "$artifacts"

echo "== building $binary"
# ld.gold warns 'Cannot export local symbol __asan_*' for every such symbol: harmless, filtered.
if ! "$swiftc" -O -sanitize=fuzzer,address -parse-as-library -module-name ECPProtocol \
    Sources/ECPProtocol/*.swift Tests/Fuzz/CommandFuzzer.swift -o "$binary" \
    > "$out/build.log" 2>&1; then
    grep -v "Cannot export local symbol" "$out/build.log" >&2 || true
    echo "fuzz.sh: the fuzzer did not build" >&2
    exit 2
fi
grep -v "Cannot export local symbol" "$out/build.log" | grep -E "error|warning" >&2 || true

# The seeds: the committed corpus minus its known crashes (FuzzCorpusTests replays those), plus
# whatever earlier runs kept in the working corpus.
seeds=0
for f in "$corpus"/*; do
    [ -f "$f" ] || continue
    case "$(basename "$f")" in crash-*) continue ;; esac
    cp "$f" "$work/seed-$(basename "$f")"
    seeds=$((seeds + 1))
done
echo "== fuzzing for ${seconds}s: $seeds seeds from $corpus, working corpus $work ($(ls "$work" | wc -l) files), $jobs job(s)"

# Fork mode with -ignore_crashes: a finding does not end the run; each crashing input is saved
# under $artifacts. -rss_limit_mb bounds one input's memory.
set +e
# shellcheck disable=SC2086
"$binary" "$work" \
    -fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time="$seconds" -max_len=4096 -timeout=5 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 ${FUZZ_FLAGS:-} \
    > "$log" 2>&1
status=$?
set -e
tail -n 5 "$log"
if [ "$status" -ne 0 ] && ! ls "$artifacts"/* > /dev/null 2>&1; then
    echo "fuzz.sh: the fuzzer failed (status $status) without a finding; see $log" >&2
    exit 2
fi

# What one crashing input does, in one line: the invariant it breaks, or the sanitizer's summary
# and the first frame in the decoder's sources.
signature() {
    local report
    report="$("$binary" -runs=1 -timeout=5 -rss_limit_mb=2048 "$1" 2>&1 || true)"
    local invariant
    invariant="$(grep -m1 '^INVARIANT VIOLATED: ' <<<"$report" | sed -E 's/ \| .*$//' || true)"
    if [ -n "$invariant" ]; then
        echo "$invariant"
        return
    fi
    local summary frame
    summary="$(grep -m1 -E 'SUMMARY:|ERROR: libFuzzer:|Fatal error:' <<<"$report" | sed -E 's/0x[0-9a-f]+//g; s/pid [0-9]+//g' || true)"
    frame="$(grep -m1 -E '#[0-9]+ .* in .*(ECPProtocol|JSONSyntax|CommandDecoder|JSONValue)' <<<"$report" | sed -E 's/^ *#[0-9]+ 0x[0-9a-f]+ in //; s/ \/.*$//' || true)"
    echo "${summary:-unknown failure} @ ${frame:-?}"
}

declare -A known=()
for f in "$corpus"/crash-*; do
    [ -f "$f" ] || continue
    known["$(signature "$f")"]="$(basename "$f")"
done

found=0
added=0
# Smallest inputs first, so each failure keeps its shortest example.
while IFS= read -r f; do
    [ -n "$f" ] || continue
    found=$((found + 1))
    sig="$(signature "$f")"
    if [ -n "${known[$sig]+x}" ]; then
        echo "   finding $(basename "$f") ($(stat -c %s "$f") bytes): $sig (already in the corpus as ${known[$sig]})"
        continue
    fi
    name="crash-$(sha1sum "$f" | cut -c1-40)"
    cp "$f" "$corpus/$name"
    known["$sig"]="$name"
    added=$((added + 1))
    echo "   NEW finding $corpus/$name ($(stat -c %s "$f") bytes): $sig"
done < <(find "$artifacts" -type f -printf '%s %p\n' | sort -n | cut -d' ' -f2-)

execs="$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')"
stat_execs="$(grep -m1 -E 'stat::number_of_executed_units' "$log" | grep -oE '[0-9]+$' || true)"
echo "== ${stat_execs:-${execs:-?}} executions in ${seconds}s; $found crashing input(s), $added new in $corpus; log: $log"
if [ "$found" -gt 0 ]; then
    exit 1
fi
exit 0
