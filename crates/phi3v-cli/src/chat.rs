//! `phi3v chat`: a multi-turn conversation on stdin/stdout. The KV cache is kept between turns,
//! so a follow-up does not re-run earlier turns or re-encode their images.
//!
//! On a terminal, lines are edited with history (saved between runs); a line ending in `\`
//! goes on on the next one. Ctrl-C during an answer stops that answer (what was said stays in
//! the conversation) and returns to the prompt; at the prompt it drops the line being typed,
//! and Ctrl-D ends the chat. A line that starts with `/` is a command, never sent to the model
//! (`//` sends a line that starts with `/`).

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use clap::Args;
use phi3v::{Cancel, Generation, StopReason};
use rustyline::error::ReadlineError;

use crate::ModelArgs;

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Image to attach to the first question (more with `/image PATH` in the chat).
    #[arg(short, long = "image")]
    images: Vec<PathBuf>,
}

const HELP: &str = "\
/image PATH...  attach images to your next message (quote paths with spaces; ~ and file:// work)
/system TEXT    set the system message and start over
/reset          start over (the system message stays)
/save FILE      write the conversation so far as JSON messages
/stats          token counts and speed of the last answer
/help           this list
/exit           quit (also Ctrl-D)
A line ending in \\ goes on on the next line; // at the start sends a /.
Ctrl-C stops an answer.";

/// The answer being generated, for the Ctrl-C handler: `Some` while the model is talking.
static ANSWERING: Mutex<Option<Cancel>> = Mutex::new(None);

/// Ctrl-C stops the answer in progress, or quits when stdin is not a terminal and nothing is
/// being answered (exit code 130, as a shell's). On a terminal the line editor reads Ctrl-C at
/// the prompt itself.
fn on_interrupt() {
    let answering = ANSWERING.lock().unwrap_or_else(|e| e.into_inner());
    match answering.as_ref() {
        Some(cancel) => cancel.cancel(),
        None => std::process::exit(130),
    }
}

/// One thing typed at the prompt.
enum Line {
    Text(String),
    /// Bytes that are not UTF-8 (from a pipe).
    NotText,
    /// Ctrl-C at the prompt.
    Dropped,
    End,
}

/// Where lines come from: a line editor on a terminal, plain reads from a pipe.
enum Input {
    Terminal(Box<rustyline::DefaultEditor>, Option<PathBuf>),
    Pipe(std::io::StdinLock<'static>),
}

impl Input {
    fn new() -> Result<Self> {
        if !std::io::stdin().is_terminal() {
            return Ok(Input::Pipe(std::io::stdin().lock()));
        }
        let mut editor = rustyline::DefaultEditor::new().context("line editor")?;
        let history = history_file();
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        Ok(Input::Terminal(Box::new(editor), history))
    }

    /// The next line, with `\`-continued lines joined by newlines.
    fn read(&mut self) -> Result<Line> {
        let mut text = String::new();
        loop {
            let prompt = if text.is_empty() { "> " } else { ". " };
            let line = match self {
                Input::Terminal(editor, _) => match editor.readline(prompt) {
                    Ok(line) => line,
                    Err(ReadlineError::Interrupted) => return Ok(Line::Dropped),
                    Err(ReadlineError::Eof) => return Ok(if text.is_empty() { Line::End } else { Line::Text(text) }),
                    Err(e) => return Err(e.into()),
                },
                Input::Pipe(stdin) => {
                    let mut bytes = Vec::new();
                    if stdin.read_until(b'\n', &mut bytes)? == 0 {
                        return Ok(if text.is_empty() { Line::End } else { Line::Text(text) });
                    }
                    match String::from_utf8(bytes) {
                        Ok(line) => line.trim_end_matches(['\n', '\r']).to_string(),
                        Err(_) => return Ok(Line::NotText),
                    }
                }
            };
            match line.strip_suffix('\\') {
                Some(part) => {
                    text.push_str(part);
                    text.push('\n');
                }
                None => {
                    text.push_str(&line);
                    if let Input::Terminal(editor, history) = self {
                        let _ = editor.add_history_entry(text.as_str());
                        if let Some(h) = history {
                            let _ = editor.save_history(h);
                        }
                    }
                    return Ok(Line::Text(text));
                }
            }
        }
    }
}

/// `$XDG_STATE_HOME/phi3v/chat-history` (default `~/.local/state/...`), created if need be.
fn history_file() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/state")))?;
    let dir = state.join("phi3v");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("chat-history"))
}

