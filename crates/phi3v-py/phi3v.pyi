"""Phi-3-vision and Phi-3.5-vision on CPU: ask about images, charts and documents.

    import phi3v
    from PIL import Image

    pipeline = phi3v.Pipeline("microsoft/Phi-3.5-vision-instruct", quant="q4")
    answer = pipeline.ask("Which quarter had the highest revenue?", [Image.open("chart.png")])
    print(answer.text)

The model runs with the GIL released: other threads keep running, and several threads may use
one pipeline at once. Ctrl-C stops a generation before its next token and raises
KeyboardInterrupt. Errors the library reports are `phi3v.Error` or one of its subclasses;
bad argument values are `ValueError`, wrong types `TypeError`.
"""

import os
from typing import Any, Callable, Literal, Mapping, Optional, Sequence, TypedDict, Union, final, overload

from typing_extensions import Unpack

import numpy
import numpy.typing

__all__ = ["Answer", "CheckpointError", "Error", "ImageError", "Pipeline", "PromptError", "Session", "Stream", "Timings"]

# A path (str or os.PathLike; an http(s):// or data: URL string is fetched or decoded), an
# encoded image file's bytes, a PIL.Image.Image of any mode (converted with .convert("RGB"),
# as the reference processor converts it), or an H×W×3 uint8 array.
_ImageLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Any]

# {"role": "system" | "user" | "assistant", "content": str | [part, ...]} where a part is
# {"type": "text", "text": str}, {"type": "image_url", "image_url": {"url": str}} (a data URL,
# an http(s) URL, a file:// URL or a path) or {"type": "image", "image": _ImageLike}.
_ChatMessage = Mapping[str, Any]

class _GenerationOptions(TypedDict, total=False):
    """The keywords every generation method takes (all optional)."""

    max_tokens: int
    """Most tokens to generate (512)."""
    temperature: float
    """0 (the default) is greedy; otherwise logits are divided by it before sampling."""
    top_p: float
    """Nucleus sampling: keep the most likely tokens up to this probability mass (1.0: all)."""
    top_k: int
    """Keep only this many most likely tokens (0: all)."""
    seed: Optional[int]
    """The sampler's seed (default: a fresh one, reported as Answer.seed)."""
    repetition_penalty: float
    """Above 1 makes tokens already seen less likely (1.0: off)."""
    stop: Union[str, Sequence[str], None]
    """End the answer where one of these appears (not included)."""

class Error(Exception):
    """Anything the phi3v library reports; the base of the other phi3v errors."""

class ImageError(Error):
    """An image that cannot be read, decoded, fetched or cropped."""

class PromptError(Error):
    """A prompt the model cannot take: image tags that do not match the images, a malformed
    message, or more tokens than the context holds."""

class CheckpointError(Error):
    """A checkpoint that cannot be found, read or loaded."""

@final
class Timings:
    """Where the time of one answer went."""

    @property
    def encode_s(self) -> float:
        """Image preprocessing, vision tower and projector (0 for images seen before)."""
    @property
    def prefill_s(self) -> float:
        """The forward pass over the prompt."""
    @property
    def decode_s(self) -> float:
        """All later forward passes."""
    @property
    def prefill_tokens(self) -> int: ...
    @property
    def decode_steps(self) -> int: ...
    @property
    def prefill_tokens_per_s(self) -> float: ...
    @property
    def decode_tokens_per_s(self) -> float: ...
    @property
    def first_token_s(self) -> float:
        """Seconds until the first token: encoding and prefill."""

@final
class Answer:
    """One answer. `str(answer)` is its text."""

    @property
    def text(self) -> str:
        """The reply (stop token and stop string excluded)."""
    @property
    def tokens(self) -> list[int]:
        """Generated token ids (a final stop token excluded)."""
    @property
    def prompt_tokens(self) -> int:
        """Tokens in the prompt, image tokens included."""
    @property
    def image_tokens(self) -> list[int]:
        """Image tokens of each image in the prompt."""
    @property
    def finish_reason(self) -> Literal["stop", "length", "cancelled"]: ...
    @property
    def stop(self) -> str:
        """What stopped it: 'token 32007', 'string "..."', 'max_tokens', 'context_full' or
        'cancelled'."""
    @property
    def seed(self) -> int:
        """The sampler's seed (to repeat a sampled answer)."""
    @property
    def timings(self) -> Timings: ...

