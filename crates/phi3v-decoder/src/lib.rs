//! The phi-3-mini-128K decoder of Phi-3-vision.
//!
//! Input: token embeddings `[T, hidden_size]` (text rows from `model.embed_tokens`, image rows
//! from the projector) and their positions. Output: logits `[vocab_size]` for the last position.
//! Layers: RMSNorm, fused `qkv_proj`, LongRoPE (`su` / `longrope`), causal attention with a KV
//! cache, fused `gate_up_proj` SiLU-GLU MLP; untied `lm_head`.
//!
//! Implementation lands with the decoder work; see `docs/ARCHITECTURE.md`.
