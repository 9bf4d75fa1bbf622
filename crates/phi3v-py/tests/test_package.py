"""The wheel: one abi3 build for every CPython ≥ 3.9, with its type stub and py.typed."""

import os
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


def test_the_stub_names_what_the_module_has():
    stub = (Path(phi3v.__file__).parent / "__init__.pyi").read_text()
    for name in ("Pipeline", "Session", "Stream", "Answer", "Timings", "Error", "ImageError", "PromptError", "CheckpointError"):
        assert f"class {name}" in stub and hasattr(phi3v, name), name
    for method in ("ask", "stream", "generate", "chat", "session", "inspect", "pixel_values"):
        assert callable(getattr(phi3v.Pipeline, method)) and f"def {method}(" in stub, method
