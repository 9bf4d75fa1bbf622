"""Writes a full-size random-weight checkpoint with the official shapes, names and files.

Phi-3-vision-128k-instruct (`--variant phi3v`) or Phi-3.5-vision-instruct (`--variant phi35v`):
CLIP ViT-L/14-336 (24 layers, 1024 wide), projector 4096 -> 3072 -> 3072, a 32-layer 3072-wide
phi-3-mini decoder with the official LongRoPE factors, vocab 32064; bf16 safetensors in two
shards (at most 5 GB each, as `save_pretrained` writes them) with the index, the official
config.json (the `img_processor` entry without tower sizes, as published) and
preprocessor_config.json, and the Phi-3 tokenizer. About 8.3 GB; for benchmarks and memory
checks only. Never commit it: the script refuses to write inside the repository.

Usage (from the repository root, with the reference venv of regenerate.sh):
    tests/reference/.venv/bin/python tests/reference/fullsize.py --variant phi35v --out /data/phi35v-random
"""

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

import generate as gen

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "phi3v-reference.md"


def factors_from_spec():
    """The official LongRoPE lists of both models (48 entries, one per frequency pair of head_dim
    96), as the project spec records them from the published config.json files."""
    lines = SPEC.read_text().splitlines()
    found = {}
    for i, line in enumerate(lines):
        for model in ("Phi-3-vision-128k-instruct", "Phi-3.5-vision-instruct"):
            for kind in ("short_factor", "long_factor"):
                if line.startswith(f"{model} {kind} (48 values"):
                    j = i + 1
                    while not lines[j].startswith("["):
                        j += 1
                    found[(model, kind)] = json.loads(lines[j])
    assert len(found) == 4 and all(len(v) == 48 for v in found.values()), found.keys()
    return found


TEXT = dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=32, num_attention_heads=32,
            num_key_value_heads=32)
CLIP_L = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
              image_size=336, patch_size=14, layer_norm_eps=1e-05, hidden_act="quick_gelu")
MAX_SHARD = 5_000_000_000


def main():
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=["phi3v", "phi35v"], default="phi35v")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer", type=Path, default=repo / "tests" / "fixtures" / "tiny-phi35v")
    args = ap.parse_args()
    out = args.out.resolve()
    if out == repo or repo in out.parents:
        raise SystemExit(f"{out} is inside the repository; write full-size checkpoints elsewhere")

    f = factors_from_spec()
    model = "Phi-3-vision-128k-instruct" if args.variant == "phi3v" else "Phi-3.5-vision-instruct"
    tiny = gen.CHECKPOINTS["tiny-phi3v" if args.variant == "phi3v" else "tiny-phi35v"]
    spec = dict(tiny, original_max=4096, max_pos=131072, short=f[(model, "short_factor")],
                long=f[(model, "long_factor")], name=f"{model} layout, full size, random weights (seed {args.seed})")
    gen.TEXT.update(TEXT)
    gen.VISION.update(CLIP_L)
    cfg = gen.config_json(spec)
    shapes = gen.tensor_names_and_shapes(cfg)
    # As published: the tower is named, not sized.
    cfg["img_processor"] = {"image_dim_out": 1024, "model_name": "openai/clip-vit-large-patch14-336",
                            "name": "clip_vision_model", "num_img_tokens": 144}

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out / "preprocessor_config.json").write_text(json.dumps(gen.preprocessor_json(spec), indent=2) + "\n")
    for name in gen.TOKENIZER_FILES:
        shutil.copyfile(args.tokenizer / name, out / name)

    # Shards of at most 5 GB in state-dict order, each written as soon as it is full.
    generator = torch.Generator().manual_seed(args.seed)
    shards, current, size = [], {}, 0  # shards: the tensor names of each written shard

    def flush():
        shards.append(list(current))
        save_file(current, out / f"shard-{len(shards)}.tmp", metadata={"format": "pt"})
        print(f"shard {len(shards)}: {len(current)} tensors, {size / 1e9:.2f} GB")

    for name, shape in shapes.items():
        t = gen.random_tensor(name, shape, generator).to(torch.bfloat16).contiguous()
        if size + t.numel() * 2 > MAX_SHARD and current:
            flush()
            current, size = {}, 0
        current[name] = t
        size += t.numel() * 2
    flush()
    files = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for i, (names, file) in enumerate(zip(shards, files)):
        (out / f"shard-{i + 1}.tmp").rename(out / file)
        weight_map |= {k: file for k in names}
    total = sum(2 * int(torch.tensor(s).prod()) for s in shapes.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    print(f"{out}: {len(weight_map)} tensors, {total / 1e9:.2f} GB in {len(files)} shards")


if __name__ == "__main__":
    main()
