"""Answers through the Python API: greedy tokens against the PyTorch reference's (golden files)
and against `phi3v ask --json`, streaming, chat messages, sessions and token counts."""

import base64
import json

import pytest
from PIL import Image

import phi3v
from conftest import CHART, FIXTURES, IMAGES, MODELS, cli, cli_chat, cli_json

GOLDEN = sorted((FIXTURES / "golden").glob("tiny-*/*.json"))


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_greedy_tokens_equal_the_reference_and_the_cli(pipelines, golden):
    case = json.loads(golden.read_text())
    pipeline = pipelines[case["checkpoint"]]
    n = len(case["greedy_tokens"])
    # PIL images, as the reference processor took them.
    images = [Image.open(FIXTURES / i["image"]) for i in case["images"]]
    answer = pipeline.generate(case["prompt"], images, max_tokens=n)
    assert answer.tokens == case["greedy_tokens"]
    assert answer.prompt_tokens == case["prompt_len"]
    assert answer.image_tokens == [i["num_img_tokens"] for i in case["images"]]
    assert (answer.finish_reason, answer.stop) == ("length", "max_tokens")

    args = ["--model", MODELS[case["checkpoint"]], "--raw", "--max-tokens", n]
    for i in case["images"]:
        args += ["--image", FIXTURES / i["image"]]
    theirs = cli_json(*args, case["prompt"])
    assert theirs["tokens"] == answer.tokens
    assert theirs["answer"] == answer.text


@pytest.mark.parametrize("name", sorted(MODELS))
def test_ask_equals_the_cli(pipelines, name):
    question = "Which quarter had the highest revenue?"
    ours = pipelines[name].ask(question, [CHART], max_tokens=12)
    theirs = cli_json("--model", MODELS[name], "--image", CHART, "--max-tokens", 12, question)
    assert ours.tokens == theirs["tokens"]
    assert ours.text == theirs["answer"]
    assert ours.prompt_tokens == theirs["prompt_tokens"]
    assert ours.image_tokens == theirs["image_tokens"]
    assert ours.stop == theirs["stop"]
    assert ours.timings.decode_steps == 12 and ours.timings.first_token_s > 0


def test_sampling_repeats_with_its_seed(pipeline):
    first = pipeline.ask("Describe it.", [CHART], max_tokens=10, temperature=0.9, top_p=0.9, top_k=40)
    again = pipeline.ask("Describe it.", [CHART], max_tokens=10, temperature=0.9, top_p=0.9, top_k=40, seed=first.seed)
    assert again.tokens == first.tokens
    theirs = cli_json("--model", MODELS["tiny-phi35v"], "--image", CHART, "--max-tokens", 10, "--temperature", 0.9,
                      "--top-p", 0.9, "--top-k", 40, "--seed", first.seed, "Describe it.")
    assert theirs["tokens"] == first.tokens


def test_stop_strings_end_the_answer(pipeline):
    whole = pipeline.ask("Describe it.", [CHART], max_tokens=16)
    cut = whole.text[len(whole.text) // 2:][:3]
    assert cut.strip(), whole.text
    stopped = pipeline.ask("Describe it.", [CHART], max_tokens=16, stop=[cut, "never appears"])
    assert stopped.text == whole.text[: whole.text.index(cut)]
    assert (stopped.finish_reason, stopped.stop) == ("stop", f"string {json.dumps(cut)}")
    assert pipeline.ask("Describe it.", [CHART], max_tokens=16, stop=cut).text == stopped.text


def test_streaming_equals_the_whole_answer(pipeline):
    whole = pipeline.ask("What is shown?", [CHART], max_tokens=20)
    stream = pipeline.stream("What is shown?", [CHART], max_tokens=20)
    assert stream.answer is None
    pieces = list(stream)
    assert len(pieces) > 1
    assert "".join(pieces) == whole.text
    assert stream.answer.tokens == whole.tokens
    with pytest.raises(StopIteration):
        next(stream)


def test_a_closed_stream_stops_its_generation(pipeline):
    with pipeline.stream("Go on.", max_tokens=5000) as stream:
        first = next(stream)
    assert isinstance(first, str)
    assert list(stream) == []


def data_url(path):
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def test_chat_messages_with_every_image_part(pipeline):
    question = "Which quarter had the highest revenue?"
    asked = pipeline.ask(question, [CHART], max_tokens=10)
    for image in [
        {"type": "image_url", "image_url": {"url": data_url(CHART)}},
        {"type": "image_url", "image_url": {"url": f"file://{CHART}"}},
        {"type": "image_url", "image_url": {"url": str(CHART)}},
        {"type": "image", "image": Image.open(CHART)},
    ]:
        answer = pipeline.chat([{"role": "user", "content": [image, {"type": "text", "text": question}]}], max_tokens=10)
        assert answer.tokens == asked.tokens, image["type"]

    # A system message and images across turns, against the CLI with the same template.
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image", "image": CHART}, {"type": "text", "text": "What is it?"}]},
        {"role": "assistant", "content": "A chart."},
        {"role": "user", "content": [{"type": "text", "text": "And this?"}, {"type": "image", "image": IMAGES / "wide.png"}]},
    ]
    answer = pipeline.chat(messages, max_tokens=8)
    prompt = ("<|system|>\nBe brief.<|end|>\n<|user|>\n<|image_1|>\nWhat is it?<|end|>\n<|assistant|>\nA chart.<|end|>\n"
              "<|user|>\nAnd this?\n<|image_2|><|end|>\n<|assistant|>\n")
    theirs = cli_json("--model", MODELS["tiny-phi35v"], "--raw", "--max-tokens", 8, "--image", CHART,
                      "--image", IMAGES / "wide.png", prompt)
    assert answer.tokens == theirs["tokens"]
    streamed = pipeline.chat(messages, max_tokens=8, stream=True)
    assert "".join(streamed) == answer.text


