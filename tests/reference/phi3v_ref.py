"""Reference Phi-3-vision inference, written to follow the official Hugging Face remote code.

Everything here mirrors `image_processing_phi3_v.py`, `processing_phi3_v.py` and
`image_embedding_phi3_v.py` of microsoft/Phi-3-vision-128k-instruct and
microsoft/Phi-3.5-vision-instruct (see docs/REFERENCE-NOTES.md and the project spec). The
networks themselves are transformers' own `CLIPVisionModel` and `Phi3ForCausalLM`, so the Rust
code is checked against code this project did not write.

All computation runs in float32 on CPU (weights are bf16 values upcast once), so the goldens are
deterministic and comparable to the Rust f32 path at tight tolerances.
"""

import re

import numpy as np
import torch
import torchvision
from PIL import Image
from tokenizers import Tokenizer
from transformers import CLIPVisionConfig, CLIPVisionModel, Phi3Config, Phi3ForCausalLM

IMAGE_TAG = re.compile(r"<\|image_\d+\|>")
CROP = 336
# Bounds used by the official embedding code to find placeholder positions.
MAX_INPUT_ID = int(1e9)


# --------------------------------------------------------------------------------------------
# Image processor (Phi3VImageProcessor)
# --------------------------------------------------------------------------------------------


def padding_336(b):
    """White padding of the height to a multiple of 336, smaller half on top."""
    width, height = b.size
    tar = int(np.ceil(height / CROP) * CROP)
    top_padding = int((tar - height) / 2)
    bottom_padding = tar - height - top_padding
    return torchvision.transforms.functional.pad(
        b, [0, top_padding, 0, bottom_padding], fill=[255, 255, 255]
    )


def hd_transform(img, hd_num):
    """Aspect-preserving resize to a multiple of 336 wide, then white padding (official HD_transform)."""
    width, height = img.size
    trans = False
    if width < height:
        img = img.transpose(Image.TRANSPOSE)
        trans = True
        width, height = img.size
    ratio = width / height
    scale = 1
    while scale * np.ceil(scale / ratio) <= hd_num:
        scale += 1
    scale -= 1
    new_w = int(scale * CROP)
    new_h = int(new_w / ratio)
    img = torchvision.transforms.functional.resize(img, [new_h, new_w])
    img = padding_336(img)
    if trans:
        img = img.transpose(Image.TRANSPOSE)
    return img


def pad_to_max_num_crops(images, max_crops):
    b, _, h, w = images.shape
    if b < max_crops:
        pad = torch.zeros(max_crops - b, 3, h, w, dtype=images.dtype)
        images = torch.cat([images, pad], dim=0)
    return images


