//! LongRoPE ("su" / "longrope") rotary tables of Phi-3.
//!
//! inv_freq_i = 1 / (factor_i · θ^(2i/d)) in f32, with `factor` the short list while the
//! sequence fits in `original_max_position_embeddings` and the long list past it; the cos/sin
//! tables are scaled by the attention factor √(1 + ln(s)/ln(original_max)),
//! s = max_position_embeddings / original_max_position_embeddings, for both lists.
//! Without `rope_scaling` all factors are 1 and the attention factor is 1.

use phi3v_checkpoint::Phi3VConfig;

/// Rotary tables for one head width.
#[derive(Debug, Clone)]
pub struct LongRope {
    short_inv_freq: Vec<f32>,
    long_inv_freq: Vec<f32>,
    attention_factor: f32,
    original_max: usize,
    scaled: bool,
}

fn inv_freq(head_dim: usize, theta: f32, factors: &[f64]) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| {
            let exponent = (2 * i) as f32 / head_dim as f32;
            1.0 / (factors[i] as f32 * theta.powf(exponent))
        })
        .collect()
}

impl LongRope {
    pub fn new(cfg: &Phi3VConfig) -> Self {
        let hd = cfg.head_dim();
        let theta = cfg.rope_theta as f32;
        let ones = vec![1.0; hd / 2];
        let (short, long) = match &cfg.rope_scaling {
            Some(rs) => (rs.short_factor.as_slice(), rs.long_factor.as_slice()),
            None => (ones.as_slice(), ones.as_slice()),
        };
        let scale = cfg.max_position_embeddings as f64 / cfg.original_max_position_embeddings as f64;
        let attention_factor = if cfg.rope_scaling.is_none() || scale <= 1.0 {
            1.0
        } else {
            (1.0 + scale.ln() / (cfg.original_max_position_embeddings as f64).ln()).sqrt() as f32
        };
        Self {
            short_inv_freq: inv_freq(hd, theta, short),
            long_inv_freq: inv_freq(hd, theta, long),
            attention_factor,
            original_max: cfg.original_max_position_embeddings,
            scaled: cfg.rope_scaling.is_some(),
        }
    }

    /// Whether a forward whose largest position is `len - 1` uses the long factors.
    pub fn is_long(&self, len: usize) -> bool {
        self.scaled && len > self.original_max
    }

    /// The attention factor m applied to cos and sin.
    pub fn attention_factor(&self) -> f32 {
        self.attention_factor
    }

    /// Writes `cos` and `sin`, each `[n, head_dim/2]`, for positions `start..start + n`
    /// (allocating only when they grow).
    pub fn fill(&self, start: usize, n: usize, long: bool, cos: &mut Vec<f32>, sin: &mut Vec<f32>) {
        let inv = if long { &self.long_inv_freq } else { &self.short_inv_freq };
        cos.clear();
        sin.clear();
        for p in start..start + n {
            for f in inv {
                let angle = p as f32 * f;
                cos.push(angle.cos() * self.attention_factor);
                sin.push(angle.sin() * self.attention_factor);
            }
        }
    }

    /// Rotates each head `[head_dim]` of `row` `[heads, head_dim]` by one position's `cos` and
    /// `sin` `[head_dim/2]`: the two halves of a head are the pairs (as transformers'
    /// `rotate_half`, not interleaved).
    pub fn rotate(row: &mut [f32], cos: &[f32], sin: &[f32]) {
        for head in row.chunks_exact_mut(2 * cos.len()) {
            let (a, b) = head.split_at_mut(cos.len());
            for (((x1, x2), c), s) in a.iter_mut().zip(b).zip(cos).zip(sin) {
                (*x1, *x2) = (*x1 * c - *x2 * s, *x1 * s + *x2 * c);
            }
        }
    }
}
