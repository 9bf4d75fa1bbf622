//! `phi3v chat`: a multi-turn conversation on stdin/stdout. The KV cache is kept between turns,
//! so a follow-up does not re-run earlier turns or re-encode their images.
//!
//! Ctrl-C during an answer stops that answer (what was said stays in the conversation) and
//! returns to the prompt; at the prompt it quits. A line that starts with `/` is a command,
//! never sent to the model (`//` sends a line that starts with `/`).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Result;
use clap::Args;
use phi3v::{Cancel, StopReason};

use crate::ModelArgs;

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Image to attach to the first question (more with `/image PATH` in the chat).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
}

const HELP: &str = "/image PATH  attach an image to your next message\n/reset       start over\n/help        this list\n/exit        quit (also Ctrl-D)\nCtrl-C stops an answer; start a message with // to begin it with /";

/// The answer being generated, for the Ctrl-C handler: `Some` while the model is talking.
static ANSWERING: Mutex<Option<Cancel>> = Mutex::new(None);

/// Ctrl-C stops the answer in progress, or quits at the prompt (exit code 130, as a shell's).
fn on_interrupt() {
    let answering = ANSWERING.lock().unwrap_or_else(|e| e.into_inner());
    match answering.as_ref() {
        Some(cancel) => cancel.cancel(),
        None => std::process::exit(130),
    }
}

pub fn run(args: ChatArgs) -> Result<()> {
    let m = &args.model;
    let mut params = m.params()?;
    let mut pending = args.images.iter().map(|p| m.load.image(p)).collect::<Result<Vec<_>>>()?;
    let pipeline = m.load.pipeline()?;
    let mut session = pipeline.session();
    if let Some(system) = &m.system {
        session = session.with_system(system.clone());
    }
    let cancel = Cancel::new();
    params.cancel = Some(cancel.clone());
    ctrlc::set_handler(on_interrupt)?;
    let tty = std::io::stdin().is_terminal();
    if tty {
        eprintln!("{HELP}");
    }
    let mut stdin = std::io::stdin().lock();
    loop {
        if tty {
            eprint!("> ");
        }
        let mut bytes = Vec::new();
        if stdin.read_until(b'\n', &mut bytes)? == 0 {
            if tty {
                eprintln!();
            }
            return Ok(());
        }
        let Ok(line) = String::from_utf8(bytes) else {
            eprintln!("error: that line is not valid UTF-8 text; nothing was sent");
            continue;
        };
        let line = line.trim();
        let command = line.strip_prefix('/').filter(|rest| !rest.starts_with('/'));
        let Some(command) = command else {
            if line.is_empty() {
                continue;
            }
            let text = line.strip_prefix('/').unwrap_or(line); // `//…` → `/…`
            let images = std::mem::take(&mut pending);
            if let Err(e) = m.encode(&pipeline, &images) {
                eprintln!("error: {e:#}");
                continue;
            }
            cancel.reset();
            *ANSWERING.lock().unwrap_or_else(|e| e.into_inner()) = Some(cancel.clone());
            let result = session.ask(text, &images, &params, |piece| {
                if crate::emit(piece).is_err() {
                    cancel.cancel();
                }
            });
            *ANSWERING.lock().unwrap_or_else(|e| e.into_inner()) = None;
            crate::outln!();
            match result {
                Ok(g) if g.stop == StopReason::Cancelled => eprintln!("(stopped)"),
                Ok(g) if g.stop == StopReason::ContextFull => {
                    eprintln!("(the conversation has filled the model's context: /reset to go on)")
                }
                Ok(_) => {}
                Err(e) => eprintln!("error: {e:#}"),
            }
            continue;
        };
        match command.split_once(' ').map_or((command, ""), |(c, rest)| (c, rest.trim())) {
            ("exit" | "quit", _) => return Ok(()),
            ("reset", _) => {
                session.reset();
                pending.clear();
                eprintln!("(conversation cleared)");
            }
            ("image", path) if !path.is_empty() => match m.load.image(&PathBuf::from(path)) {
                Ok(img) => {
                    pending.push(img);
                    eprintln!("(image {} attached to your next message)", pending.len());
                }
                Err(e) => eprintln!("error: {e:#}"),
            },
            ("help", _) => eprintln!("{HELP}"),
            ("image", _) => eprintln!("/image needs a path\n{HELP}"),
            (other, _) => eprintln!("unknown command /{other}; nothing was sent\n{HELP}"),
        }
    }
}
