"""The wheel: one abi3 build for every CPython ≥ 3.9, with its type stub and py.typed."""

import glob
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import phi3v
from conftest import CHART, MODELS


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


def other_pythons():
    """CPython interpreters here besides this one: the oldest the wheel claims, the newest."""
    found = {}
    for minor in ("3.9", "3.13"):
        candidates = [shutil.which(f"python{minor}"), *glob.glob(os.path.expanduser(f"~/.pyenv/versions/{minor}*/bin/python{minor}"))]
        found.update({minor: c for c in candidates if c and os.access(c, os.X_OK)})
    return sorted(found.items())


@pytest.mark.parametrize("minor, python", other_pythons() or [pytest.param("none", "", marks=pytest.mark.skip("no other CPython here"))])
def test_the_same_wheel_runs_on_other_pythons(pipeline, tmp_path, minor, python):
    wheel = os.environ.get("PHI3V_WHEEL")
    if not wheel:
        pytest.skip("PHI3V_WHEEL is set by tests/run.sh")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps", "--disable-pip-version-check", wheel], check=True, timeout=120)
    script = (f"import phi3v; p = phi3v.Pipeline({str(MODELS['tiny-phi35v'])!r}); "
              f"print(p.ask('What is it?', [{str(CHART)!r}], max_tokens=8).tokens)")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(pipeline.ask("What is it?", [CHART], max_tokens=8).tokens), minor
