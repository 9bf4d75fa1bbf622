"""Writes MMMU- and BLINK-shaped parquet files as the Hub serves them.

Each file is made by `datasets.Dataset.from_dict(..., features=...).to_parquet(...)` with the
features the dataset card declares (`MMMU/MMMU`, `BLINK-Benchmark/BLINK`), so the schema, the
image structs ({bytes, path}) and the list columns are the library's own. The rows are ours,
small, in the published shapes (ids, option lists, `<image N>` mentions, "(A)" answers).
"""

import io
import sys
from pathlib import Path

from datasets import Dataset, Features, Image, Sequence, Value
from PIL import Image as PILImage


def picture(color, fmt="PNG"):
    img = PILImage.new("RGB", (8, 8), color)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return {"bytes": buf.getvalue(), "path": None}


def mmmu(out: Path):
    features = Features(
        {
            "id": Value("string"),
            "question": Value("string"),
            "options": Value("string"),
            "explanation": Value("string"),
            **{f"image_{k}": Image() for k in range(1, 8)},
            "img_type": Value("string"),
            "answer": Value("string"),
            "topic_difficulty": Value("string"),
            "question_type": Value("string"),
            "subfield": Value("string"),
        }
    )
    rows = {
        "id": ["validation_Art_Theory_1", "validation_Art_Theory_2"],
        "question": ["<image 1> Which painting in the options shares its palette?", "How many figures stand in <image 1>?"],
        "options": ["['<image 2>', 'a grey sketch', 'none of these']", "[]"],
        "explanation": ["", ""],
        "image_1": [picture((200, 40, 40)), picture((40, 40, 200), "JPEG")],
        "image_2": [picture((210, 50, 50)), None],
        **{f"image_{k}": [None, None] for k in range(3, 8)},
        "img_type": ["['Paintings']", "['Sketches and Drafts']"],
        "answer": ["A", "3"],
        "topic_difficulty": ["Easy", "Medium"],
        "question_type": ["multiple-choice", "open"],
        "subfield": ["Art History", "Drawing"],
    }
    path = out / "MMMU" / "Art_Theory" / "validation-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(rows, features=features).to_parquet(str(path))
    # A dev split beside it, which a validation run leaves out.
    dev = {k: v[:1] for k, v in rows.items()}
    dev["id"] = ["dev_Art_Theory_1"]
    Dataset.from_dict(dev, features=features).to_parquet(str(path.with_name("dev-00000-of-00001.parquet")))


def blink(out: Path):
    features = Features(
        {
            "idx": Value("string"),
            "question": Value("string"),
            "sub_task": Value("string"),
            **{f"image_{k}": Image() for k in range(1, 5)},
            "choices": Sequence(Value("string")),
            "answer": Value("string"),
            "prompt": Value("string"),
            "explanation": Value("string"),
        }
    )
    question = "Which image shares the style of the first one?"
    choices = ["the second image", "the third image"]
    prompt = question + "\nSelect from the following choices.\n" + "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
    rows = {
        "idx": ["val_Art_Style_1"],
        "question": [question],
        "sub_task": ["Art Style"],
        "image_1": [picture((10, 120, 10))],
        "image_2": [picture((12, 118, 12))],
        "image_3": [picture((240, 240, 240), "JPEG")],
        "image_4": [None],
        "choices": [choices],
        "answer": ["(A)"],
        "prompt": [prompt],
        "explanation": [""],
    }
    path = out / "BLINK" / "Art_Style" / "val-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(rows, features=features).to_parquet(str(path))


if __name__ == "__main__":
    out = Path(sys.argv[1])
    mmmu(out)
    blink(out)
    print(f"wrote {out}")
