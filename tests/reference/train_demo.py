"""Trains the demo checkpoint (assets/phi3v-demo) on generated charts (run through train_demo.sh).

The model is a Phi-3.5-vision checkpoint in the official layout, shrunk: a 64-wide CLIP tower of
three layers (the penultimate one feeds the projector, as published), a 128-wide phi-3-mini
decoder of three layers, the real 32 064-token vocabulary and tokenizer, num_crops 1. It is built
and trained with the reference modules the parity fixtures come from (`phi3v_ref`).

Training data: the charts and questions of `phi3v eval generate` with a seed of their own (never
the committed evaluation sets'). Two stages:

1. the vision tower and projector alone, with small heads (dropped afterwards): on each patch,
   which palette colour and which bar it shows (read from the pixels); on the projected image
   rows, the chart kind, item count, line colour, a quarter's colour and the highest and lowest
   quarter (read from the generated answers, families in LABELS);
2. the decoder alone, the tower frozen, on the chat-templated questions of FAMILIES (loss on the
   answer tokens and `<|end|>`), with linear probes on its second layer's output where the
   answer starts, trained on the image's labels.

CPU only, two threads, deterministic (fixed seeds, fixed step counts).
"""

import argparse
import json
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import CLIPVisionModel, Phi3ForCausalLM

import generate as fixtures
import phi3v_ref as ref

END = 32007
# (chart kind, question family) pairs whose answers label the images for the vision heads.
LABELS = {
    ("quarterly", "highest"), ("quarterly", "lowest"), ("quarterly", "colour"), ("quarterly", "count"),
    ("bar", "count"), ("pie", "count"), ("line", "colour"), ("line", "count"),
}
# The question families the model learns to answer.
FAMILIES = {("quarterly", "highest"), ("quarterly", "lowest")}
KINDS = ["bar", "line", "pie", "quarterly"]
COLOURS = ["blue", "orange", "green", "red", "purple", "brown", "pink", "gray"]
QUARTERS = ["Q1", "Q2", "Q3", "Q4"]
COUNTS = [str(n) for n in range(3, 9)]

# head_dim 16, so the fixtures' 8-entry LongRoPE lists apply; the official context lengths.
TEXT = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=3, num_attention_heads=8,
            num_key_value_heads=8)
SPEC = dict(fixtures.CHECKPOINTS["tiny-phi35v"], num_crops=1, original_max=4096, max_pos=131072,
            name="Phi-3.5-vision-instruct layout, tiny demo model trained on generated charts")


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True, help="output of `phi3v eval generate`")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--vision-steps", type=int, default=800)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--held", type=int, default=64, help="charts kept back for progress reports")
    return ap.parse_args()


def load_charts(data):
    """chartqa.jsonl -> {image: (kind, [(question, answer, family)])}, labelling families only."""
    charts = {}
    for line in open(data / "chartqa.jsonl"):
        r = json.loads(line)
        kind, family = r["category"].split(",")
        entry = charts.setdefault(r["images"][0], (kind, []))
        if (kind, family) in LABELS:
            entry[1].append((r["question"], r["answers"][0], family))
    return charts


def targets(kind, questions):
    """Per-image labels for the vision heads (-1: not known for this image)."""
    t = {"kind": KINDS.index(kind), "count": -1, "line_colour": -1, "highest": -1, "lowest": -1,
         "bar_colour": -1}
    for q, a, f in questions:
        if f == "count":
            t["count"] = COUNTS.index(a)
        elif f == "colour" and kind == "line":
            t["line_colour"] = COLOURS.index(a)
        elif f == "colour":
            k = QUARTERS.index(q.rstrip("?").split()[-1])
            t["bar_colour"] = k * len(COLOURS) + COLOURS.index(a)
        elif f in ("highest", "lowest"):
            t[f] = QUARTERS.index(a)
    return t


HEADS = {"kind": len(KINDS), "count": len(COUNTS), "line_colour": len(COLOURS), "highest": 4,
         "lowest": 4, "bar_colour": 4 * len(COLOURS)}


