//! `phi3v serve`: the OpenAI-compatible server (`phi3v-server`) with the model flags of `ask`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use phi3v_server::{MediaPolicy, ServerConfig};

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    load: crate::LoadArgs,
    /// Address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free one; the address is logged).
    #[arg(short, long, default_value_t = 8000)]
    port: u16,
    /// The model id clients send and `/v1/models` lists (default: the --model value).
    #[arg(long)]
    served_model_name: Option<String>,
    /// Require `Authorization: Bearer KEY` on /v1/ requests.
    #[arg(long, env = "PHI3V_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Chat requests that may wait while the batch is full; more get 429.
    #[arg(long, default_value_t = phi3v::EngineOptions::default().max_queue)]
    max_queue: usize,
    /// Requests generated together (continuous batching; 1: one at a time).
    #[arg(long, default_value_t = phi3v::EngineOptions::default().max_batch, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_batch: usize,
    /// Prompt rows read between two decode steps of the running answers (images: CLIP layers
    /// of the same cost): smaller keeps them flowing while a long image prompt is read, larger
    /// reads prompts faster. With no answer running, prompts are read 256 rows at a time.
    #[arg(long, default_value_t = phi3v::EngineOptions::default().prefill_chunk, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    prefill_chunk: usize,
    /// Memory for the KV caches of finished answers, so a conversation resent with a new
    /// question only reads its new tokens (0: off).
    #[arg(long, default_value_t = phi3v::EngineOptions::default().prefix_cache_bytes)]
    prefix_cache_bytes: usize,
    /// Memory for the KV caches of the requests being generated, in bytes (4GiB, 512MiB) or
    /// positions (16384tokens): a request that does not fit waits; answers that outgrow it
    /// preempt the youngest request (read again later); a longer prompt gets 400.
    #[arg(long, default_value_t = phi3v::EngineOptions::default().kv_budget)]
    kv_budget: phi3v::KvBudget,
    /// Largest request body in bytes (base64 images included); larger ones get 413.
    #[arg(long, default_value_t = 64 << 20)]
    max_body_bytes: usize,
    /// Most images in one request.
    #[arg(long, default_value_t = 8)]
    max_images_per_request: usize,
    /// Largest `num_crops` a request may ask for (each crop costs a CLIP pass).
    #[arg(long, default_value_t = 16, value_parser = crate::num_crops)]
    max_num_crops: usize,
    /// Serve `file://` image URLs from inside this folder (off by default).
    #[arg(long, value_name = "DIR")]
    allowed_media_dir: Option<PathBuf>,
    /// Time limit for downloading an http(s) image, in seconds.
    #[arg(long, default_value_t = 30.0)]
    fetch_timeout: f64,
    /// After SIGTERM or Ctrl-C, seconds running requests get to finish before they are cut.
    #[arg(long, default_value_t = 30.0)]
    shutdown_timeout: f64,
}

fn seconds(value: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| crate::Usage(format!("--{flag} must be a number of seconds ≥ 0, got {value}")).into())
}

pub fn run(args: ServeArgs) -> Result<()> {
    phi3v_server::init_logging();
    let allowed_dir = match &args.allowed_media_dir {
        Some(dir) => Some(dir.canonicalize().with_context(|| format!("--allowed-media-dir {}", dir.display()))?),
        None => None,
    };
    let config = ServerConfig {
        host: args.host.clone(),
        port: args.port,
        model_name: args.served_model_name.clone().unwrap_or_else(|| args.load.model.clone()),
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
        engine: phi3v::EngineOptions {
            max_queue: args.max_queue,
            max_batch: args.max_batch,
            prefill_chunk: args.prefill_chunk,
            prefix_cache_bytes: args.prefix_cache_bytes,
            kv_budget: args.kv_budget,
        },
        max_body_bytes: args.max_body_bytes,
        max_images: args.max_images_per_request,
        max_crops: args.max_num_crops,
        default_crops: args.load.num_crops,
        media: MediaPolicy {
            limits: args.load.limits.limits(),
            fetch_timeout: seconds(args.fetch_timeout, "fetch-timeout")?,
            allowed_dir,
        },
        shutdown_timeout: seconds(args.shutdown_timeout, "shutdown-timeout")?,
    };
    let load = move || -> phi3v::Result<phi3v::Pipeline> {
        let dir = phi3v::hub::resolve(&args.load.model, std::io::IsTerminal::is_terminal(&std::io::stderr()))?;
        phi3v::Pipeline::load(&dir, &args.load.options(&dir))
    };
    Ok(phi3v_server::serve(config, load)?)
}