@final
class Stream:
    """Pieces of an answer as they are generated. After the last one, `answer` is set.
    `close()` (or leaving a `with` block) stops the generation before its next token."""

    def __iter__(self) -> Stream: ...
    def __next__(self) -> str: ...
    @property
    def answer(self) -> Optional[Answer]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Stream: ...
    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None: ...

@final
class Session:
    """A conversation that keeps its KV cache between turns (`Pipeline.session()`)."""

    def ask(
        self,
        question: str,
        images: Optional[Sequence[_ImageLike]] = None,
        **options: Unpack[_GenerationOptions],
    ) -> Answer:
        """The next question, with images new in this turn (placed before it)."""
    def stream(
        self,
        question: str,
        images: Optional[Sequence[_ImageLike]] = None,
        **options: Unpack[_GenerationOptions],
    ) -> Stream: ...
    @property
    def messages(self) -> list[dict[str, str]]:
        """The conversation so far, images as their <|image_N|> tags."""
    @property
    def cached_tokens(self) -> int:
        """Positions held in the KV cache."""
    def reset(self) -> None:
        """Forgets the conversation (the system message stays)."""

@final
class Pipeline:
    """A checkpoint loaded once; every method may be called from several threads at once."""

    def __new__(
        cls,
        model: Union[str, "os.PathLike[str]"],
        *,
        quant: Optional[Literal["q8", "q4"]] = None,
        vision_quant: Optional[Literal["none", "q8", "q4"]] = None,
        dtype: Literal["auto", "f32", "bf16", "f16"] = "auto",
        kv_cache: Literal["auto", "f32", "f16", "q8"] = "auto",
        num_crops: Optional[int] = None,
        threads: Optional[int] = None,
        progress: Optional[Callable[[Literal["loading", "encoding", "prefill"], int, int], None]] = None,
    ) -> Pipeline:
        """Loads `model`: a checkpoint directory, or a Hugging Face id (downloaded into the HF
        cache on first use). `quant` quantises the weight matrices at load (a checkpoint
        written by `phi3v quantize` loads as written); `num_crops` defaults to the
        checkpoint's (4 for Phi-3.5-vision, 16 for Phi-3-vision). `progress(stage, done,
        total)` is called from the model's threads while the weights load ("loading", bytes),
        an image is encoded ("encoding", crops) and a prompt is read ("prefill", tokens); what
        it raises is reported as unraisable and ignored."""
    def ask(
        self,
        question: str,
        images: Optional[Sequence[_ImageLike]] = None,
        **options: Unpack[_GenerationOptions],
    ) -> Answer:
        """One question about `images` (placed before it). Greedy unless temperature > 0."""
    def stream(
        self,
        question: str,
        images: Optional[Sequence[_ImageLike]] = None,
        **options: Unpack[_GenerationOptions],
    ) -> Stream:
        """`ask`, as an iterator of text pieces."""
    def generate(
        self,
        prompt: str,
        images: Optional[Sequence[_ImageLike]] = None,
        **options: Unpack[_GenerationOptions],
    ) -> Answer:
        """Generates from a prompt already in the chat template, passed verbatim, with an
        <|image_N|> tag for each image (as `phi3v ask --raw`)."""
    @overload
    def chat(
        self,
        messages: Sequence[_ChatMessage],
        *,
        stream: Literal[False] = False,
        **options: Unpack[_GenerationOptions],
    ) -> Answer: ...
    @overload
    def chat(
        self,
        messages: Sequence[_ChatMessage],
        *,
        stream: Literal[True],
        **options: Unpack[_GenerationOptions],
    ) -> Stream: ...
    def session(self, system: Optional[str] = None) -> Session:
        """A conversation that keeps its KV cache between turns."""
    def inspect(
        self,
        question: str = "",
        images: Optional[Sequence[_ImageLike]] = None,
        *,
        system: Optional[str] = None,
    ) -> dict[str, Any]:
        """Token counts of a question, without running the model: prompt_tokens, text_tokens,
        image_tokens (per image) and context. Over the context: PromptError."""
    def pixel_values(self, image: _ImageLike) -> numpy.typing.NDArray[numpy.float32]:
        """The vision tower's input for `image`: float32 [crops, 3, 336, 336], the global view
        first (the reference processor's pixel_values without its zero padding crops)."""
    @property
    def num_crops(self) -> int: ...
    @property
    def context_length(self) -> int: ...
