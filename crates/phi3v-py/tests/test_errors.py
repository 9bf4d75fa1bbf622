"""Bad input raises phi3v.Error subclasses worded as the CLI words them (ValueError for bad
argument values, TypeError for wrong types), and never takes the interpreter down."""

import numpy as np
import pytest

import phi3v
from conftest import CHART, IMAGES, MODELS, cli_error


def test_the_hierarchy():
    for cls in (phi3v.ImageError, phi3v.PromptError, phi3v.CheckpointError):
        assert issubclass(cls, phi3v.Error)
    assert issubclass(phi3v.Error, Exception)


def test_image_errors_as_the_cli_words_them(pipeline, tmp_path):
    missing = tmp_path / "missing.png"
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(CHART.read_bytes()[:300])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for path in (missing, corrupt, text):
        with pytest.raises(phi3v.ImageError) as raised:
            pipeline.ask("What?", [path], max_tokens=1)
        assert str(raised.value) == cli_error("ask", "--model", MODELS["tiny-phi35v"], "--image", path, "What?")

    with pytest.raises(phi3v.ImageError, match=r"^images\[1\]: cannot read image"):
        pipeline.ask("What?", [CHART, CHART.read_bytes()[:300]], max_tokens=1)
    with pytest.raises(phi3v.ImageError, match=r"images\[0\]: an array image must be H×W×3 \(RGB\), got shape \[4, 4\]"):
        pipeline.ask("What?", [np.zeros((4, 4), np.uint8)])
    with pytest.raises(phi3v.ImageError, match="must be uint8, got float32"):
        pipeline.ask("What?", [np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(phi3v.ImageError, match=r"image is empty \(0×4 pixels\)"):
        pipeline.ask("What?", [np.zeros((4, 0, 3), np.uint8)])
    with pytest.raises(phi3v.ImageError, match="only base64 data URLs"):
        pipeline.chat([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}])


def test_wrong_types_and_values(pipeline):
    with pytest.raises(TypeError, match=r"images\[0\]: expected a path, bytes, a PIL.Image.Image .* got int"):
        pipeline.ask("What?", [42])
    with pytest.raises(TypeError, match="images must be a list"):
        pipeline.ask("What?", str(CHART))
    with pytest.raises(ValueError, match="temperature must be a finite number"):
        pipeline.ask("What?", temperature=-1.0)
    with pytest.raises(ValueError, match="max_tokens must be at least 1"):
        pipeline.ask("What?", max_tokens=0)
    with pytest.raises(ValueError, match=r'quant must be one of q8, q4, got "q3"'):
        phi3v.Pipeline(MODELS["tiny-phi35v"], quant="q3")
    with pytest.raises(ValueError, match="num_crops must be from 1 to"):
        phi3v.Pipeline(MODELS["tiny-phi35v"], num_crops=0)
    with pytest.raises(TypeError, match="max_tokens: "):
        pipeline.ask("What?", max_tokens=-5)
    with pytest.raises(TypeError, match='unexpected keyword argument "max_new_tokens" \\(generation takes max_tokens=512, '):
        pipeline.ask("What?", max_new_tokens=5)
    with pytest.raises(TypeError, match="temperature: "):
        pipeline.chat([{"role": "user", "content": "Hi"}], temperature="hot")
    with pytest.raises(TypeError, match="stop: "):
        pipeline.session().ask("Hi", stop=5)


def test_prompt_errors_as_the_cli_words_them(pipeline):
    model = MODELS["tiny-phi35v"]
    long = "9" * 40000  # a token per digit: more than the context's 32768
    with pytest.raises(phi3v.PromptError) as raised:
        pipeline.ask(long, max_tokens=1)
    assert str(raised.value) == cli_error("ask", "--model", model, long)
    with pytest.raises(phi3v.PromptError) as raised:
        pipeline.inspect(long)
    assert str(raised.value) == cli_error("inspect", "--model", model, long)

    tagged = "<|user|>\n<|image_2|>\nWhat?<|end|>\n<|assistant|>\n"
    with pytest.raises(phi3v.PromptError) as raised:
        pipeline.generate(tagged, [CHART])
    assert str(raised.value) == cli_error("ask", "--model", model, "--raw", "--image", CHART, tagged)
    with pytest.raises(phi3v.PromptError, match="the prompt is empty"):
        pipeline.ask("  ")

    for messages, where in [
        ("Hi", "messages: must be a list"),
        ([{"content": "Hi"}], r"messages\[0\]: needs a \"role\" field"),
        ([{"role": "tool", "content": "Hi"}], r"messages\[0\].role: \"tool\" is not supported"),
        ([{"role": "user", "content": [{"type": "audio"}]}], r"messages\[0\].content\[0\].type: \"audio\" is not a part type"),
        ([{"role": "assistant", "content": [{"type": "image", "image": CHART}]}], "images are only taken in user messages"),
    ]:
        with pytest.raises(phi3v.PromptError, match=where):
            pipeline.chat(messages)


def test_checkpoint_errors_as_the_cli_words_them(tmp_path):
    for model in (tmp_path / "nowhere", tmp_path):
        with pytest.raises(phi3v.CheckpointError) as raised:
            phi3v.Pipeline(model)
        assert str(raised.value) == cli_error("ask", "--model", model, "Hi")


def test_other_library_errors_are_the_base_class():
    with pytest.raises(phi3v.Error, match="0 threads asked for; between 1 and") as raised:
        phi3v.Pipeline(MODELS["tiny-phi35v"], threads=0)
    assert type(raised.value) is phi3v.Error


def test_errors_leave_the_pipeline_working(pipeline):
    for bad in ([b"junk"], [np.zeros((2, 2), np.uint8)]):
        with pytest.raises(phi3v.Error):
            pipeline.ask("What?", bad)
    assert pipeline.ask("What?", [IMAGES / "wide.png"], max_tokens=2).tokens


def test_malformed_arguments_raise_and_never_crash(pipeline):
    import random

    rng = random.Random(7)
    png = CHART.read_bytes()
    junk = [
        None, 1.5, object(), [CHART], {"url": str(CHART)}, b"", bytes(1000), png[:50], png[:-100],
        bytes(rng.getrandbits(8) for _ in range(400)), np.zeros((3, 3, 3), np.int64), np.zeros((2, 2, 3, 1), np.uint8),
        np.zeros((0, 0, 3), np.uint8), "", "/", "http://", "data:", "data:image/png;base64,", "file://",
    ]
    for bad in junk:
        with pytest.raises((phi3v.Error, TypeError, ValueError)):
            pipeline.ask("What?", [bad], max_tokens=1)
    for messages in ([None], [{"role": "user", "content": 5}], [{"role": "user", "content": [None]}],
                     [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}],
                     [{"role": "user", "content": [{"type": "image_url"}]}], [{"role": 3, "content": "x"}]):
        with pytest.raises(phi3v.PromptError):
            pipeline.chat(messages, max_tokens=1)
    assert pipeline.ask("What?", max_tokens=1).tokens
