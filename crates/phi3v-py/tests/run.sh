#!/usr/bin/env bash
# Builds the `phi3v` wheel (maturin, abi3), installs it into a virtual environment and runs the
# pytest suite against it and against the CLI.
# Usage (from the repository root): bash crates/phi3v-py/tests/run.sh [PATH-TO-phi3v]
# The virtual environment is kept in crates/phi3v-py/.venv (git-ignored); the first run installs
# maturin, pytest, numpy and Pillow from PyPI (tests/requirements.txt).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
crate="$(dirname "$here")"
binary="$(realpath "${1:-target/release/phi3v}")"
venv="$crate/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
"$venv/bin/maturin" build --release --locked --manifest-path "$crate/Cargo.toml" --interpreter "$venv/bin/python" --out "$wheels"
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheels"/phi3v-*.whl
cd "$here"
PHI3V_BINARY="$binary" PHI3V_WHEEL="$(ls "$wheels"/phi3v-*.whl)" timeout 900 "$venv/bin/python" -m pytest -q -p no:cacheprovider .