def test_sessions_keep_the_conversation_as_the_cli_chat_does(pipeline, tmp_path):
    session = pipeline.session()
    first = session.ask("What is shown?", [IMAGES / "landscape.png"], max_tokens=6)
    assert session.cached_tokens == first.prompt_tokens + len(first.tokens)
    second = session.ask("And the colours?", max_tokens=6)
    assert second.image_tokens == [] and second.prompt_tokens < 30, "a follow-up feeds only its own tokens"
    streamed = session.stream("Compare.", [IMAGES / "landscape.png"], max_tokens=4)
    third_text = "".join(streamed)
    assert streamed.answer.image_tokens == [757]

    # `phi3v chat` on the same turns holds the same conversation.
    saved = tmp_path / "chat.json"
    script = f"What is shown?\nAnd the colours?\n/image {IMAGES / 'landscape.png'}\nCompare.\n/save {saved}\n/exit\n"
    done = cli_chat(["--model", MODELS["tiny-phi35v"], "--image", IMAGES / "landscape.png", "--max-tokens", 6], script)
    theirs = json.loads(saved.read_text())
    ours = session.messages
    assert [m["role"] for m in ours] == ["user", "assistant"] * 3
    assert ours[:4] == theirs[:4], done
    assert ours[4] == theirs[4] and ours[4]["content"].startswith("<|image_2|>\n")
    assert third_text == theirs[5]["content"][: len(third_text)]

    session.reset()
    assert session.cached_tokens == 0 and session.messages == []
    system = pipeline.session(system="Be brief.")
    system.ask("Hi", max_tokens=2)
    assert system.messages[0] == {"role": "system", "content": "Be brief."}


def test_inspect_counts_what_ask_feeds(pipeline):
    counts = pipeline.inspect("Which quarter had the highest revenue?", [CHART])
    answer = pipeline.ask("Which quarter had the highest revenue?", [CHART], max_tokens=1)
    assert counts["prompt_tokens"] == answer.prompt_tokens
    assert counts["image_tokens"] == answer.image_tokens
    assert counts["text_tokens"] == answer.prompt_tokens - sum(answer.image_tokens)
    assert counts["context"] == pipeline.context_length == 32768
    out = cli("inspect", "--model", MODELS["tiny-phi35v"], "--image", CHART, "--system", "Hi", "What?").stdout
    with_system = pipeline.inspect("What?", [CHART], system="Hi")
    assert f"prompt    {with_system['prompt_tokens']} tokens" in out


def test_num_crops_and_formats_load_as_asked():
    p = phi3v.Pipeline(MODELS["tiny-phi35v"], num_crops=1, quant="q8", kv_cache="q8", threads=1)
    assert p.num_crops == 1
    answer = p.ask("What?", [CHART], max_tokens=4)
    theirs = cli_json("--model", MODELS["tiny-phi35v"], "--num-crops", 1, "--quant", "q8", "--kv-cache", "q8",
                      "--image", CHART, "--max-tokens", 4, "What?")
    assert answer.tokens == theirs["tokens"] and answer.image_tokens == theirs["image_tokens"]


def test_progress_reports_loading_encoding_and_prefill(monkeypatch):
    events = []
    p = phi3v.Pipeline(MODELS["tiny-phi35v"], progress=lambda *e: events.append(e))
    assert {e[0] for e in events} == {"loading"}
    assert events[-1][1] == events[-1][2] > 0
    events.clear()
    answer = p.ask("What?", [CHART], max_tokens=2)
    assert [e for e in events if e[0] == "encoding"][-1] == ("encoding", 5, 5)  # 2×2 tiles and the global view
    assert events[-1] == ("prefill", answer.prompt_tokens, answer.prompt_tokens)

    # What the callback raises is reported as unraisable; the model goes on.
    unraisable = []
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)

    def broken(*_):
        raise RuntimeError("broken callback")

    q = phi3v.Pipeline(MODELS["tiny-phi35v"], progress=broken)
    assert q.ask("What?", max_tokens=1).tokens
    assert unraisable and str(unraisable[0].exc_value) == "broken callback"
