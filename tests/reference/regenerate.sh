#!/usr/bin/env bash
# Regenerates tests/fixtures/ from the pinned PyTorch reference.
# Usage (from the repository root): bash tests/reference/regenerate.sh
# Needs python3 (3.11) and network access to PyPI the first time; the virtual environment is kept
# in tests/reference/.venv (git-ignored). CI never runs this: the fixtures are committed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
cd "$here"
"$venv/bin/python" generate.py "$@"
