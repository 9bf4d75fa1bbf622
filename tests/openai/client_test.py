"""`phi3v serve` driven by the official `openai` client: sync and async, streamed and not,
base64 images of every kind, several images, usage, and the client's own error classes.

Run through tests/openai/run.sh (which pins the client); PHI3V_BINARY names the binary.
The server listens on 127.0.0.1 only and is stopped when the tests end.
"""

import asyncio
import base64
import json
import os
import subprocess
import threading
import time
import unittest
from pathlib import Path

import openai

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "tests/fixtures/tiny-phi35v"
IMAGES = REPO / "tests/fixtures/images"
KEY = "test-key"
NAME = "phi-3.5-vision-instruct"


def data_url(path: Path) -> str:
    mime = "image/jpeg" if path.suffix == ".jpg" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def image(path: Path) -> dict:
    return {"type": "image_url", "image_url": {"url": data_url(path), "detail": "auto"}}


def text(t: str) -> dict:
    return {"type": "text", "text": t}


class Server:
    """`phi3v serve --port 0`, its address read from the first log line."""

    def __init__(self):
        binary = os.environ.get("PHI3V_BINARY", str(REPO / "target/release/phi3v"))
        args = [binary, "serve", "--model", str(MODEL), "--port", "0", "--api-key", KEY, "--served-model-name", NAME]
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        self.process = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        self.log = []
        address = None
        deadline = time.time() + 60
        while address is None:
            line = self.process.stderr.readline()
            if not line or time.time() > deadline:
                raise RuntimeError("phi3v serve did not start: " + "".join(self.log))
            self.log.append(line)
            event = json.loads(line)
            if event.get("message") == "listening":
                address = event["address"]
        threading.Thread(target=self._drain, daemon=True).start()
        self.base_url = address + "/v1"
        client = openai.OpenAI(base_url=self.base_url, api_key=KEY)
        while True:  # ready once the weights are loaded
            try:
                client.models.list()
                break
            except openai.InternalServerError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def _drain(self):
        for line in self.process.stderr:
            self.log.append(line)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)
        return self.process.returncode


class OpenAIClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.client = openai.OpenAI(base_url=cls.server.base_url, api_key=KEY, max_retries=0, timeout=120)

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0, "".join(cls.server.log[-20:])

    def ask(self, content, **kw):
        kw.setdefault("max_tokens", 8)
        return self.client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": content}], **kw)

    def test_models(self):
        models = self.client.models.list()
        self.assertEqual([m.id for m in models.data], [NAME])
        self.assertEqual(self.client.models.retrieve(NAME).owned_by, "phi3v")

    def test_every_image_kind_as_base64(self):
        for name in ["landscape.png", "rgba.png", "gray.png", "palette.png", "rgb16.png", "hopper.jpg", "photo.jpg"]:
            with self.subTest(name):
                reply = self.ask([image(IMAGES / name), text("What is in the image?")], temperature=0)
                self.assertEqual(reply.object, "chat.completion")
                self.assertEqual(reply.choices[0].message.role, "assistant")
                self.assertIn(reply.choices[0].finish_reason, ("stop", "length"))
                # (h·w + 1)·144 + 1 + (h + 1)·12 image tokens, at least one 1×1 grid's 313.
                self.assertGreater(reply.usage.prompt_tokens, 313)
                self.assertEqual(reply.usage.total_tokens, reply.usage.prompt_tokens + reply.usage.completion_tokens)

    def test_several_images_and_usage(self):
        one = self.ask([image(IMAGES / "landscape.png"), text("Describe.")], max_tokens=1)
        two = self.ask([image(IMAGES / "landscape.png"), image(IMAGES / "landscape.png"), text("Describe.")], max_tokens=1)
        # 640×480 at 4 crops is 757 image tokens; the second image adds those and a text chunk
        # (BOS and a newline) between the two tags.
        self.assertIn(two.usage.prompt_tokens - one.usage.prompt_tokens, range(757, 757 + 6))

    def test_stream_equals_the_plain_answer(self):
        content = [image(IMAGES / "photo.jpg"), text("Describe the photo.")]
        plain = self.ask(content, max_tokens=24, temperature=0.8, seed=11)
        stream = self.ask(content, max_tokens=24, temperature=0.8, seed=11, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        self.assertEqual(len({c.id for c in chunks}), 1)
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        self.assertEqual(finishes, [plain.choices[0].finish_reason])
        self.assertEqual(chunks[-1].choices, [])
        for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
            self.assertEqual(getattr(chunks[-1].usage, field), getattr(plain.usage, field))
        # Asked again, the prompt comes from the prefix cache (all but its last token).
        self.assertEqual(chunks[-1].usage.prompt_tokens_details.cached_tokens, plain.usage.prompt_tokens - 1)
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(streamed, plain.choices[0].message.content)

    def test_async_client_streamed_and_not_concurrently(self):
        async def run():
            client = openai.AsyncOpenAI(base_url=self.server.base_url, api_key=KEY, max_retries=0, timeout=120)
            messages = [{"role": "user", "content": [image(IMAGES / "gray.png"), text("What?")]}]

            async def plain():
                r = await client.chat.completions.create(model=NAME, messages=messages, max_tokens=10, temperature=0)
                return r.choices[0].message.content

            async def streamed():
                s = await client.chat.completions.create(model=NAME, messages=messages, max_tokens=10, temperature=0, stream=True)
                return "".join([c.choices[0].delta.content or "" async for c in s if c.choices])

            results = await asyncio.gather(plain(), streamed(), plain(), streamed())
            await client.close()
            return results

        results = asyncio.run(run())
        self.assertEqual(len(set(results)), 1, results)

    def test_the_readme_example(self):
        readme = (REPO / "README.md").read_text()
        block = readme.split("```python\n", 1)[1].split("```", 1)[0]
        block = block.replace("http://127.0.0.1:8000/v1", self.server.base_url).replace('api_key="unused"', f'api_key="{KEY}"')
        block = block.replace('model="tests/fixtures/tiny-phi35v"', f'model="{NAME}"')
        cwd = os.getcwd()
        os.chdir(REPO)  # the example opens assets/chart.png
        try:
            scope = {}
            exec(compile(block, "README.md", "exec"), scope)
        finally:
            os.chdir(cwd)
        self.assertEqual(scope["reply"].object, "chat.completion")
        self.assertGreater(scope["reply"].usage.prompt_tokens, 757)

    def test_errors_are_the_clients_own_classes_and_the_server_goes_on(self):
        broken = bytearray((IMAGES / "palette.png").read_bytes())
        broken[len(broken) // 2 :] = bytes(len(broken) - len(broken) // 2)
        url = "data:image/png;base64," + base64.b64encode(bytes(broken)).decode()
        with self.assertRaises(openai.BadRequestError) as caught:
            self.ask([{"type": "image_url", "image_url": {"url": url}}, text("What?")])
        self.assertEqual(caught.exception.body["param"], "messages[0].content[0].image_url.url")
        with self.assertRaises(openai.BadRequestError):
            self.ask("hi", n=2)
        with self.assertRaises(openai.NotFoundError):
            self.client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        with self.assertRaises(openai.AuthenticationError):
            openai.OpenAI(base_url=self.server.base_url, api_key="wrong", max_retries=0).models.list()
        self.assertEqual(self.ask([image(IMAGES / "tiny.png"), text("Still there?")]).object, "chat.completion")


if __name__ == "__main__":
    unittest.main()
