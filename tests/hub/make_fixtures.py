"""Writes benchmark parquet files shaped as the Hub serves them.

Each file is made by `datasets.Dataset.from_dict(..., features=...).to_parquet(...)` with the
features the dataset card declares (`MMMU/MMMU`, `BLINK-Benchmark/BLINK`, `lmms-lab/POPE`,
`lmms-lab/ScienceQA`, `AI4Math/MathVista`, `lmms-lab/MMBench`), so the schema, the image structs
({bytes, path}), list and struct columns are the library's own. The rows are ours, small, in the
published shapes (ids, option lists, `<image N>` mentions, "(A)" answers, "nan" options).
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


def write(rows, features, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(rows, features=features).to_parquet(str(path))


def pope(out: Path):
    features = Features({"id": Value("string"), "question_id": Value("string"), "question": Value("string"), "answer": Value("string"),
                         "image_source": Value("string"), "image": Image(), "category": Value("string")})
    rows = {
        "id": ["0", "1"],
        "question_id": ["1", "1"],
        "question": ["Is there a snowboard in the image?", "Is there a car in the image?"],
        "answer": ["yes", "no"],
        "image_source": ["COCO_val2014_000000310196", "COCO_val2014_000000310196"],
        "image": [picture((250, 250, 250), "JPEG"), picture((250, 250, 250), "JPEG")],
        "category": ["adversarial", "random"],
    }
    write(rows, features, out / "POPE" / "data" / "test-00000-of-00003.parquet")


def scienceqa(out: Path):
    features = Features({"question": Value("string"), "choices": Sequence(Value("string")), "answer": Value("int8"), "hint": Value("string"),
                         "image": Image(), **{k: Value("string") for k in ["task", "grade", "subject", "topic", "category", "skill", "lecture", "solution"]}})
    rows = {
        "question": ["Which of these states is farthest north?"],
        "choices": [["West Virginia", "Louisiana", "Arizona", "Oklahoma"]],
        "answer": [0],
        "hint": [""],
        "image": [picture((90, 160, 90))],
        "task": ["closed choice"],
        "grade": ["grade2"],
        "subject": ["social science"],
        "topic": ["geography"],
        "category": ["Geography"],
        "skill": ["Read a map: cardinal directions"],
        "lecture": ["Maps have four cardinal directions, or main directions."],
        "solution": ["To find the answer, look at the compass rose."],
    }
    write(rows, features, out / "ScienceQA" / "ScienceQA-IMG" / "test-00000-of-00001.parquet")


def mathvista(out: Path):
    metadata = {"category": Value("string"), "context": Value("string"), "grade": Value("string"), "img_height": Value("int64"), "img_width": Value("int64"),
                "language": Value("string"), "skills": Sequence(Value("string")), "source": Value("string"), "split": Value("string"), "task": Value("string")}
    features = Features({"pid": Value("string"), "question": Value("string"), "image": Value("string"), "decoded_image": Image(), "choices": Sequence(Value("string")),
                         "unit": Value("string"), "precision": Value("float64"), "answer": Value("string"), "question_type": Value("string"),
                         "answer_type": Value("string"), "metadata": metadata, "query": Value("string")})
    rows = {
        "pid": ["1", "2"],
        "question": ["How many bars are there?", "Which bar is tallest?"],
        "image": ["images/1.jpg", "images/2.jpg"],
        "decoded_image": [picture((30, 30, 30), "JPEG"), picture((60, 60, 60), "JPEG")],
        "choices": [None, ["red", "blue"]],
        "unit": [None, None],
        "precision": [None, None],
        "answer": ["4", "blue"],
        "question_type": ["free_form", "multi_choice"],
        "answer_type": ["integer", "text"],
        "metadata": [
            {"category": "math-targeted-vqa", "context": "bar chart", "grade": "elementary school", "img_height": 8, "img_width": 8, "language": "english",
             "skills": ["arithmetic reasoning", "statistical reasoning"], "source": "ChartQA", "split": "testmini", "task": "figure question answering"},
            {"category": "general-vqa", "context": "bar chart", "grade": "elementary school", "img_height": 8, "img_width": 8, "language": "english",
             "skills": ["statistical reasoning"], "source": "ChartQA", "split": "testmini", "task": "figure question answering"},
        ],
        "query": [
            "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.\nQuestion: How many bars are there?",
            "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\nQuestion: Which bar is tallest?\nChoices:\n(A) red\n(B) blue",
        ],
    }
    write(rows, features, out / "MathVista" / "data" / "testmini-00000-of-00001.parquet")


def mmbench(out: Path):
    features = Features({"index": Value("int64"), "question": Value("string"), "hint": Value("string"), "answer": Value("string"),
                         **{c: Value("string") for c in "ABCD"}, "category": Value("string"), "image": Image(), "source": Value("string"),
                         "L2-category": Value("string"), "comment": Value("string"), "split": Value("string")})
    rows = {
        "index": [241, 1000241],
        "question": ["Which is the main topic of the image?", "Which is the main topic of the image?"],
        "hint": ["nan", "nan"],
        "answer": ["A", "C"],
        "A": ["a car", "a dog"],
        "B": ["a dog", "a cat"],
        "C": ["a cat", "a car"],
        "D": ["nan", "nan"],
        "category": ["image_topic", "image_topic"],
        "image": [picture((120, 60, 0)), picture((120, 60, 0))],
        "source": ["MMBench", "MMBench"],
        "L2-category": ["coarse_perception", "coarse_perception"],
        "comment": ["nan", "nan"],
        "split": ["dev", "dev"],
    }
    write(rows, features, out / "MMBench" / "en" / "dev-00000-of-00001.parquet")


if __name__ == "__main__":
    out = Path(sys.argv[1])
    mmmu(out)
    blink(out)
    pope(out)
    scienceqa(out)
    mathvista(out)
    mmbench(out)
    print(f"wrote {out}")
