"""PyTorch (transformers, bf16 or f32) timings of the same stages as `phi3v bench`, as the same JSON.

The networks are transformers' CLIPVisionModel and Phi3ForCausalLM (SDPA attention) with the
checkpoint's bf16 weights; the image processing, HD feature assembly and projector follow the
official remote code (phi3v_ref.py). Inputs match `phi3v bench`: assets/chart.png (640×480) and
the same picture resized to 1344×1008, one question, greedy decoding.

Usage (from the repository root, with the reference venv of regenerate.sh):
    tests/reference/.venv/bin/python tests/reference/bench_torch.py --model /data/phi35v-random \
        --threads 2 --json torch.json
    phi3v bench --model /data/phi35v-random --threads 2 --compare torch.json
"""

import argparse
import json
import resource
import time
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import CLIPVisionModel, Phi3ForCausalLM

import phi3v_ref as ref

QUESTION = "Which quarter had the highest revenue?"
CLIP_L = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
              image_size=336, patch_size=14, layer_norm_eps=1e-05, hidden_act="quick_gelu")


def timed(f):
    start = time.perf_counter()
    out = f()
    return out, time.perf_counter() - start


def load_model(model_dir, dtype):
    """Modules built on the meta device and given the checkpoint's tensors in `dtype` (no
    random init), wrapped as the reference's Phi3VReference."""
    cfg = json.loads((model_dir / "config.json").read_text())
    ip = cfg["img_processor"]
    if "hidden_size" not in ip:  # the official form names the tower without its sizes
        ip = {**ip, **CLIP_L}
    cfg = {**cfg, "img_processor": ip}
    index = model_dir / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    state = {}
    for f in files:
        # Copied out of the file mapping, converted to the compute type once.
        state |= {k: v.to(dtype, copy=True) for k, v in load_file(model_dir / f).items()}

    clip_cfg, lm_cfg = ref.clip_config(ip), ref.phi3_config(cfg)
    clip_cfg._attn_implementation = lm_cfg._attn_implementation = "sdpa"
    with torch.device("meta"):
        clip = CLIPVisionModel(clip_cfg)
        lm = Phi3ForCausalLM(lm_cfg)
    clip_sd = {k[len(ref.CLIP_PREFIX):]: v for k, v in state.items() if k.startswith(ref.CLIP_PREFIX)}
    tower = getattr(clip, "vision_model", clip)
    tower.load_state_dict(clip_sd, strict=False, assign=True)
    n_pos = tower.embeddings.num_positions
    tower.embeddings.register_buffer("position_ids", torch.arange(n_pos).expand((1, -1)), persistent=False)
    lm.load_state_dict({k: v for k, v in state.items() if not k.startswith(ref.EMB_PREFIX)}, strict=True, assign=True)
    lm.model.rotary_emb = type(lm.model.rotary_emb)(lm.config)  # its buffers are computed, not loaded
    for name, t in [*clip.named_parameters(), *clip.named_buffers(), *lm.named_parameters(), *lm.named_buffers()]:
        assert t.device.type == "cpu", f"{name} was not loaded"

    m = ref.Phi3VReference.__new__(ref.Phi3VReference)
    m.cfg, m.clip, m.lm = cfg, clip.eval(), lm.eval()
    m.sub_gn, m.glb_gn = state[ref.EMB_PREFIX + "sub_GN"], state[ref.EMB_PREFIX + "glb_GN"]
    h = cfg["hidden_size"]
    m.proj = torch.nn.Sequential(torch.nn.Linear(4 * ip["image_dim_out"], h), torch.nn.GELU(), torch.nn.Linear(h, h))
    m.proj.load_state_dict({k[len(ref.EMB_PREFIX + "img_projection."):]: v for k, v in state.items()
                            if k.startswith(ref.EMB_PREFIX + "img_projection.")}, assign=True)
    m.layer_idx = ip.get("layer_idx", -2)
    pp = json.loads((model_dir / "preprocessor_config.json").read_text())
    return m, pp


