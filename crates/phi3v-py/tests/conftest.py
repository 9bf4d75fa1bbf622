"""Shared fixtures: the repository's tiny checkpoints and images, pipelines loaded once, and
the `phi3v` CLI (PHI3V_BINARY, default target/release/phi3v) to compare against."""

import json
import os
import subprocess
from pathlib import Path

import pytest

import phi3v

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"
IMAGES = FIXTURES / "images"
CHART = ROOT / "assets" / "chart.png"
MODELS = {"tiny-phi3v": FIXTURES / "tiny-phi3v", "tiny-phi35v": FIXTURES / "tiny-phi35v"}


@pytest.fixture(scope="session")
def pipelines():
    return {name: phi3v.Pipeline(path) for name, path in MODELS.items()}


@pytest.fixture(scope="session")
def pipeline(pipelines):
    return pipelines["tiny-phi35v"]


def cli(*args, check=True, stdin=None):
    """Runs the CLI (`stdin`: text to type into it); returns the finished process."""
    binary = os.environ.get("PHI3V_BINARY", str(ROOT / "target" / "release" / "phi3v"))
    done = subprocess.run([binary, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"phi3v {' '.join(map(str, args))} failed: {done.stderr}")
    return done


def cli_json(*args):
    """`phi3v ask --json ...`'s object."""
    return json.loads(cli("ask", "--json", *args).stdout)


def cli_chat(args, script):
    """`phi3v chat ARGS` with `script` typed into it."""
    return cli("chat", *args, stdin=script)


def cli_error(*args):
    """The one line `phi3v` prints for a failing command, without its `error: ` prefix."""
    done = cli(*args, check=False)
    assert done.returncode == 1, done
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), line
    return line[len("error: "):]
