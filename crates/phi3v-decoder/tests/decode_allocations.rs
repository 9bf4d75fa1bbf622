//! A warm decode step allocates nothing: a global allocator that counts every allocation (on
//! any thread, rayon's workers included) around [`Decoder::step`], for each weight format and
//! KV cache dtype. The prompt and the steps stay within the cache's first block of 512
//! positions, so no growth is due.
//!
//! This file holds one test so that no other test allocates while it counts.

use candle_core::Device;
use phi3v_checkpoint::Checkpoint;
use phi3v_decoder::{Decoder, KvCache, KvDtype};
use phi3v_linear::unsafe_io::CountingAllocator;
use phi3v_linear::WeightFormat;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator::new();

/// Index of the largest logit.
fn argmax(logits: &[f32]) -> u32 {
    (0..logits.len()).fold(0, |best, i| if logits[i] > logits[best] { i } else { best }) as u32
}

#[test]
fn warm_decode_steps_allocate_nothing() {
    let ckpt = Checkpoint::open(&phi3v_fixtures::path("tiny-phi35v")).unwrap();
    let stored = ckpt.weights.stored_dtype();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    for format in [WeightFormat::F32, WeightFormat::Bf16, WeightFormat::Q8, WeightFormat::Q4] {
        for kv in [KvDtype::F32, KvDtype::F16, KvDtype::Q8] {
            let vb = ckpt.weights.var_builder(format.table_dtype(stored), &Device::Cpu).unwrap();
            let dec = Decoder::load(&ckpt.config, format, vb).unwrap().with_kv_dtype(kv);
            let prompt: Vec<u32> = (0..40).map(|i| (i * 131 % 32000) as u32).collect();
            // Inside one pool task, as the pipeline runs them: a step's parallel loops are then
            // joins on the workers, not jobs sent in from outside.
            let (counted, tokens) = pool.install(|| {
                let mut cache = KvCache::default();
                let mut token = argmax(&dec.forward(&dec.embed(&prompt).unwrap(), &mut cache).unwrap().to_vec1().unwrap());
                for _ in 0..3 {
                    token = argmax(dec.step(token, &mut cache).unwrap());
                }
                let before = GLOBAL.count();
                for _ in 0..16 {
                    token = argmax(dec.step(token, &mut cache).unwrap());
                }
                (GLOBAL.count() - before, cache.len())
            });
            assert_eq!(tokens, 40 + 3 + 16);
            assert_eq!(counted, 0, "{format} weights, {kv:?} cache: {counted} allocations in 16 warm steps");
        }
    }
}
