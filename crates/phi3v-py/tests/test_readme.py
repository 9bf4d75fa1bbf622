"""The README's Python examples (section "From Python"), run as written from the repository root."""

import os

from conftest import ROOT


def test_the_readme_examples_run(capsys):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## From Python\n", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```python\n")[1:]]
    assert len(blocks) == 2
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        scope = {}
        for block in blocks:
            exec(compile(block, "README.md", "exec"), scope)
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == scope["answer"].text
    assert out[1].startswith(f"{scope['answer'].prompt_tokens} prompt tokens, first token after ")
    assert out[2] == out[0], "the streamed answer is the same"
