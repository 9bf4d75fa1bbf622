//! Choosing the next token: greedy, or sampling with temperature, top-k, top-p and a repetition
//! penalty, from a seeded generator so runs are reproducible.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How to pick tokens and when to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationParams {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// 0 means greedy (argmax); otherwise logits are divided by it before sampling.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0 = no limit).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1 = no limit).
    pub top_p: f32,
    /// Seed of the sampler's random generator.
    pub seed: u64,
    /// Above 1 makes tokens already in the prompt or output less likely (as in CTRL / transformers:
    /// positive logits divided by it, negative ones multiplied). 1 = off.
    pub repetition_penalty: f32,
    /// Extra stop strings: generation ends when the text contains one (it is not included).
    pub stop: Vec<String>,
    /// Set from elsewhere (a Ctrl-C handler, a closed connection) to end the generation before
    /// its next token, keeping what was generated ([`crate::StopReason::Cancelled`]).
    pub cancel: Option<Cancel>,
}

impl Default for GenerationParams {
    /// Greedy decoding, as in the official examples, up to 512 tokens.
    fn default() -> Self {
        Self {
            max_new_tokens: 512,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
            repetition_penalty: 1.0,
            stop: Vec::new(),
            cancel: None,
        }
    }
}

/// A value of [`GenerationParams`] that no generation could use, named as transformers names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("temperature must be a finite number ≥ 0 (0 is greedy), got {0}")]
    Temperature(f32),
    #[error("top_p must be in (0, 1], got {0}")]
    TopP(f32),
    #[error("repetition_penalty must be a finite number > 0 (1 is off), got {0}")]
    RepetitionPenalty(f32),
    #[error("max_new_tokens must be at least 1")]
    MaxNewTokens,
    #[error("stop strings must not be empty")]
    EmptyStop,
}

impl GenerationParams {
    /// Checks every value; generation refuses invalid parameters with this error.
    pub fn validate(&self) -> Result<(), ParamError> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(ParamError::Temperature(self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(ParamError::TopP(self.top_p));
        }
        if !self.repetition_penalty.is_finite() || self.repetition_penalty <= 0.0 {
            return Err(ParamError::RepetitionPenalty(self.repetition_penalty));
        }
        if self.max_new_tokens == 0 {
            return Err(ParamError::MaxNewTokens);
        }
        if self.stop.iter().any(String::is_empty) {
            return Err(ParamError::EmptyStop);
        }
        Ok(())
    }

    /// Whether [`Self::cancel`] was set.
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(Cancel::is_cancelled)
    }
}

/// A flag that stops generations from another thread. Clones share the flag.
#[derive(Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the generations that hold this flag to stop before their next token.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Clears the flag, for the next generation.
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl PartialEq for Cancel {
    /// The same flag.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cancel({})", self.is_cancelled())
    }
}

/// Picks token ids from logits.
pub struct Sampler {
    params: GenerationParams,
    rng: StdRng,
    /// The penalised logits and which were penalised (`[vocab]` each), reused from token to
    /// token.
    penalised: Vec<f32>,
    done: Vec<bool>,
}

impl Sampler {
    pub fn new(params: &GenerationParams) -> Self {
        Self { params: params.clone(), rng: StdRng::seed_from_u64(params.seed), penalised: Vec::new(), done: Vec::new() }
    }

