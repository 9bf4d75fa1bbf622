"""Reference greedy answers of the demo checkpoint (assets/phi3v-demo) to every question of the
committed chart evaluation set (assets/evals/chartqa.jsonl) and to the README's chart
(assets/chart.png, the two question families the model learned), for the parity test
crates/phi3v/tests/demo_model.rs. Run by train_demo.sh after training; alone:

    tests/reference/.venv/bin/python tests/reference/demo_goldens.py [MODEL]

Writes tests/fixtures/golden/phi3v-demo.json: per question its greedy tokens (stop token
excluded, at most MAX_TOKENS) and the smallest gap between the two best logits over its steps.
"""

import json
import sys
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file
from tokenizers import Tokenizer

import phi3v_ref as ref

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "assets" / "phi3v-demo"
SET = ROOT / "assets" / "evals"
OUT = ROOT / "tests" / "fixtures" / "golden" / "phi3v-demo.json"
MAX_TOKENS = 8
STOP_IDS = {32007, 32000, 2}


def main():
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else MODEL
    torch.set_num_threads(2)
    cfg = json.loads((model / "config.json").read_text())
    pp = json.loads((model / "preprocessor_config.json").read_text())
    state = {k: v.float() for k, v in load_file(model / "model.safetensors").items()}
    m = ref.Phi3VReference(cfg, state)
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    asked = [json.loads(line) for line in open(SET / "chartqa.jsonl")]
    asked += [{"id": f"readme-{w}", "images": ["../chart.png"], "question": f"Which quarter had the {w} revenue?"}
              for w in ("highest", "lowest")]
    cases = []
    for r in asked:
        px, hw, ntok, _ = ref.preprocess_image(Image.open(SET / r["images"][0]), pp["num_crops"],
                                               pp["image_mean"], pp["image_std"])
        rows, _ = m.image_embeds(px[None], [hw])
        prompt = ref.chat_template([{"role": "user", "content": "<|image_1|>\n" + r["question"]}])
        embeds = m.embed(ref.prompt_to_ids(tok, prompt, [ntok]), rows)
        tokens, logits, _ = m.greedy(embeds, MAX_TOKENS)
        n = next((i for i, t in enumerate(tokens) if t in STOP_IDS), len(tokens))
        top2 = logits[: n + 1 if n < len(tokens) else n].topk(2, dim=-1).values
        cases.append({"id": r["id"], "question": r["question"], "image": r["images"][0],
                      "tokens": tokens[:n], "answer": tok.decode(tokens[:n]),
                      "min_gap": round(float((top2[:, 0] - top2[:, 1]).min()), 4)})
    OUT.write_text(json.dumps({"model": "assets/phi3v-demo", "max_tokens": MAX_TOKENS, "cases": cases}, indent=1) + "\n")
    print(f"{len(cases)} reference answers in {OUT}")


if __name__ == "__main__":
    main()
