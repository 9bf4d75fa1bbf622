//! `phi3v chat`: a multi-turn conversation on stdin/stdout. The KV cache is kept between turns,
//! so a follow-up does not re-run earlier turns or re-encode their images.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::ModelArgs;

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Image to attach to the first question (more with `/image PATH` in the chat).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
}

const HELP: &str = "/image PATH  attach an image to your next message\n/reset       start over\n/exit        quit";

pub fn run(args: ChatArgs) -> Result<()> {
    let m = &args.model;
    let mut pending = args.images.iter().map(|p| m.load.image(p)).collect::<Result<Vec<_>>>()?;
    let pipeline = m.load.pipeline()?;
    let params = m.params();
    let mut session = pipeline.session();
    if let Some(system) = &m.system {
        session = session.with_system(system.clone());
    }
    let tty = std::io::stdin().is_terminal();
    if tty {
        eprintln!("{HELP}");
    }
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    loop {
        if tty {
            eprint!("> ");
        }
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim();
        match line.split_once(' ').map_or((line, ""), |(c, rest)| (c, rest.trim())) {
            ("/exit" | "/quit", _) => return Ok(()),
            ("/reset", _) => {
                session.reset();
                pending.clear();
                eprintln!("(conversation cleared)");
            }
            ("/image", path) if !path.is_empty() => match m.load.image(&PathBuf::from(path)) {
                Ok(img) => {
                    pending.push(img);
                    eprintln!("(image {} attached to your next message)", pending.len());
                }
                Err(e) => eprintln!("error: {e:#}"),
            },
            ("/help" | "/image", _) => eprintln!("{HELP}"),
            ("", _) => {}
            _ => {
                let images = std::mem::take(&mut pending);
                if let Err(e) = m.encode(&pipeline, &images) {
                    eprintln!("error: {e:#}");
                    continue;
                }
                let result = session.ask(line, &images, &params, |piece| {
                    let _ = write!(out, "{piece}");
                    let _ = out.flush();
                });
                println!();
                if let Err(e) = result {
                    eprintln!("error: {e:#}");
                }
            }
        }
    }
}