def preprocess_image(image, num_crops, mean, std):
    """One PIL image -> (pixel_values [num_crops+1, 3, 336, 336], (H, W), num_img_tokens, hd uint8 image).

    Same steps as `Phi3VImageProcessor.preprocess` for a single image.
    """
    image = image.convert("RGB")  # transformers' convert_to_rgb of that era
    image = image.convert("RGB")  # the processor's own second conversion
    hd = hd_transform(image, num_crops)
    to_tensor = torchvision.transforms.Compose(
        [torchvision.transforms.ToTensor(), torchvision.transforms.Normalize(mean, std)]
    )
    hd_tensor = to_tensor(hd)
    global_image = torch.nn.functional.interpolate(
        hd_tensor.unsqueeze(0).float(), size=(CROP, CROP), mode="bicubic"
    ).to(hd_tensor.dtype)
    h, w = hd_tensor.size(1), hd_tensor.size(2)
    num_img_tokens = int((h // CROP * w // CROP + 1) * 144 + 1 + (h // CROP + 1) * 12)
    tiles = (
        hd_tensor.reshape(1, 3, h // CROP, CROP, w // CROP, CROP)
        .permute(0, 2, 4, 1, 3, 5)
        .reshape(-1, 3, CROP, CROP)
        .contiguous()
    )
    stack = torch.cat([global_image, tiles], dim=0)
    stack = pad_to_max_num_crops(stack, num_crops + 1)
    return stack, (h, w), num_img_tokens, hd


# --------------------------------------------------------------------------------------------
# Processor: prompt -> input ids with negative image placeholders
# --------------------------------------------------------------------------------------------


def chat_template(messages, add_generation_prompt=True):
    """The Phi-3-vision chat template from tokenizer_config.json."""
    out = "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in messages)
    if add_generation_prompt and messages[-1]["role"] != "assistant":
        out += "<|assistant|>\n"
    return out


def prompt_to_ids(tokenizer: Tokenizer, prompt, num_img_tokens):
    """Official `_convert_images_texts_to_inputs`: chunks tokenised separately with BOS,
    each `<|image_n|>` replaced by num_img_tokens[n-1] copies of -n."""
    chunks = [tokenizer.encode(c, add_special_tokens=True).ids for c in IMAGE_TAG.split(prompt)]
    tags = IMAGE_TAG.findall(prompt)
    image_ids = [int(s.split("|")[1].split("_")[-1]) for s in tags]
    unique = sorted(set(image_ids))
    assert unique == list(range(1, len(unique) + 1)), unique
    assert len(unique) == len(num_img_tokens), (unique, num_img_tokens)
    pads = [[-iid] * num_img_tokens[iid - 1] for iid in image_ids]
    ids = []
    for i, chunk in enumerate(chunks):
        ids.extend(chunk)
        if i < len(pads):
            ids.extend(pads[i])
    return ids


# --------------------------------------------------------------------------------------------
# Model: CLIP tower + HD feature assembly + projector + Phi-3 decoder
# --------------------------------------------------------------------------------------------


def clip_config(ip):
    """CLIPVisionConfig from an `img_processor` dict (small-tower keys, spec 1.1b)."""
    return CLIPVisionConfig(
        hidden_size=ip["hidden_size"],
        intermediate_size=ip["intermediate_size"],
        num_hidden_layers=ip["num_hidden_layers"],
        num_attention_heads=ip["num_attention_heads"],
        image_size=ip["image_size"],
        patch_size=ip["patch_size"],
        layer_norm_eps=ip["layer_norm_eps"],
        hidden_act=ip["hidden_act"],
        attn_implementation="eager",
    )


def phi3_config(cfg):
    """transformers' Phi3Config from a phi3_v config.json dict (LongRoPE as `longrope`)."""
    rs = cfg["rope_scaling"]
    return Phi3Config(
        vocab_size=cfg["vocab_size"],
        hidden_size=cfg["hidden_size"],
        intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["num_hidden_layers"],
        num_attention_heads=cfg["num_attention_heads"],
        num_key_value_heads=cfg["num_key_value_heads"],
        max_position_embeddings=cfg["max_position_embeddings"],
        original_max_position_embeddings=cfg["original_max_position_embeddings"],
        rms_norm_eps=cfg["rms_norm_eps"],
        rope_parameters={
            "rope_type": "longrope",
            "rope_theta": cfg["rope_theta"],
            "short_factor": rs["short_factor"],
            "long_factor": rs["long_factor"],
            "original_max_position_embeddings": cfg["original_max_position_embeddings"],
        },
        sliding_window=None,  # no effect inside the context (spec 1.1)
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=32000,
        attn_implementation="eager",
    )


CLIP_PREFIX = "model.vision_embed_tokens.img_processor.vision_model."
EMB_PREFIX = "model.vision_embed_tokens."


class Phi3VReference:
    """The whole Phi-3-vision model, assembled from transformers modules and an official-layout
    state dict (float32 tensors keyed by the checkpoint's tensor names)."""

    def __init__(self, cfg, state):
        self.cfg = cfg
        ip = cfg["img_processor"]
        self.clip = CLIPVisionModel(clip_config(ip)).eval()
        clip_sd = {k[len(CLIP_PREFIX):]: v for k, v in state.items() if k.startswith(CLIP_PREFIX)}
        missing, unexpected = self.clip.vision_model.load_state_dict(clip_sd, strict=False) \
            if hasattr(self.clip, "vision_model") else self.clip.load_state_dict(clip_sd, strict=False)
        assert not unexpected and all("position_ids" in m for m in missing), (missing, unexpected)

        self.lm = Phi3ForCausalLM(phi3_config(cfg)).eval()
        lm_sd = {k: v for k, v in state.items() if not k.startswith(EMB_PREFIX)}
        self.lm.load_state_dict(lm_sd, strict=True)

        self.sub_gn = state[EMB_PREFIX + "sub_GN"]
        self.glb_gn = state[EMB_PREFIX + "glb_GN"]
        c = 4 * ip["image_dim_out"]
        h = cfg["hidden_size"]
        self.proj = torch.nn.Sequential(torch.nn.Linear(c, h), torch.nn.GELU(), torch.nn.Linear(h, h))
        self.proj.load_state_dict(
            {k[len(EMB_PREFIX + "img_projection."):]: v for k, v in state.items()
             if k.startswith(EMB_PREFIX + "img_projection.")}
        )
        self.layer_idx = ip.get("layer_idx", -2)

    @torch.no_grad()
    def clip_features(self, crops):
        """[N, 3, 336, 336] -> penultimate-layer patch features [N, 576, C] (CLS dropped)."""
        out = self.clip(pixel_values=crops, output_hidden_states=True)
        return out.hidden_states[self.layer_idx][:, 1:]

    def reshape_hd_patches_2x2merge(self, feats, h_crop, w_crop):
        n, l, c = feats.shape
        side = int(l ** 0.5)
        num_images = n // (h_crop * w_crop)
        return (
            feats.reshape(n, side, side, c)
            .reshape(n, side // 2, 2, side // 2, 2, c)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(n, -1, 4 * c)
            .reshape(num_images, h_crop, w_crop, side // 2, side // 2, -1)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(num_images, h_crop * side // 2, w_crop * side // 2, 4 * c)
        )

    def add_image_newline(self, hd):
        num_images, h, w, dim = hd.shape
        newline = self.sub_gn.expand(num_images, h, -1, -1)
        return torch.cat([hd, newline], dim=2).reshape(num_images, -1, dim)

    @torch.no_grad()
    def image_embeds(self, pixel_values, image_sizes):
        """Official `hd_feature_transform` (order sub_glb) + projector, for a batch of images.

        pixel_values [num_images, num_crops+1, 3, 336, 336]; image_sizes [(H, W)].
        Returns (projected rows [sum num_img_tokens, hidden], per-image clip features).
        """
        pieces, feats_all = [], []
        for i, (h, w) in enumerate(image_sizes):
            n_tiles = (h // CROP) * (w // CROP)
            feats = self.clip_features(pixel_values[i, : 1 + n_tiles])  # padding crops skipped
            feats_all.append(feats)
            glb = self.add_image_newline(self.reshape_hd_patches_2x2merge(feats[:1], 1, 1))
            sub = self.add_image_newline(
                self.reshape_hd_patches_2x2merge(feats[1:], h // CROP, w // CROP)
            )
            pieces.extend([sub.squeeze(0), self.glb_gn.squeeze(0), glb.squeeze(0)])
        return self.proj(torch.cat(pieces, dim=0)), feats_all

    @torch.no_grad()
    def embed(self, ids, image_rows):
        """Text embeddings with image rows written over the negative placeholders, in order."""
        ids_t = torch.tensor([ids], dtype=torch.long)
        positions = torch.nonzero((ids_t < 0) & (ids_t > -MAX_INPUT_ID), as_tuple=True)
        clamped = ids_t.clamp_min(0).clamp_max(self.cfg["vocab_size"])
        embeds = self.lm.model.embed_tokens(clamped)
        if image_rows is not None:
            assert positions[0].numel() == image_rows.shape[0]
            embeds = embeds.index_put(positions, image_rows)
        return embeds

    @torch.no_grad()
    def greedy(self, prompt_embeds, steps):
        """Greedy decoding with a KV cache and the Phi-3.5 LongRoPE rule: long factors iff the
        largest position + 1 exceeds original_max_position_embeddings, and the cache is dropped
        and the whole sequence re-prefilled the first time a forward crosses that boundary.

        Returns (tokens, logits per forward [steps, vocab], indices of re-prefilled forwards).
        """
        orig = self.cfg["original_max_position_embeddings"]
        n = prompt_embeds.shape[1]
        out = self.lm(inputs_embeds=prompt_embeds, position_ids=torch.arange(n)[None], use_cache=True)
        cache = out.past_key_values
        logits = [out.logits[0, -1].float()]
        tokens, reprefilled = [], []
        embeds = prompt_embeds
        for step in range(1, steps + 1):
            tok = int(torch.argmax(logits[-1]))
            tokens.append(tok)
            if step == steps:
                break
            tok_embed = self.lm.model.embed_tokens(torch.tensor([[tok]]))
            embeds = torch.cat([embeds, tok_embed], dim=1)
            pos = embeds.shape[1] - 1
            if pos + 1 > orig and pos <= orig:  # first crossing: drop the short-factor cache
                reprefilled.append(step)
                out = self.lm(inputs_embeds=embeds, position_ids=torch.arange(pos + 1)[None], use_cache=True)
            else:
                out = self.lm(
                    inputs_embeds=tok_embed,
                    position_ids=torch.tensor([[pos]]),
                    past_key_values=cache,
                    use_cache=True,
                )
            cache = out.past_key_values
            logits.append(out.logits[0, -1].float())
        return tokens, torch.stack(logits), reprefilled