def project(m, feats, h, w):
    """HD assembly (sub_glb) and projector for one image's CLIP features."""
    glb = m.add_image_newline(m.reshape_hd_patches_2x2merge(feats[:1], 1, 1))
    sub = m.add_image_newline(m.reshape_hd_patches_2x2merge(feats[1:], h // ref.CROP, w // ref.CROP))
    return m.proj(torch.cat([sub.squeeze(0), m.glb_gn.squeeze(0), glb.squeeze(0)], dim=0))


@torch.no_grad()
def ask(m, pp, tokenizer, image, num_crops, new_tokens, dtype):
    """One full question: returns (prompt tokens, encode s, prefill s, decode s, decode steps)."""
    start = time.perf_counter()
    pixels, (h, w), n_img, _ = ref.preprocess_image(image, num_crops, pp["image_mean"], pp["image_std"])
    n_tiles = (h // ref.CROP) * (w // ref.CROP)
    feats = m.clip_features(pixels[: 1 + n_tiles].to(dtype))
    rows = project(m, feats, h, w)
    encode = time.perf_counter() - start
    ids = ref.prompt_to_ids(tokenizer, ref.chat_template([{"role": "user", "content": f"<|image_1|>\n{QUESTION}"}]), [n_img])
    embeds = m.embed(ids, rows)
    start = time.perf_counter()
    out = m.lm(inputs_embeds=embeds, position_ids=torch.arange(len(ids))[None], use_cache=True)
    tok = int(torch.argmax(out.logits[0, -1]))
    prefill = time.perf_counter() - start
    start, steps, cache = time.perf_counter(), 0, out.past_key_values
    for pos in range(len(ids), len(ids) + new_tokens - 1):
        out = m.lm(input_ids=torch.tensor([[tok]]), position_ids=torch.tensor([[pos]]), past_key_values=cache, use_cache=True)
        cache, tok, steps = out.past_key_values, int(torch.argmax(out.logits[0, -1])), steps + 1
    return len(ids), encode, prefill, time.perf_counter() - start, steps


def main():
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--image", type=Path, default=repo / "assets" / "chart.png")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-16", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32

    metrics = {}
    add = lambda key, value, unit: metrics.__setitem__(key, {"value": value, "unit": unit})
    image = Image.open(args.image)
    large = image.convert("RGB").resize((1344, 1008), Image.BILINEAR)
    (m, pp), load_s = timed(lambda: load_model(args.model, dtype))
    tokenizer = Tokenizer.from_file(str(args.model / "tokenizer.json"))
    crops = pp["num_crops"]
    for key, img in [("preprocess_640x480", image), ("preprocess_1344x1008", large)]:
        ms = sorted(timed(lambda: ref.preprocess_image(img, crops, pp["image_mean"], pp["image_std"]))[1] * 1e3
                    for _ in range(args.repeats))
        add(key, ms[len(ms) // 2], "ms")
    with torch.no_grad():
        pixels, (h, w), _, _ = ref.preprocess_image(image, crops, pp["image_mean"], pp["image_std"])
        n = 1 + (h // ref.CROP) * (w // ref.CROP)
        feats, clip_s = timed(lambda: m.clip_features(pixels[:n].to(dtype)))
        add("clip_per_crop", clip_s / n, "s")
        add("projector", timed(lambda: project(m, feats, h, w))[1] * 1e3, "ms")
    add("load", load_s, "s")
    prompt_tokens, decoded = [], 0
    for n_crops in [4] if args.skip_16 else [4, 16]:
        new = max(args.decode_tokens, 1) if n_crops == 4 else 1
        tokens, encode, prefill, decode, steps = ask(m, pp, tokenizer, image, n_crops, new, dtype)
        prompt_tokens.append(tokens)
        if n_crops == 4:
            add("image_embedding_4_crops", encode, "s")
            add("prefill_4_crops", tokens / prefill, "tok/s")
            add("ttft_4_crops", encode + prefill, "s")
            add("decode", steps / decode if steps else 0.0, "tok/s")
            decoded = steps
            add("peak_rss_4_crops", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, "GB")
        else:
            add("prefill_16_crops", tokens / prefill, "tok/s")
            add("ttft_16_crops", encode + prefill, "s")
    add("peak_rss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, "GB")
    result = {"implementation": f"pytorch {torch.__version__.split('+')[0]} {args.dtype}", "model": str(args.model), "dtype": args.dtype,
              "threads": args.threads, "prompt_tokens": prompt_tokens, "decode_steps": decoded, "metrics": metrics}
    for k, v in metrics.items():
        print(f"{k:<28} {v['value']:>10.2f} {v['unit']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
