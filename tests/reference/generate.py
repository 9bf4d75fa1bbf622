"""Writes the committed test fixtures under tests/fixtures/ (run through regenerate.sh).

- images/          synthetic test images (PNG in several modes, one JPEG) made from a fixed seed
- tiny-phi3v/      Phi-3-vision-128k-instruct layout, num_crops 16, one model.safetensors
- tiny-phi35v/     Phi-3.5-vision-instruct layout, num_crops 4, two shards + index
- golden/          reference outputs: preprocessing, prompts, per-case model outputs

The checkpoints keep the official geometry (336-px crops, patch 14, 24x24 -> 12x12 merge, vocab
32064, official tensor names, bf16 storage) and shrink only widths and depths. Their
`original_max_position_embeddings` is small so that prompts cross the LongRoPE switch.
"""

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from tokenizers import Tokenizer

import phi3v_ref as ref

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
VOCAB = 32064
STEPS = 24
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]

# Tiny widths; everything else as published.
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=2)
VISION = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
              image_size=336, patch_size=14, layer_norm_eps=1e-05, hidden_act="quick_gelu")

# head_dim 16 -> 8 frequency pairs; every 6th entry of the official 48-entry lists.
P3V_SHORT = [1.05, 1.05, 1.1, 1.3, 1.65, 2.0, 2.35, 2.65]
P3V_LONG = [1.0299999713897705, 1.2999999523162842, 3.68999981880188, 11.579999923706055,
            30.009998321533203, 56.20000457763672, 61.96000671386719, 63.850006103515625]
P35V_SHORT = [1.08, 1.4500000000000004, 2.9499999999999815, 4.979999999999938,
              6.089999999999915, 7.289999999999889, 7.879999999999876, 8.439999999999864]
P35V_LONG = [1.0800000429153442, 1.6200000047683716, 7.700000286102295, 28.57000160217285,
             50.340003967285156, 62.61000442504883, 63.93000411987305, 64.12000274658203]

