//! HD feature assembly and projector of Phi-3-vision.
//!
//! Input: per image, CLIP patch features `[1 + rows·cols, 576, C]` (global view first) and the
//! crop grid `(rows, cols)`. Output: `num_img_tokens` rows of width `hidden_size` (3072), in the
//! order the decoder consumes them: the 2×2-merged sub-image grid with a `sub_GN` separator after
//! each of its `rows·12` rows, one `glb_GN`, then the merged global view with its 12 separators,
//! all through Linear(4C→H) · GELU(erf) · Linear(H→H).
//!
//! Implementation lands with the image-path work; see `docs/ARCHITECTURE.md`.