/// The paths of an `/image` command: shell-quoted words, `~/` expanded, `file://` URLs (as a
/// file manager drops them) decoded.
pub fn image_paths(args: &str) -> Result<Vec<PathBuf>> {
    let words = shell_words::split(args).map_err(|e| anyhow::anyhow!("cannot read the paths {args:?}: {e}"))?;
    Ok(words.iter().map(|w| expand(w)).collect())
}

fn expand(word: &str) -> PathBuf {
    if let Some(rest) = word.strip_prefix("file://") {
        return PathBuf::from(percent_decode(rest));
    }
    match (word.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(word),
    }
}

/// `%XX` escapes of a URL path decoded (bytes that do not form UTF-8 are kept as escaped).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

pub fn run(args: ChatArgs) -> Result<()> {
    let m = &args.model;
    let mut params = m.params()?;
    if args.images.iter().any(|p| p == Path::new("-")) {
        return Err(crate::Usage("--image -: stdin is where the chat reads your messages".into()).into());
    }
    let mut pending = args.images.iter().map(|p| m.load.image(p)).collect::<Result<Vec<_>>>()?;
    let pipeline = m.load.pipeline()?;
    let mut system = m.system.clone();
    let new_session = |system: &Option<String>| match system {
        Some(s) => pipeline.session().with_system(s.clone()),
        None => pipeline.session(),
    };
    let mut session = new_session(&system);
    let cancel = Cancel::new();
    params.cancel = Some(cancel.clone());
    ctrlc::set_handler(on_interrupt)?;
    let mut input = Input::new()?;
    let tty = matches!(input, Input::Terminal(..));
    if tty {
        eprintln!("{HELP}");
    }
    let mut last: Option<Generation> = None;
    loop {
        let line = match input.read()? {
            Line::End => {
                if tty {
                    eprintln!();
                }
                return Ok(());
            }
            Line::Dropped => continue,
            Line::NotText => {
                eprintln!("error: that line is not valid UTF-8 text; nothing was sent");
                continue;
            }
            Line::Text(t) => t,
        };
        let line = line.trim();
        let command = line.strip_prefix('/').filter(|rest| !rest.starts_with('/'));
        let Some(command) = command else {
            if line.is_empty() {
                continue;
            }
            let text = line.strip_prefix('/').unwrap_or(line); // `//…` → `/…`
            let images = std::mem::take(&mut pending);
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
                Ok(g) => {
                    match g.stop {
                        StopReason::Cancelled => eprintln!("(stopped)"),
                        StopReason::ContextFull => eprintln!("(the conversation has filled the model's context: /reset to go on)"),
                        _ if m.show_stats() => eprintln!("{}", crate::stats_line(&g, params.max_new_tokens)),
                        StopReason::MaxTokens => eprintln!("(cut at --max-tokens {})", params.max_new_tokens),
                        _ => {}
                    }
                    last = Some(g);
                }
                Err(e) => eprintln!("error: {e:#}"),
            }
            continue;
        };
        let (name, rest) = command.split_once(char::is_whitespace).map_or((command, ""), |(c, rest)| (c, rest.trim()));
        match name {
            "exit" | "quit" => return Ok(()),
            "reset" => {
                session.reset();
                pending.clear();
                eprintln!("(conversation cleared)");
            }
            "system" => {
                system = (!rest.is_empty()).then(|| rest.to_string());
                session = new_session(&system);
                pending.clear();
                eprintln!("(system message {}; conversation cleared)", if system.is_some() { "set" } else { "removed" });
            }
            "image" if !rest.is_empty() => match image_paths(rest) {
                Ok(paths) => {
                    for path in paths {
                        match m.load.image(&path) {
                            Ok(img) => {
                                pending.push(img);
                                eprintln!("(image {} attached to your next message)", pending.len());
                            }
                            Err(e) => eprintln!("error: {e:#}"),
                        }
                    }
                }
                Err(e) => eprintln!("error: {e:#}"),
            },
            "save" if !rest.is_empty() => {
                let path = image_paths(rest).ok().and_then(|p| p.into_iter().next()).unwrap_or_else(|| PathBuf::from(rest));
                let json = serde_json::to_string_pretty(session.messages())? + "\n";
                match std::fs::write(&path, json) {
                    Ok(()) => eprintln!("({} messages written to {})", session.messages().len(), path.display()),
                    Err(e) => eprintln!("error: {}: {e}", path.display()),
                }
            }
            "stats" => match &last {
                Some(g) => eprintln!("{} {} tokens in the conversation", crate::stats_line(g, params.max_new_tokens), session.cached_tokens()),
                None => eprintln!("(no answer yet)"),
            },
            "help" => eprintln!("{HELP}"),
            "image" | "save" => eprintln!("/{name} needs a path\n{HELP}"),
            other => eprintln!("unknown command /{other}; nothing was sent\n{HELP}"),
        }
    }
}