def build():
    """A fresh model in the official layout: (config, Phi3VReference with trainable parts)."""
    cfg = fixtures.config_json(SPEC, TEXT)
    torch.manual_seed(0)
    clip = CLIPVisionModel(ref.clip_config(cfg["img_processor"]))
    lm = Phi3ForCausalLM(ref.phi3_config(cfg))
    state = {ref.CLIP_PREFIX + k: v for k, v in clip.state_dict().items() if "position_ids" not in k}
    c, h = 4 * cfg["img_processor"]["image_dim_out"], cfg["hidden_size"]
    proj = torch.nn.Sequential(torch.nn.Linear(c, h), torch.nn.GELU(), torch.nn.Linear(h, h))
    state |= {ref.EMB_PREFIX + "img_projection." + k: v for k, v in proj.state_dict().items()}
    state[ref.EMB_PREFIX + "sub_GN"] = 0.02 * torch.randn(1, 1, 1, c)
    state[ref.EMB_PREFIX + "glb_GN"] = 0.02 * torch.randn(1, 1, c)
    # transformers initialises every decoder matrix with std 0.02 (initializer_range), right for
    # 3072 wide; at 128 wide that is 4x too small and the decoder does not learn to read the image
    # rows. 1/sqrt(fan_in) instead.
    for name, w in lm.named_parameters():
        if w.dim() == 2 and "embed_tokens" not in name:
            torch.nn.init.normal_(w, 0.0, w.shape[1] ** -0.5)
    state |= lm.state_dict()
    m = ref.Phi3VReference(cfg, state)
    for module in (m.clip, m.lm):
        module.config._attn_implementation = "sdpa"
        for sub in module.modules():
            if hasattr(sub, "config"):
                sub.config._attn_implementation = "sdpa"
    m.sub_gn = torch.nn.Parameter(m.sub_gn)
    m.glb_gn = torch.nn.Parameter(m.glb_gn)
    return cfg, m


class Images:
    """Preprocessed pixel values, computed once per image (num_crops 1: the global view and the
    single tile are the same 336x336 picture, so the tower runs once per image)."""

    def __init__(self, data, charts):
        self.data, self.charts, self.cache = data, charts, {}

    def __call__(self, name):
        if name not in self.cache:
            stack, hw, ntok, hd = ref.preprocess_image(Image.open(self.data / name), 1, fixtures.MEAN, fixtures.STD)
            assert hw == (336, 336) and torch.equal(stack[0], stack[1]), name
            kind = self.charts[name][0]
            self.cache[name] = (stack[0].to(torch.bfloat16), ntok, patch_labels(hd, kind in ("bar", "quarterly")))
        return self.cache[name]


PALETTE = torch.tensor([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                        [140, 86, 75], [227, 119, 194], [127, 127, 127]])


def patch_labels(hd, bars):
    """What each 14x14 patch of the 336x336 picture shows, as pixel fractions: palette colour
    [576, 9] (0: none) and, in a bar chart, which bar counted from the left [576, 7] (0: none)."""
    # A pixel is a palette colour blended with the white background (anti-aliasing, resizing): its
    # distance from white points the way the colour's does and is no longer than the colour's.
    ink = 255.0 - torch.from_numpy(np.array(hd.convert("RGB"))).float()  # [336, 336, 3]
    full = 255.0 - PALETTE.float()  # [8, 3]
    cos = (ink @ full.T) / (ink.norm(dim=-1, keepdim=True) * full.norm(dim=-1) + 1e-6)
    best, which = cos.max(-1)
    depth = ink.norm(dim=-1) / full.norm(dim=-1)[which]
    colour = torch.where((best >= 0.97) & (depth >= 0.25) & (depth <= 1.15), which + 1, 0)
    bar = torch.zeros_like(colour)
    counts = torch.bincount(colour.flatten(), minlength=9)[1:]
    present = [c for c in range(8) if counts[c] >= 150]
    xs = torch.arange(336).float()
    centre = {c: float((colour == c + 1).float().sum(0) @ xs) / float(counts[c]) for c in present}
    for i, c in enumerate(sorted(present, key=centre.get)[:6] if bars else []):
        bar[colour == c + 1] = i + 1
    frac = lambda lab, n: torch.nn.functional.one_hot(lab, n).float().reshape(24, 14, 24, 14, n).mean((1, 3)).reshape(576, n)
    return frac(colour, 9), frac(bar, 7)


def tower(m, pixels):
    """[B, 3, 336, 336] -> (projected image rows [B, 313, hidden]: sub rows, glb_GN, global rows;
    patch features [B, 576, C]): the reference's `image_embeds` for num_crops 1 with gradients, the
    unused last CLIP layer skipped."""
    vm = m.clip.vision_model if hasattr(m.clip, "vision_model") else m.clip
    x = vm.pre_layrnorm(vm.embeddings(pixels.float()))
    for layer in vm.encoder.layers[:-1]:
        x = layer(x, None)
    feats = x[:, 1:]
    rows = []
    for f in feats:
        grid = m.add_image_newline(m.reshape_hd_patches_2x2merge(f[None], 1, 1)).squeeze(0)
        rows.append(torch.cat([grid, m.glb_gn.squeeze(0), grid], dim=0))
    return m.proj(torch.stack(rows)), feats


