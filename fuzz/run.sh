#!/usr/bin/env bash
# Runs the libFuzzer targets, each for SECONDS (default 900), seeded from the project's fixtures
# (fuzz/seeds.py) and the committed reproducers (fuzz/regressions/<target>/).
#   fuzz/run.sh [SECONDS] [TARGET...]        targets: image prompt checkpoint eval
# Needs cargo-fuzz (`cargo install cargo-fuzz`); uses the nightly toolchain where there is one,
# otherwise stable with RUSTC_BOOTSTRAP=1. A crash stops its target and leaves the input in
# fuzz/artifacts/<target>/: copy it to fuzz/regressions/<target>/ once fixed (the workspace
# test `fuzz_regressions` replays that folder). Logs go to fuzz/logs/<target>.log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds=${1:-900}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(image prompt checkpoint eval)
if rustup toolchain list | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
python3 seeds.py
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "regressions/$t"
  case $t in
    image) max_len=65536 ;;
    checkpoint | eval) max_len=32768 ;;
    *) max_len=4096 ;;
  esac
  "${fuzz[@]}" run "$t" "corpus/$t" "regressions/$t" -- -max_total_time="$seconds" -max_len="$max_len" \
    -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 2>&1 | tee "logs/$t.log" | grep -E '^#[0-9]+ +(INITED|DONE)|ERROR|SUMMARY|stat::' || true
done
