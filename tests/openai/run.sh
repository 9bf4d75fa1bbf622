#!/usr/bin/env bash
# Drives `phi3v serve` with the official `openai` Python client (pinned in requirements.txt).
# Usage (from the repository root): bash tests/openai/run.sh [PATH-TO-phi3v]
# The virtual environment is kept in tests/openai/.venv (git-ignored); the first run installs
# the client from PyPI. The server runs on 127.0.0.1 with the tiny fixture checkpoint.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
binary="$(realpath "${1:-target/release/phi3v}")"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
cd "$here"
PHI3V_BINARY="$binary" timeout 600 "$venv/bin/python" -m unittest -v client_test