class Heads(torch.nn.Module):
    """Small classifiers on the projected image rows (one attention-pooling query each, as a
    decoder head would read them) and on the patch features; dropped when the checkpoint is saved."""

    def __init__(self, hidden, patch_width):
        super().__init__()
        self.norm = torch.nn.LayerNorm(hidden)
        self.query = torch.nn.Parameter(torch.zeros(len(HEADS), hidden))
        self.out = torch.nn.ModuleDict({k: torch.nn.Sequential(torch.nn.Linear(hidden, 256), torch.nn.GELU(),
                                                               torch.nn.Linear(256, n)) for k, n in HEADS.items()})
        self.colour = torch.nn.Linear(patch_width, 9)
        self.bar = torch.nn.Linear(patch_width, 7)

    def loss(self, rows, feats, labels, patches):
        """rows [B, 313, hidden], feats [B, 576, C]; labels: one `targets` dict per image;
        patches: (colour, bar) fractions per image. Mean cross-entropy over the known labels plus
        the patch heads' soft cross-entropy, and {head: (right, known)}."""
        colour = torch.stack([p[0] for p in patches])
        bar = torch.stack([p[1] for p in patches])
        soft = lambda logits, p: -(p * logits.log_softmax(-1)).sum(-1).mean()
        dense = soft(self.colour(feats), colour) + soft(self.bar(feats), bar)
        x = self.norm(rows)
        pooled = torch.einsum("bkr,brh->bkh", torch.einsum("kh,brh->bkr", self.query, x).softmax(-1), x)
        total, n, score = 0.0, 0, {"dense": (int(1000 * dense.item()), 1000)}
        for i, (k, head) in enumerate(self.out.items()):
            y = torch.tensor([t[k] for t in labels])
            known = y >= 0
            if not known.any():
                continue
            logits = head(pooled[known, i])
            total = total + torch.nn.functional.cross_entropy(logits, y[known], reduction="sum")
            n += int(known.sum())
            score[k] = (int((logits.argmax(1) == y[known]).sum()), int(known.sum()))
        return total / max(n, 1) + dense, score


def vision_stage(m, heads, images, charts, names, steps, lr, batch=24):
    params = list(m.clip.parameters()) + list(m.proj.parameters()) + [m.sub_gn, m.glb_gn] + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    rng = random.Random(1)
    t0, seen = time.time(), defaultdict(lambda: [0, 0])
    for step in range(1, steps + 1):
        pick = rng.sample(names, batch)
        pixels = torch.stack([images(n)[0] for n in pick])
        labels = [targets(*charts[n]) for n in pick]
        loss, score = heads.loss(*tower(m, pixels), labels, [images(n)[2] for n in pick])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        for k, (r, n) in score.items():
            seen[k][0] += r
            seen[k][1] += n
        if step % 25 == 0:
            acc = " ".join(f"{k} {r / n:.2f}" for k, (r, n) in sorted(seen.items()))
            print(f"vision step {step} loss {loss.item():.3f} {acc} {time.time() - t0:.0f}s", flush=True)
            seen.clear()


def prompt_ids(tok, question, ntok):
    text = ref.chat_template([{"role": "user", "content": "<|image_1|>\n" + question}])
    return ref.prompt_to_ids(tok, text, [ntok])


def embed(m, ids, rows):
    """Token ids (negative: image placeholders) -> embeddings [len, hidden], image rows in place."""
    t = torch.tensor(ids)
    e = m.lm.model.embed_tokens(t.clamp_min(0))
    return e.index_put((torch.nonzero(t < 0, as_tuple=True)[0],), rows)


