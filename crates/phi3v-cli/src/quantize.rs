//! `phi3v quantize`: write a checkpoint whose matrices are already q8 or q4, so that every
//! later start reads them instead of quantising them again.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use phi3v::WeightFormat;

use crate::{outln, size, Quant, VisionQuant};

#[derive(Args)]
pub struct QuantizeArgs {
    /// Checkpoint directory, or a Hugging Face model id (resolved through the HF cache).
    #[arg(short, long, env = "PHI3V_MODEL", default_value = "microsoft/Phi-3.5-vision-instruct")]
    model: String,
    /// The decoder's format: q8 (int8) or q4 (int4), group-wise.
    #[arg(long, value_enum)]
    quant: Quant,
    /// The vision tower's and projector's format, if not the same as `--quant` (none: as stored).
    #[arg(long, value_enum)]
    vision_quant: Option<VisionQuant>,
    /// Directory to write (created; it must not hold weights already).
    #[arg(short, long)]
    out: PathBuf,
}

pub fn run(args: QuantizeArgs) -> Result<()> {
    let terminal = std::io::stderr().is_terminal();
    let dir = phi3v::hub::resolve(&args.model, terminal)?;
    let decoder = args.quant.format();
    let vision = match args.vision_quant {
        None => decoder,
        Some(VisionQuant::None) => WeightFormat::Auto,
        Some(VisionQuant::Q8) => WeightFormat::Q8,
        Some(VisionQuant::Q4) => WeightFormat::Q4,
    };
    let started = Instant::now();
    let written = phi3v::quantize(&dir, decoder, vision, &args.out, terminal.then(crate::progress_bars))?;
    let f = written.formats;
    outln!(
        "wrote {} ({} decoder, {} vision tower; {} matrices, {}) in {:.1} s",
        args.out.display(),
        f.decoder,
        f.vision,
        written.matrices,
        size(written.bytes),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
