"""The GIL is released while the model runs, several threads share one pipeline, and Ctrl-C
(SIGINT) stops a generation cleanly."""

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import CHART, IMAGES

# With the tiny model this prompt runs to its token limit without a stop token: tens of seconds
# for LONG tokens, far longer than any interrupt below waits.
LONG = 30000


def test_other_threads_run_while_the_model_works(pipeline):
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.002)

    ticker = threading.Thread(target=tick)
    ticker.start()
    start = time.monotonic()
    answer = pipeline.ask("Go on.", [CHART], max_tokens=2000)
    end = time.monotonic()
    done.set()
    ticker.join()
    assert len(answer.tokens) == 2000
    during = [t for t in ticks if start < t < end]
    # Holding the GIL through the answer (about a second) would leave no ticks; released, one
    # every few ms.
    assert len(during) >= max(10, (end - start) / 0.02), (len(during), end - start)


def test_threads_share_one_pipeline(pipeline):
    questions = [("What is it?", [CHART]), ("Describe it.", [IMAGES / "wide.png"]), ("Hi", []), ("Count.", [IMAGES / "tall.png"])]
    alone = [pipeline.ask(q, imgs, max_tokens=12).tokens for q, imgs in questions]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda qi: pipeline.ask(qi[0], qi[1], max_tokens=12).tokens, questions))
    assert together == alone
    with ThreadPoolExecutor(2) as pool:
        streams = list(pool.map(lambda qi: "".join(pipeline.stream(qi[0], qi[1], max_tokens=12)), questions))
    assert streams == [pipeline.ask(q, imgs, max_tokens=12).text for q, imgs in questions]


def interrupt_after(seconds):
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_ctrl_c_stops_an_answer(pipeline):
    start = time.monotonic()
    interrupt_after(0.5)
    with pytest.raises(KeyboardInterrupt):
        pipeline.ask("Go on.", max_tokens=LONG)
    assert time.monotonic() - start < 5
    assert len(pipeline.ask("Go on.", max_tokens=3).tokens) == 3


def test_ctrl_c_stops_a_stream_and_a_session_keeps_what_was_said(pipeline):
    session = pipeline.session()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        # Whether Python's loop or the stream sees the signal first, leaving the block closes it.
        with session.stream("Go on.", max_tokens=LONG) as stream:
            first = next(stream)
            interrupt_after(0.3)
            for _ in stream:
                pass
    # Waits for the generation to end, which it does at its next token.
    reply = session.messages[-1]
    assert time.monotonic() - start < 5
    # The turn is in the conversation, cut short.
    assert reply["role"] == "assistant" and reply["content"].startswith(first)
    assert session.cached_tokens < LONG
    assert len(session.ask("And?", max_tokens=2).tokens) == 2