    /// The next token for `logits` (`[vocab]`), given the ids seen so far (for the penalty).
    /// Greedy decoding allocates nothing.
    pub fn next(&mut self, logits: &[f32], seen: &[u32]) -> u32 {
        let penalty = self.params.repetition_penalty;
        let logits = if penalty != 1.0 {
            let (penalised, done) = (&mut self.penalised, &mut self.done);
            penalised.clear();
            penalised.extend_from_slice(logits);
            done.clear();
            done.resize(logits.len(), false);
            for &id in seen {
                let i = id as usize;
                if i < logits.len() && !done[i] {
                    done[i] = true;
                    penalised[i] = if logits[i] > 0.0 { logits[i] / penalty } else { logits[i] * penalty };
                }
            }
            &self.penalised[..]
        } else {
            logits
        };
        if self.params.temperature <= 0.0 {
            return argmax(logits);
        }
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        if self.params.top_k > 0 {
            order.truncate(self.params.top_k);
        }
        let max = logits[order[0]];
        let mut probs: Vec<f64> =
            order.iter().map(|&i| (((logits[i] - max) / self.params.temperature) as f64).exp()).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if self.params.top_p < 1.0 {
            let mut mass = 0.0;
            let keep = probs.iter().position(|p| {
                mass += p;
                mass >= self.params.top_p as f64
            });
            let keep = keep.map_or(probs.len(), |k| k + 1);
            probs.truncate(keep);
        }
        let total: f64 = probs.iter().sum();
        let mut r = self.rng.random::<f64>() * total;
        for (k, p) in probs.iter().enumerate() {
            r -= p;
            if r <= 0.0 {
                return order[k] as u32;
            }
        }
        order[probs.len() - 1] as u32
    }
}

/// Index of the largest logit (the first on ties, as torch.argmax).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if *v > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32) -> GenerationParams {
        GenerationParams { temperature, ..Default::default() }
    }

    #[test]
    fn greedy_is_argmax_and_penalty_can_change_it() {
        let logits = [1.0, 3.0, 2.9, -1.0];
        assert_eq!(Sampler::new(&params(0.0)).next(&logits, &[]), 1);
        let p = GenerationParams { repetition_penalty: 1.5, ..params(0.0) };
        assert_eq!(Sampler::new(&p).next(&logits, &[1]), 2);
        // Negative logits are pushed further down, not up.
        let logits = [-2.0, -1.0];
        assert_eq!(Sampler::new(&p).next(&logits, &[1]), 1);
        assert_eq!(Sampler::new(&p).next(&logits, &[0]), 1);
    }

    #[test]
    fn invalid_values_are_named() {
        let ok = GenerationParams::default();
        assert_eq!(ok.validate(), Ok(()));
        let bad = [
            (GenerationParams { temperature: f32::NAN, ..ok.clone() }, "temperature"),
            (GenerationParams { temperature: f32::INFINITY, ..ok.clone() }, "temperature"),
            (GenerationParams { temperature: -0.5, ..ok.clone() }, "temperature"),
            (GenerationParams { top_p: 0.0, ..ok.clone() }, "top_p"),
            (GenerationParams { top_p: 1.5, ..ok.clone() }, "top_p"),
            (GenerationParams { top_p: f32::NAN, ..ok.clone() }, "top_p"),
            (GenerationParams { repetition_penalty: 0.0, ..ok.clone() }, "repetition_penalty"),
            (GenerationParams { repetition_penalty: -1.0, ..ok.clone() }, "repetition_penalty"),
            (GenerationParams { repetition_penalty: f32::NAN, ..ok.clone() }, "repetition_penalty"),
            (GenerationParams { max_new_tokens: 0, ..ok.clone() }, "max_new_tokens"),
            (GenerationParams { stop: vec![String::new()], ..ok.clone() }, "stop"),
        ];
        for (params, field) in bad {
            let err = params.validate().unwrap_err().to_string();
            assert!(err.starts_with(field), "{params:?}: {err}");
        }
    }

    #[test]
    fn sampling_is_seeded_and_respects_top_k_and_top_p() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32) * 0.1).collect();
        let draw = |p: &GenerationParams| {
            let mut s = Sampler::new(p);
            (0..200).map(|_| s.next(&logits, &[])).collect::<Vec<_>>()
        };
        let p = params(1.0);
        assert_eq!(draw(&p), draw(&p), "same seed, same draws");
        assert_ne!(draw(&p), draw(&GenerationParams { seed: 1, ..p.clone() }));
        let top3 = draw(&GenerationParams { top_k: 3, ..p.clone() });
        assert!(top3.iter().all(|&t| t >= 47));
        assert!(top3.iter().any(|&t| t != 49));
        // Probability mass is ~uniform-ish here; top_p 0.05 keeps only the top few tokens.
        let nucleus = draw(&GenerationParams { top_p: 0.05, ..p });
        assert!(nucleus.iter().all(|&t| t >= 45), "{nucleus:?}");
    }
}