CHECKPOINTS = {
    "tiny-phi3v": dict(
        seed=3, num_crops=16, sharded=False, original_max=2048, max_pos=65536,
        short=P3V_SHORT, long=P3V_LONG, sliding_window=131072, pad_token_id=None,
        do_convert_rgb=None, generation_config=False,
        name="Phi-3-vision-128k-instruct layout, tiny random weights",
    ),
    "tiny-phi35v": dict(
        seed=35, num_crops=4, sharded=True, original_max=1024, max_pos=32768,
        short=P35V_SHORT, long=P35V_LONG, sliding_window=262144, pad_token_id=32000,
        do_convert_rgb=True, generation_config=True,
        name="Phi-3.5-vision-instruct layout, tiny random weights",
    ),
}


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def synth_rgb(w, h, seed):
    """Smooth colour fields with sharp-edged rectangles and one noisy patch: edges and noise make
    resampling errors visible, smooth areas keep the PNG small."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 6.28)
        img[..., c] = 128 + 90 * np.sin(2 * np.pi * (fx * x / w + fy * y / h) + ph)
    for _ in range(10):
        x0, y0 = rng.integers(0, max(w - 1, 1)), rng.integers(0, max(h - 1, 1))
        x1 = min(w, x0 + rng.integers(1, max(w // 3, 2)))
        y1 = min(h, y0 + rng.integers(1, max(h // 3, 2)))
        img[y0:y1, x0:x1] = rng.integers(0, 256, 3)
    nh, nw = max(h // 6, 1), max(w // 6, 1)
    img[:nh, -nw:] += rng.integers(-40, 41, (nh, nw, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_images(out):
    """name -> path relative to the fixtures dir."""
    out.mkdir(parents=True, exist_ok=True)
    made = {}

    def save(name, img, **kw):
        img.save(out / name, **kw)
        made[Path(name).stem] = f"images/{name}"

    save("landscape.png", Image.fromarray(synth_rgb(640, 480, 1)))
    save("portrait.png", Image.fromarray(synth_rgb(480, 640, 2)))
    save("tiny.png", Image.fromarray(synth_rgb(20, 15, 3)))
    save("wide.png", Image.fromarray(synth_rgb(1200, 675, 4)))
    save("tall.png", Image.fromarray(synth_rgb(100, 1000, 5)))
    save("strip.png", Image.fromarray(synth_rgb(50, 8000, 6)))
    save("exact.png", Image.fromarray(synth_rgb(1344, 1008, 7)))
    rgba = np.dstack([synth_rgb(300, 200, 8), synth_rgb(300, 200, 9)[..., 0]])
    save("rgba.png", Image.fromarray(rgba, "RGBA"))
    save("gray.png", Image.fromarray(synth_rgb(256, 300, 10)[..., 1], "L"))
    save("palette.png", Image.fromarray(synth_rgb(200, 150, 11)).quantize(colors=64, dither=0))
    rgb16 = synth_rgb(160, 120, 12).astype(np.uint16) * 257 + np.random.default_rng(13).integers(
        0, 257, (120, 160, 3)).astype(np.uint16)
    save_png16(out / "rgb16.png", rgb16)
    made["rgb16"] = "images/rgb16.png"
    # JPEGs plus PIL's own decode of each, to measure decoder differences: a synthetic one and a
    # real photograph (public domain, shipped with matplotlib as sample data).
    save("photo.jpg", Image.fromarray(synth_rgb(400, 300, 14)), quality=90)
    shutil.copyfile(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg", out / "hopper.jpg")
    made["hopper"] = "images/hopper.jpg"
    for stem in ("photo", "hopper"):
        Image.open(out / f"{stem}.jpg").convert("RGB").save(out / f"{stem}.pil-decoded.png")
    # 10000x1: the HD resize would collapse the height to 0; the reference fails here.
    save("thin.png", Image.fromarray(synth_rgb(10000, 1, 15)))
    return made


def save_png16(path, rgb16):
    """16-bit RGB PNG (PIL cannot write 48-bit colour itself), stdlib zlib encoder."""
    import struct
    import zlib

    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[r].astype(">u2").tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(png)


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def config_json(spec, text=TEXT):
    cfg = {
        "_name_or_path": spec["name"],
        "architectures": ["Phi3VForCausalLM"],
        "attention_dropout": 0.0,
        "auto_map": {
            "AutoConfig": "configuration_phi3_v.Phi3VConfig",
            "AutoModelForCausalLM": "modeling_phi3_v.Phi3VForCausalLM",
        },
        "bos_token_id": 1,
        "embd_layer": {
            "embedding_cls": "image",
            "hd_transform_order": "sub_glb",
            "projection_cls": "mlp",
            "use_hd_transform": True,
            "with_learnable_separator": True,
        },
        "embd_pdrop": 0.0,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": text["hidden_size"],
        "img_processor": {
            "image_dim_out": VISION["hidden_size"],
            "model_name": "openai/clip-vit-large-patch14-336",
            "name": "clip_vision_model",
            "num_img_tokens": 144,
            **VISION,
        },
        "initializer_range": 0.02,
        "intermediate_size": text["intermediate_size"],
        "max_position_embeddings": spec["max_pos"],
        "model_type": "phi3_v",
        "num_attention_heads": text["num_attention_heads"],
        "num_hidden_layers": text["num_hidden_layers"],
        "num_key_value_heads": text["num_key_value_heads"],
        "original_max_position_embeddings": spec["original_max"],
        "resid_pdrop": 0.0,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"long_factor": spec["long"], "short_factor": spec["short"], "type": "su"},
        "rope_theta": 10000.0,
        "sliding_window": spec["sliding_window"],
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.38.1",
        "use_cache": True,
        "vocab_size": VOCAB,
        "_attn_implementation": "flash_attention_2",
    }
    if spec["pad_token_id"] is not None:
        cfg["pad_token_id"] = spec["pad_token_id"]
    return cfg


def preprocessor_json(spec):
    pp = {
        "auto_map": {
            "AutoImageProcessor": "image_processing_phi3_v.Phi3VImageProcessor",
            "AutoProcessor": "processing_phi3_v.Phi3VProcessor",
        },
        "image_mean": MEAN,
        "image_processor_type": "Phi3VImageProcessor",
        "image_std": STD,
        "num_crops": spec["num_crops"],
        "num_img_tokens": 144,
        "processor_class": "Phi3VProcessor",
    }
    if spec["do_convert_rgb"] is not None:
        pp["do_convert_rgb"] = spec["do_convert_rgb"]
    return pp


def tensor_names_and_shapes(cfg):
    """Official tensor names (and shapes) of a phi3_v checkpoint for this config."""
    ip = cfg["img_processor"]
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = h // cfg["num_attention_heads"]
    qkv = (cfg["num_attention_heads"] + 2 * cfg["num_key_value_heads"]) * hd
    shapes = {"model.embed_tokens.weight": (v, h)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        shapes |= {
            p + "input_layernorm.weight": (h,),
            p + "self_attn.qkv_proj.weight": (qkv, h),
            p + "self_attn.o_proj.weight": (h, h),
            p + "post_attention_layernorm.weight": (h,),
            p + "mlp.gate_up_proj.weight": (2 * i, h),
            p + "mlp.down_proj.weight": (h, i),
        }
    shapes |= {"model.norm.weight": (h,), "lm_head.weight": (v, h)}
    c, ci = ip["hidden_size"], ip["intermediate_size"]
    e = ref.EMB_PREFIX
    shapes |= {
        e + "glb_GN": (1, 1, 4 * c),
        e + "sub_GN": (1, 1, 1, 4 * c),
        e + "img_projection.0.weight": (h, 4 * c),
        e + "img_projection.0.bias": (h,),
        e + "img_projection.2.weight": (h, h),
        e + "img_projection.2.bias": (h,),
    }
    n_pos = (ip["image_size"] // ip["patch_size"]) ** 2 + 1
    p = ref.CLIP_PREFIX
    shapes |= {
        p + "embeddings.class_embedding": (c,),
        p + "embeddings.patch_embedding.weight": (c, 3, ip["patch_size"], ip["patch_size"]),
        p + "embeddings.position_embedding.weight": (n_pos, c),
        p + "pre_layrnorm.weight": (c,),
        p + "pre_layrnorm.bias": (c,),
    }
    for l in range(ip["num_hidden_layers"]):
        q = p + f"encoder.layers.{l}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes |= {q + f"self_attn.{proj}.weight": (c, c), q + f"self_attn.{proj}.bias": (c,)}
        shapes |= {
            q + "layer_norm1.weight": (c,), q + "layer_norm1.bias": (c,),
            q + "mlp.fc1.weight": (ci, c), q + "mlp.fc1.bias": (ci,),
            q + "mlp.fc2.weight": (c, ci), q + "mlp.fc2.bias": (c,),
            q + "layer_norm2.weight": (c,), q + "layer_norm2.bias": (c,),
        }
    shapes |= {p + "post_layernorm.weight": (c,), p + "post_layernorm.bias": (c,)}
    return shapes


def random_tensor(name, shape, gen):
    """Random values at scales that keep activations O(1) and logits well separated."""
    n = torch.randn(shape, generator=gen)
    if name.endswith(("layernorm.weight", "layrnorm.weight", "norm.weight", "layer_norm1.weight",
                      "layer_norm2.weight")):
        return 1.0 + 0.2 * n
    if name.endswith(".bias"):
        return 0.1 * n
    if name.endswith(("embed_tokens.weight", "class_embedding", "_GN")):
        return n
    if name.endswith("position_embedding.weight"):
        return 0.5 * n
    if name == "lm_head.weight":
        return 4.0 * n / shape[1] ** 0.5
    fan_in = int(np.prod(shape[1:]))
    return n / fan_in ** 0.5


def write_checkpoint_files(out, cfg, spec, tokenizer_dir):
    """Everything of a checkpoint directory but its weights: config, preprocessor config,
    generation config (if the spec has one) and the tokenizer files."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor_json(spec), indent=2) + "\n")
    if spec["generation_config"]:
        gen_cfg = {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2,
                   "pad_token_id": 32000, "transformers_version": "4.38.1"}
        (out / "generation_config.json").write_text(json.dumps(gen_cfg, indent=2) + "\n")
    for f in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_dir / f, out / f)


