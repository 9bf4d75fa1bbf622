"""The wheel: one abi3 build for every CPython ≥ 3.9, with its type stub and py.typed."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import phi3v


def test_the_wheel_is_abi3_with_its_stub():
    wheel = os.environ.get("PHI3V_WHEEL")
    if not wheel:
        pytest.skip("PHI3V_WHEEL is set by tests/run.sh")
    assert "-cp39-abi3-" in Path(wheel).name
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("phi3v/__init__.pyi", "phi3v/py.typed"):
        assert name in names


def test_the_module_exports_the_api():
    for name in ("Pipeline", "Session", "Stream", "Answer", "Timings", "Error", "ImageError", "PromptError", "CheckpointError"):
        assert name in phi3v.__all__, name
    for method in ("ask", "stream", "generate", "chat", "session", "inspect", "pixel_values"):
        assert callable(getattr(phi3v.Pipeline, method)), method


def test_the_stub_matches_the_module():
    # mypy's stubtest: every name, signature and default of the stub against the module itself.
    allowlist = Path(__file__).with_name("stubtest-allowlist.txt")  # the extension's own submodule
    done = subprocess.run([sys.executable, "-m", "mypy.stubtest", "phi3v", "--allowlist", str(allowlist)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
