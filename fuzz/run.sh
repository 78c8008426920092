#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS, one after the other; prints per target the
# inputs executed, coverage and features, and fails (exit 1) if any target crashed, panicked,
# timed out or ran out of memory, naming the input that did it.
#
#   fuzz/run.sh SECONDS [TARGET...]
#
# Environment:
#   SHOAL_FUZZ_SANITIZER   address (default) or none: what `cargo fuzz --sanitizer` gets.
#   SHOAL_FUZZ_TARGET_DIR  where the instrumented build goes; default $CARGO_TARGET_DIR/fuzz
#                          when CARGO_TARGET_DIR is set, else fuzz/target.
#   SHOAL_FUZZ_WORK        where each target's growing corpus is kept between runs (default
#                          <target dir>/corpus); the committed seeds in fuzz/corpus are only read.
#
# cargo-fuzz passes nightly-only `-Z` flags to rustc; on a stable toolchain this script sets
# RUSTC_BOOTSTRAP=1 so stable accepts them (only for this build: the main workspace is never
# built with it). cargo-fuzz itself is installed with `cargo install cargo-fuzz --locked` when
# missing.
set -euo pipefail

usage() {
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
}
[[ $# -ge 1 && $1 =~ ^[0-9]+$ && $1 -gt 0 ]] || usage
seconds=$1
shift

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
cd "$fuzz_dir/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is missing; installing it (cargo install cargo-fuzz --locked)" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
sanitizer=${SHOAL_FUZZ_SANITIZER:-address}
case $sanitizer in address | none) ;; *)
    echo "fuzz: SHOAL_FUZZ_SANITIZER must be address or none, got $sanitizer" >&2
    exit 2
    ;;
esac
if [[ -n ${SHOAL_FUZZ_TARGET_DIR:-} ]]; then
    target_dir=$SHOAL_FUZZ_TARGET_DIR
elif [[ -n ${CARGO_TARGET_DIR:-} ]]; then
    target_dir=$CARGO_TARGET_DIR/fuzz
else
    target_dir=$fuzz_dir/target
fi
work=${SHOAL_FUZZ_WORK:-$target_dir/corpus}
# The same flags for build and run, so `cargo fuzz run` finds the build up to date.
flags=(--fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer" --debug-assertions --target-dir "$target_dir")

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir "$fuzz_dir")
fi
[[ ${#targets[@]} -gt 0 ]] || {
    echo "fuzz: no targets found in $fuzz_dir" >&2
    exit 1
}

echo "fuzz: building ${#targets[@]} targets (sanitizer: $sanitizer, target dir: $target_dir)"
cargo fuzz build "${flags[@]}"

logs=$(mktemp -d "${TMPDIR:-/tmp}/shoal-fuzz-logs.XXXXXX")
failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "$fuzz_dir/artifacts/$t"
    log=$logs/$t.log
    echo "fuzz: $t for ${seconds}s"
    set +e
    # Generated inputs go to the work corpus (first dir); the committed seeds are read only.
    # -timeout: an input taking 10 s is a hang; -rss_limit_mb: the 2 GB default, said out loud.
    cargo fuzz run "${flags[@]}" "$t" "$work/$t" "$fuzz_dir/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [[ -n $execs ]] || execs=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -1)
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.* cov: \([0-9]*\).* ft: \([0-9]*\).* corp: \([0-9]*\).*/cov \1, features \2, corpus \3/p')
    if [[ $rc -eq 0 ]]; then
        line=$(printf '%-18s ok     %12s execs  %s' "$t" "${execs:-?}" "$cov")
    else
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        why=$(grep -m1 -E "panicked at|ERROR: libFuzzer|==ERROR:|SUMMARY:" "$log" || true)
        line=$(printf '%-18s FAILED %12s execs  %s  artifact: %s' "$t" "${execs:-?}" "$cov" "${artifact:-none}")
        failed+=("$t")
        echo "fuzz: $t failed (exit $rc): ${why:-see the log}"
        echo "fuzz: log: $log"
        [[ -n ${artifact:-} ]] && echo "fuzz: reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run ${flags[*]} $t $artifact"
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "fuzz summary (${seconds}s per target, sanitizer $sanitizer):"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: FAILED: ${failed[*]} (logs in $logs)"
    exit 1
fi
rm -rf "$logs"
