"""One cold question answered by the PyTorch reference, as `phi3v ask` answers it.

Loads the checkpoint (bf16 by default), preprocesses the image, runs CLIP and the projector,
prefills the chat prompt and decodes greedily, then prints the generated token ids as JSON. It
does what `phi3v ask --image IMAGE --num-crops N --max-tokens T QUESTION` does, so that the wall
time of the whole process (interpreter start and imports included) can be set against
`phi3v ask`'s: `phi3v bench --cold` runs both, alternately.

    tests/reference/.venv/bin/python tests/reference/ask_torch.py --model /data/phi35v-random \
        --image assets/chart.png --num-crops 4 --max-tokens 32
"""

import argparse
import json
from pathlib import Path

import torch
from PIL import Image
from tokenizers import Tokenizer

from bench_torch import QUESTION, load_model, project
import phi3v_ref as ref


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--image", type=Path, required=True)
    ap.add_argument("--num-crops", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--question", default=QUESTION)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32

    m, pp = load_model(args.model, dtype)
    tokenizer = Tokenizer.from_file(str(args.model / "tokenizer.json"))
    image = Image.open(args.image)
    pixels, (h, w), n_img, _ = ref.preprocess_image(image, args.num_crops, pp["image_mean"], pp["image_std"])
    feats = m.clip_features(pixels[: 1 + (h // ref.CROP) * (w // ref.CROP)].to(dtype))
    rows = project(m, feats, h, w)
    ids = ref.prompt_to_ids(tokenizer, ref.chat_template([{"role": "user", "content": f"<|image_1|>\n{args.question}"}]), [n_img])
    out = m.lm(inputs_embeds=m.embed(ids, rows), position_ids=torch.arange(len(ids))[None], use_cache=True)
    tokens = [int(torch.argmax(out.logits[0, -1]))]
    cache = out.past_key_values
    for pos in range(len(ids), len(ids) + args.max_tokens - 1):
        out = m.lm(input_ids=torch.tensor([[tokens[-1]]]), position_ids=torch.tensor([[pos]]), past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        tokens.append(int(torch.argmax(out.logits[0, -1])))
    print(json.dumps({"prompt_tokens": len(ids), "tokens": tokens}))


if __name__ == "__main__":
    main()
