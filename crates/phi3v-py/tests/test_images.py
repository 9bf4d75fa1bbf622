"""Every image form gives the same pixel values, and those of the reference processor (the
golden SHA-256s of its float32 `pixel_values`, made from PIL images of every mode)."""

import hashlib
import json
import numpy as np
import pytest
from PIL import Image

import phi3v
from conftest import FIXTURES, IMAGES, MODELS

PREPROCESS = json.loads((FIXTURES / "golden" / "preprocess.json").read_text())
CROP = 3 * 336 * 336


def forms(path):
    """The same image as each input form the API takes."""
    data = path.read_bytes()
    pil = Image.open(path)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    return {
        "str": str(path),
        "Path": path,
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "PIL": pil,
        "array": rgb,
        "array, not contiguous": np.asfortranarray(rgb),
    }


@pytest.fixture(scope="module")
def by_crops():
    return {n: phi3v.Pipeline(MODELS["tiny-phi35v"], num_crops=n) for n in (4, 16)}


def sha256(values, zeros=0):
    return hashlib.sha256(values.astype("<f4").tobytes() + bytes(4 * zeros)).hexdigest()


@pytest.mark.parametrize("entry", [e for e in PREPROCESS["entries"] if "sha256_tiles" in e], ids=lambda e: e["key"])
def test_pil_images_of_every_mode_give_the_reference_pixel_values(by_crops, entry):
    image = Image.open(FIXTURES / entry["image"])  # JPEGs decoded by PIL, as the reference decoded them
    assert image.mode == entry["mode"]
    values = by_crops[entry["num_crops"]].pixel_values(image)
    assert values.dtype == np.float32 and values.shape[1:] == (3, 336, 336)
    n = values.shape[0]
    assert sha256(values[1:], (entry["num_crops"] + 1 - n) * CROP) == entry["sha256_tiles"]
    assert sha256(values[0]) == entry["sha256_global"]


@pytest.mark.parametrize("name", ["landscape.png", "rgba.png", "palette.png", "gray.png", "rgb16.png", "hopper.jpg"])
def test_every_input_form_gives_identical_pixel_values(pipeline, name):
    path = IMAGES / name
    values = {form: pipeline.pixel_values(image) for form, image in forms(path).items()}
    reference = values.pop("str")
    for form, v in values.items():
        assert np.array_equal(v, reference), form


def test_jpeg_files_decode_to_pils_pixels(pipeline):
    # The fixtures hold PIL's decoding of each JPEG: the file and PIL's pixels agree exactly.
    for name in ["hopper", "photo"]:
        from_file = pipeline.pixel_values(IMAGES / f"{name}.jpg")
        from_pil = pipeline.pixel_values(Image.open(IMAGES / f"{name}.pil-decoded.png"))
        assert np.array_equal(from_file, from_pil), name


def test_answers_are_the_same_for_every_form(pipeline):
    answers = {form: pipeline.ask("What is it?", [image], max_tokens=6).tokens for form, image in forms(IMAGES / "wide.png").items()}
    assert len({tuple(t) for t in answers.values()}) == 1, answers


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGBA", "CMYK", "YCbCr", "I", "I;16", "F", "HSV"])
def test_pil_images_of_any_mode_are_converted_as_pil_converts_them(pipeline, mode):
    source = "gray.png" if mode in ("I", "I;16", "F") else "landscape.png"  # PIL makes those from grey
    image = Image.open(IMAGES / source).convert(mode)
    expected = np.asarray(image.convert("RGB"))
    assert np.array_equal(pipeline.pixel_values(image), pipeline.pixel_values(expected))
