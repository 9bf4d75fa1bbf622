#!/usr/bin/env bash
# Regenerates tests/fixtures/hub/: small parquet files in the Hub layout of MMMU and BLINK,
# written by the `datasets` library with each dataset's declared features.
# Usage (from the repository root): bash tests/hub/regenerate.sh
# Needs python3 and PyPI the first time; the virtual environment is kept in tests/hub/.venv
# (git-ignored). CI never runs this: the files are committed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$venv/bin/python" "$here/make_fixtures.py" "$here/../fixtures/hub"
