"""Writes the fuzz targets' seed corpora into fuzz/corpus/<target>/ from the project's fixtures
and assets (run by fuzz/run.sh; nothing here is committed)."""
import json, os, struct, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
out = os.path.join(root, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fixture(*p):
    return os.path.join(root, *p)


# image: a crop-count byte, then a small image file of each format the fixtures have.
for d in ["tests/fixtures/images", "assets/evals/ocr", "assets/evals/chartqa/png"]:
    for name in sorted(os.listdir(fixture(d))):
        data = open(fixture(d, name), "rb").read()
        if len(data) <= 64 << 10:
            put("image", name, bytes([3]) + data)

# prompt: the golden prompts, with and without images.
for i, case in enumerate(json.load(open(fixture("tests/fixtures/golden/prompts.json")))["entries"]):
    put("prompt", f"golden{i}", bytes([len(case["num_img_tokens"])]) + case["prompt"].encode())
put("prompt", "tags", bytes([2]) + "<|image_1|>\nwhat <|image_2|> <|image_02|> <|image_|> 🦙".encode())


# checkpoint: the tiny fixture's config shrunk to a few-kilobyte model, and its weights.
def safetensors(tensors):
    header, data = {}, b""
    for name, shape in tensors:
        n = 1
        for s in shape:
            n *= s
        blob = b"".join(struct.pack("<e", ((i * 7919) % 13 - 6) / 8) for i in range(n))
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


cfg = json.load(open(fixture("tests/fixtures/tiny-phi35v/config.json")))
h, heads, inter, vocab, vh, vi = 4, 2, 4, 8, 4, 4
cfg.update(hidden_size=h, num_attention_heads=heads, num_key_value_heads=heads, intermediate_size=inter, num_hidden_layers=1, vocab_size=vocab)
cfg["rope_scaling"]["short_factor"] = cfg["rope_scaling"]["short_factor"][:1]
cfg["rope_scaling"]["long_factor"] = cfg["rope_scaling"]["long_factor"][:1]
ip = cfg["img_processor"]
ip.update(image_dim_out=vh, hidden_size=vh, intermediate_size=vi, num_hidden_layers=2, num_attention_heads=1)
clip = "model.vision_embed_tokens.img_processor.vision_model"
tensors = [("model.embed_tokens.weight", [vocab, h]), ("model.norm.weight", [h]), ("lm_head.weight", [vocab, h])]
tensors += [(f"model.layers.0.{n}", s) for n, s in [
    ("input_layernorm.weight", [h]), ("post_attention_layernorm.weight", [h]),
    ("self_attn.qkv_proj.weight", [3 * h, h]), ("self_attn.o_proj.weight", [h, h]),
    ("mlp.gate_up_proj.weight", [2 * inter, h]), ("mlp.down_proj.weight", [h, inter])]]
tensors += [(f"{clip}.embeddings.class_embedding", [vh]), (f"{clip}.embeddings.patch_embedding.weight", [vh, 3, 14, 14]),
            (f"{clip}.embeddings.position_embedding.weight", [577, vh])]
tensors += [(f"{clip}.{n}.{p}", [vh]) for n in ["pre_layrnorm", "post_layernorm"] for p in ["weight", "bias"]]
for i in range(2):
    layer = f"{clip}.encoder.layers.{i}"
    tensors += [(f"{layer}.{n}.{p}", [vh]) for n in ["layer_norm1", "layer_norm2"] for p in ["weight", "bias"]]
    for proj in ["q_proj", "k_proj", "v_proj", "out_proj"]:
        tensors += [(f"{layer}.self_attn.{proj}.weight", [vh, vh]), (f"{layer}.self_attn.{proj}.bias", [vh])]
    tensors += [(f"{layer}.mlp.fc1.weight", [vi, vh]), (f"{layer}.mlp.fc1.bias", [vi]),
                (f"{layer}.mlp.fc2.weight", [vh, vi]), (f"{layer}.mlp.fc2.bias", [vh])]
tensors += [("model.vision_embed_tokens.img_projection.0.weight", [h, 4 * vh]), ("model.vision_embed_tokens.img_projection.0.bias", [h]),
            ("model.vision_embed_tokens.img_projection.2.weight", [h, h]), ("model.vision_embed_tokens.img_projection.2.bias", [h]),
            ("model.vision_embed_tokens.glb_GN", [1, 1, 4 * vh]), ("model.vision_embed_tokens.sub_GN", [1, 1, 1, 4 * vh])]
small = json.dumps(cfg).encode()
put("checkpoint", "config-only", small + b"\0")
put("checkpoint", "small-model", small + b"\0" + safetensors(tensors))
put("checkpoint", "real-config", open(fixture("tests/fixtures/tiny-phi3v/config.json"), "rb").read() + b"\0")

# eval: each reader's format, from the generated sets and the formats' documented shapes.
put("eval", "chartqa", b"\0" + open(fixture("assets/evals/chartqa/test_generated.json"), "rb").read()[:16000])
put("eval", "docvqa", b"\1" + json.dumps({"data": [{"questionId": 1, "question": "What is the date?", "image": "documents/a.png", "answers": ["1 May 1990", "May 1, 1990"]}]}).encode())
put("eval", "textvqa", b"\2" + json.dumps({"data": [{"question_id": 7, "question": "what brand?", "image_id": "abc", "answers": ["nokia"] * 10}]}).encode())
put("eval", "ocrbench", b"\3" + json.dumps([{"id": 0, "dataset_name": "IIIT5K", "image_path": "IIIT5K/a.png", "question": "what is written?", "answers": ["ocean"], "type": "Regular Text Recognition"}]).encode())
put("eval", "ai2d", b"\4" + b"index\tquestion\tA\tB\tC\tD\tanswer\timage\tcategory\n0\tWhich is a producer?\tgrass\tfox\towl\thawk\tA\tiVBORw0KGgo=\tfoodChains\n")
put("eval", "jsonl", b"\5" + open(fixture("assets/evals/ocr.jsonl"), "rb").read()[:16000])
put("eval", "predictions", b"\6" + b'{"task":"chartqa","id":"s0","prompt":"Q?","model":"m","max_new_tokens":16,"response":"4","seconds":0.1}\n')
print("seeds written to", out, file=sys.stderr)