def make_checkpoint(out, spec, tokenizer_dir):
    """Writes one checkpoint directory; returns (config, float32 state dict of the bf16 values)."""
    cfg = config_json(spec)
    write_checkpoint_files(out, cfg, spec, tokenizer_dir)

    gen = torch.Generator().manual_seed(spec["seed"])
    bf16 = {k: random_tensor(k, s, gen).to(torch.bfloat16).contiguous()
            for k, s in tensor_names_and_shapes(cfg).items()}
    meta = {"format": "pt"}
    if spec["sharded"]:
        # Text embeddings and the first decoder layer in shard 1, the rest in shard 2; the CLIP
        # tower is split across both so loaders must follow the index per tensor.
        first = lambda k: k.startswith(("model.embed_tokens", "model.layers.0.")) or ".encoder.layers.0." in k
        files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        weight_map = {k: files[0] if first(k) else files[1] for k in bf16}
        for f in files:
            save_file({k: v for k, v in bf16.items() if weight_map[k] == f}, out / f, metadata=meta)
        total = sum(v.numel() * v.element_size() for v in bf16.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    else:
        save_file(bf16, out / "model.safetensors", metadata=meta)
    return cfg, {k: v.float() for k, v in bf16.items()}


# --------------------------------------------------------------------------------------------
# Goldens
# --------------------------------------------------------------------------------------------


def sha256_f32(t):
    return hashlib.sha256(t.contiguous().numpy().astype("<f4").tobytes()).hexdigest()


# The full global view is stored once (3x4 crops: odd and even bicubic factors); every entry has a
# strided sample and a hash. HD images are stored for all 4-crop entries and the padded/transposed
# 16-crop ones; the tile hash checks the rest bit for bit.
FULL_GLOBAL = {("landscape", 16)}
HD_PNG_16 = {"landscape", "portrait", "wide", "tall"}


def preprocess_goldens(fixtures, images):
    """Per image and crop setting: HD geometry, token count, the uint8 HD image (exact), hashes of
    the float32 tiles and global view, and a strided sample (or all) of the global view."""
    out_dir = fixtures / "golden" / "preprocess"
    out_dir.mkdir(parents=True, exist_ok=True)
    entries, tensors = [], {}
    for name, rel in images.items():
        for num_crops in (4, 16):
            pil = Image.open(fixtures / rel)
            key = f"{name}-c{num_crops}"
            entry = {"key": key, "image": rel, "num_crops": num_crops, "mode": pil.mode,
                     "source_size_wh": list(pil.size)}
            try:
                pv, (h, w), n_tok, hd = ref.preprocess_image(pil, num_crops, MEAN, STD)
            except Exception as e:  # the reference has no guard (spec 2.9)
                entry["reference_error"] = f"{type(e).__name__}: {e}"
                entries.append(entry)
                continue
            entry |= {"image_size_hw": [h, w], "num_img_tokens": n_tok}
            if num_crops == 4 or name in HD_PNG_16:
                hd.save(out_dir / f"{key}.png")
                entry["hd_png"] = f"golden/preprocess/{key}.png"
            entry |= {
                "pixel_values_shape": list(pv.shape),
                "sha256_tiles": sha256_f32(pv[1:]),
                "sha256_global": sha256_f32(pv[0]),
            }
            tensors[f"{key}.global_sample"] = pv[0, :, ::7, ::7].contiguous()
            if (name, num_crops) in FULL_GLOBAL:
                tensors[f"{key}.global"] = pv[0].contiguous()
            entries.append(entry)
    save_file(tensors, fixtures / "golden" / "preprocess.safetensors")
    write_json(fixtures / "golden" / "preprocess.json",
               {"about": "reference Phi3VImageProcessor outputs; global_sample = global view [:, ::7, ::7]",
                "image_mean": MEAN, "image_std": STD, "entries": entries})


def prompt_goldens(fixtures, tokenizer):
    """Processor tokenisation of assorted prompts (chunking, BOS per chunk, placeholders)."""
    cases = [
        (ref.chat_template([{"role": "user", "content": "<|image_1|>\nWhat is shown in this image?"}]), [757]),
        (ref.chat_template([{"role": "system", "content": "You are a careful chart reader."},
                            {"role": "user", "content": "<|image_1|>\n<|image_2|>\nCompare the two charts."}]),
         [1921, 781]),
        (ref.chat_template([{"role": "user", "content": "Hello!"},
                            {"role": "assistant", "content": "Hi. How can I help?"},
                            {"role": "user", "content": "Look: <|image_1|> and tell me the total."}]), [145]),
        (ref.chat_template([{"role": "user", "content": "Frame 1: <|image_1|>\nFrame 2: <|image_2|>\nFrame 3: <|image_3|>\nSummarise the video."}]),
         [757, 757, 757]),
        ("<|image_1|>", [757]),
        (ref.chat_template([{"role": "user", "content": "Ünïcödé ✓ 镇 🦙 tabs\tand  spaces \n\n newline"}]), []),
        (ref.chat_template([{"role": "user", "content": "No generation prompt."}], add_generation_prompt=False), []),
    ]
    entries = [{"prompt": p, "num_img_tokens": n, "input_ids": ref.prompt_to_ids(tokenizer, p, n)}
               for p, n in cases]
    write_json(fixtures / "golden" / "prompts.json", {"entries": entries})


def exact_length_user_text(tokenizer, prefix, target, num_img_tokens=()):
    """User text whose templated prompt is exactly `target` ids long (' a' adds one token)."""
    k = 0
    while True:
        msgs = [{"role": "user", "content": prefix + " a" * k}]
        n = len(ref.prompt_to_ids(tokenizer, ref.chat_template(msgs), list(num_img_tokens)))
        if n == target:
            return msgs
        assert n < target, (n, target)
        k += max(1, (target - n) // 2)


MODEL_CASES = {
    "tiny-phi3v": [
        # name, messages (or a builder), images
        ("image-landscape", [{"role": "user", "content": "<|image_1|>\nWhat is the highest bar in this chart?"}],
         ["landscape"]),
        ("text-only", [{"role": "system", "content": "Answer briefly."},
                       {"role": "user", "content": "Name three colours of the rainbow."}], []),
        # 2040-token prompt: decoding crosses original_max (2048) and re-prefills there.
        ("rope-cross-decode", lambda tok: exact_length_user_text(
            tok, "<|image_1|>\nRead every label in this chart carefully:", 2040, [1921]), ["landscape"]),
    ],
    "tiny-phi35v": [
        ("image-portrait", [{"role": "user", "content": "<|image_1|>\nDescribe the picture."}], ["portrait"]),
        # 757 + 781 image tokens: the prompt is past original_max (1024), long factors from the start.
        ("two-images", [{"role": "user", "content": "<|image_1|>\n<|image_2|>\nWhat differs between these images?"}],
         ["wide", "tall"]),
        # Exactly original_max tokens: short factors in prefill, re-prefill at the first decode step.
        ("text-exact-original-max", lambda tok: exact_length_user_text(tok, "Repeat after me:", 1024), []),
    ],
}


def image_embed_goldens(fixtures, model, images, num_crops):
    """Projected image rows [num_img_tokens, hidden] of every fixture image the reference can
    process, keyed by image stem (JPEGs as PIL decodes them)."""
    tensors = {}
    for name, rel in images.items():
        try:
            pv, hw, _, _ = ref.preprocess_image(Image.open(fixtures / rel), num_crops, MEAN, STD)
        except ValueError:
            continue
        rows, _ = model.image_embeds(pv[None], [hw])
        tensors[name] = rows.contiguous()
    save_file(tensors, fixtures / "golden" / f"image-embeds-c{num_crops}.safetensors")


def model_goldens(fixtures, name, cfg, state, tokenizer, images, num_crops):
    model = ref.Phi3VReference(cfg, state)
    if name == "tiny-phi35v":
        image_embed_goldens(fixtures, model, images, num_crops)
    out_dir = fixtures / "golden" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    for case, messages, image_names in MODEL_CASES[name]:
        if callable(messages):
            messages = messages(tokenizer)
        prompt = ref.chat_template(messages)
        stacks, sizes, counts = [], [], []
        for img in image_names:
            pv, hw, n, _ = ref.preprocess_image(Image.open(fixtures / images[img]), num_crops, MEAN, STD)
            stacks.append(pv), sizes.append(hw), counts.append(n)
        ids = ref.prompt_to_ids(tokenizer, prompt, counts)
        tensors = {}
        rows = None
        if stacks:
            rows, feats = model.image_embeds(torch.stack(stacks), sizes)
            tensors["image_embeds"] = rows.contiguous()
            tensors["clip_features"] = feats[0][:2].contiguous()  # global view and first tile
        embeds = model.embed(ids, rows)
        tokens, logits, reprefilled = model.greedy(embeds, STEPS)
        saved = sorted({0, 1, STEPS - 1} | {s for r in reprefilled for s in (r, r + 1) if s < STEPS})
        tensors["logits"] = logits[saved].contiguous()
        top2 = torch.topk(logits, 2, dim=-1).values
        margin = float((top2[:, 0] - top2[:, 1]).min())
        assert margin > 1e-3, f"{name}/{case}: greedy margin {margin} too small for a stable golden"
        save_file(tensors, out_dir / f"{case}.safetensors")
        write_json(out_dir / f"{case}.json", {
            "checkpoint": name,
            "messages": messages,
            "prompt": prompt,
            "images": [{"image": images[i], "num_crops": num_crops, "image_size_hw": list(s),
                        "num_img_tokens": n} for i, s, n in zip(image_names, sizes, counts)],
            "prompt_len": len(ids),
            "input_ids": ids,
            "greedy_tokens": tokens,
            "logits_steps": saved,
            "reprefill_steps": reprefilled,
            "min_top2_margin": margin,
        })
        print(f"  {name}/{case}: {len(ids)} prompt ids, re-prefill at {reprefilled}, margin {margin:.4f}")


def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def main():
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=repo / "tests" / "fixtures")
    ap.add_argument("--tokenizer", type=Path, default=repo.parent / "shared" / "data" / "phi3-tokenizer")
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(2)
    fixtures = args.out
    # Only what this script writes: tests/fixtures/ also holds the Hub parquet files
    # (tests/hub/regenerate.sh) and the demo checkpoint's goldens (train_demo.sh).
    for own in ["images", "golden/preprocess", *CHECKPOINTS, *(f"golden/{c}" for c in CHECKPOINTS)]:
        if (fixtures / own).exists():
            shutil.rmtree(fixtures / own)
    images = make_images(fixtures / "images")
    tokenizer = Tokenizer.from_file(str(args.tokenizer / "tokenizer.json"))
    print("preprocessing goldens")
    preprocess_goldens(fixtures, images)
    prompt_goldens(fixtures, tokenizer)
    for name, spec in CHECKPOINTS.items():
        print(f"checkpoint {name}")
        cfg, state = make_checkpoint(fixtures / name, spec, args.tokenizer)
        model_goldens(fixtures, name, cfg, state, tokenizer, images, spec["num_crops"])


if __name__ == "__main__":
    main()