def language_stage(m, images, charts, names, tok, steps, lr, report, batch=8, per_chart=3):
    """The decoder on (image, question) -> answer, the tower frozen (its rows computed once per
    image); loss on the answer tokens and <|end|>, plus linear probes on the second layer's
    output where the answer starts, trained on the image's labels (see `targets`): they pull what
    the image rows carry to the answer position, where the language loss alone finds only the
    answers' priors for thousands of steps. The probes are dropped when the checkpoint is saved."""
    with torch.no_grad():
        rows = {n: tower(m, images(n)[0][None])[0][0] for n in names}
    hidden_size = m.cfg["hidden_size"]
    probes = torch.nn.ModuleDict({k: torch.nn.Linear(hidden_size, n) for k, n in HEADS.items()})
    params = list(m.lm.parameters()) + list(probes.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    rng = random.Random(2)
    asked = {n: [(q, a, f) for q, a, f in charts[n][1] if (charts[n][0], f) in FAMILIES] for n in names}
    names = [n for n in names if asked[n]]
    t0 = time.time()
    for step in range(1, steps + 1):
        seqs, spans, labels = [], [], []
        for n in rng.sample(names, batch):
            for q, a, _ in rng.sample(asked[n], min(per_chart, len(asked[n]))):
                labels.append(targets(*charts[n]))
                ids = prompt_ids(tok, q, images(n)[1])
                answer = tok.encode(a, add_special_tokens=False).ids + [END]
                seqs.append(torch.cat([embed(m, ids, rows[n]), m.lm.model.embed_tokens(torch.tensor(answer[:-1]))]))
                spans.append((len(ids), answer))
        width = max(len(s) for s in seqs)
        x = torch.stack([torch.nn.functional.pad(s, (0, 0, 0, width - len(s))) for s in seqs])
        mask = torch.stack([torch.arange(width) < len(s) for s in seqs]).long()
        out = m.lm.model(inputs_embeds=x, attention_mask=mask, output_hidden_states=True)
        hidden = out.last_hidden_state
        at = torch.cat([hidden[i, p - 1:p - 1 + len(a)] for i, (p, a) in enumerate(spans)])
        y = torch.tensor([t for _, a in spans for t in a])
        loss = torch.nn.functional.cross_entropy(m.lm.lm_head(at), y)
        start = torch.stack([out.hidden_states[2][i, p - 1] for i, (p, _) in enumerate(spans)])
        probe = 0.0
        for k, head in probes.items():
            want = torch.tensor([t[k] for t in labels])
            known = want >= 0
            if known.any():
                probe = probe + torch.nn.functional.cross_entropy(head(start[known]), want[known])
        opt.zero_grad()
        (loss + probe).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 25 == 0:
            print(f"step {step} loss {loss.item():.3f} probes {float(probe):.3f} {time.time() - t0:.0f}s", flush=True)
        if step % 300 == 0 or step == steps:
            report()


@torch.no_grad()
def answer(m, tok, images, name, question, max_tokens=6):
    """Greedy answer (the reference's decoding loop), up to <|end|>."""
    pixels, ntok, _ = images(name)
    rows, _ = tower(m, pixels[None])
    tokens, _, _ = m.greedy(embed(m, prompt_ids(tok, question, ntok), rows[0])[None], max_tokens)
    return tok.decode(tokens[:tokens.index(END)] if END in tokens else tokens)


def accuracy(m, tok, images, charts, names):
    """{(kind, family): (right, asked)} over every trained question about these charts."""
    m.clip.eval(), m.lm.eval()
    score = defaultdict(lambda: [0, 0])
    for n in names:
        kind, questions = charts[n]
        for q, a, f in questions:
            if (kind, f) not in FAMILIES:
                continue
            score[kind, f][0] += answer(m, tok, images, n, q).strip() == a
            score[kind, f][1] += 1
    m.clip.train(), m.lm.train()
    return dict(score)


def save(m, cfg, tokenizer_dir, out):
    """The checkpoint directory: official tensor names, bf16, one model.safetensors."""
    fixtures.write_checkpoint_files(out, cfg, SPEC, tokenizer_dir)
    vm = m.clip.vision_model if hasattr(m.clip, "vision_model") else m.clip
    state = {ref.CLIP_PREFIX + k: v for k, v in vm.state_dict().items() if "position_ids" not in k}
    state |= m.lm.state_dict()
    state |= {ref.EMB_PREFIX + "img_projection." + k: v for k, v in m.proj.state_dict().items()}
    state |= {ref.EMB_PREFIX + "sub_GN": m.sub_gn.detach(), ref.EMB_PREFIX + "glb_GN": m.glb_gn.detach()}
    shapes = fixtures.tensor_names_and_shapes(cfg)
    assert {k: tuple(v.shape) for k, v in state.items()} == shapes, set(state) ^ set(shapes)
    bf16 = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in sorted(state.items())}
    save_file(bf16, out / "model.safetensors", metadata={"format": "pt"})


def main():
    a = parse()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    tok = Tokenizer.from_file(str(a.tokenizer / "tokenizer.json"))
    cfg, m = build()
    charts = load_charts(a.data)
    names = sorted(charts)
    random.Random(0).shuffle(names)
    held, train = names[:a.held], names[a.held:]
    images = Images(a.data, charts)
    heads = Heads(cfg["hidden_size"], cfg["img_processor"]["hidden_size"])

    def report():
        acc = accuracy(m, tok, images, charts, held)
        print("held-out", " ".join(f"{k},{f} {r}/{n}" for (k, f), (r, n) in sorted(acc.items())), flush=True)

    vision_stage(m, heads, images, charts, train, a.vision_steps, a.lr)
    language_stage(m, images, charts, train, tok, a.steps, a.lr, report)
    save(m, cfg, a.tokenizer, a.out)


if __name__ == "__main__":
    main()
