#!/usr/bin/env bash
# Trains the demo checkpoint in assets/phi3v-demo/ from scratch (about 11 minutes on 2 cores).
# Usage (from the repository root): bash tests/reference/train_demo.sh [OUT]
# Builds the phi3v command, generates training charts with seeds of their own (never the
# committed evaluation sets'), then trains with the PyTorch reference modules (train_demo.py).
# Same venv as regenerate.sh (tests/reference/.venv, from requirements.txt).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(realpath -m "${1:-$root/assets/phi3v-demo}")"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
cargo build --release --locked -p phi3v-cli --manifest-path "$root/Cargo.toml"
data="$(mktemp -d)"
trap 'rm -rf "$data"' EXIT
"$root/target/release/phi3v" eval generate --out "$data" --seed 1001 --charts 1500 --quarterly 1500 \
  --questions-per-chart 9 --ocr 0 --scenes 0
cd "$here"
"$venv/bin/python" train_demo.py --data "$data" --tokenizer "$root/tests/fixtures/tiny-phi35v" --out "$out"
"$venv/bin/python" demo_goldens.py "$out"
