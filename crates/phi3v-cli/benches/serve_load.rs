//! A bounded load test of `phi3v serve` on 127.0.0.1 with the tiny checkpoint:
//! `cargo bench -p phi3v-cli --bench serve_load -- [--clients N] [--requests M] [--max-tokens T]`.
//!
//! N client threads share M requests, a mix of plain and streamed answers (with images every
//! third), broken images (expected 400) and clients that hang up after the first event. It
//! prints requests/s, p50/p99 latency and the server's peak RSS, and fails unless every accepted
//! request got a complete, well-formed answer (a 429 from a full queue counts as refused, not
//! failed). The server is killed at the end; the whole run is bounded by the request count.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::server::{answer, Server};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Plain,
    Streamed,
    BadImage,
    HangUp,
}

/// What one request came to.
enum Outcome {
    Complete(Duration),
    Refused,
    HungUp,
}

fn main() {
    let args = phi3v_fixtures::BenchArgs::from_env();
    let arg = |name: &str, default: usize| args.parsed(name, default).expect(name);
    let (clients, requests, max_tokens) = (arg("--clients", 8), arg("--requests", 120), arg("--max-tokens", 32));
    let server = Arc::new(Server::start(&["--max-queue", "64"]));
    let chart = std::fs::read(format!("{}/../../assets/chart.png", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let image = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&chart));
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (server, next, outcomes, image) = (server.clone(), next.clone(), outcomes.clone(), image.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= requests {
                    break;
                }
                let kind = [Kind::Plain, Kind::Streamed, Kind::Plain, Kind::Streamed, Kind::BadImage, Kind::HangUp][i % 6];
                let mut content = vec![json!({"type": "text", "text": format!("Request {i}: what is shown?")})];
                if i % 3 == 0 {
                    content.insert(0, json!({"type": "image_url", "image_url": {"url": image}}));
                }
                if let Kind::BadImage = kind {
                    content.insert(0, json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAAN"}}));
                }
                let body = json!({"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
                                  "temperature": 0.7, "seed": i, "stream": matches!(kind, Kind::Streamed | Kind::HangUp)});
                let outcome = one(&server, kind, &body).unwrap_or_else(|e| panic!("request {i} ({kind:?}): {e}"));
                outcomes.lock().unwrap().push(outcome);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client failed");
    }
    let elapsed = start.elapsed();
    let peak_rss = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_string())))
        .unwrap_or_else(|| "unknown".into());
    let outcomes = outcomes.lock().unwrap();
    let mut latencies: Vec<Duration> = outcomes.iter().filter_map(|o| if let Outcome::Complete(d) = o { Some(*d) } else { None }).collect();
    latencies.sort();
    let refused = outcomes.iter().filter(|o| matches!(o, Outcome::Refused)).count();
    let hung_up = outcomes.iter().filter(|o| matches!(o, Outcome::HungUp)).count();
    let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).map_or(0.0, |d| d.as_secs_f64() * 1e3);
    println!(
        "serve_load: {requests} requests from {clients} clients in {:.2} s: {:.1} requests/s; {} complete, {refused} refused (429), \
         {hung_up} hung up; latency p50 {:.0} ms, p99 {:.0} ms; server peak RSS {peak_rss}",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        latencies.len(),
        pct(0.5),
        pct(0.99),
    );
    assert_eq!(outcomes.len(), requests);
    // Still healthy after all that.
    assert_eq!(server.get("/health").0, 200);
}

/// Sends one request and checks its answer; `Err` says what was malformed.
fn one(server: &Server, kind: Kind, body: &Value) -> Result<Outcome, String> {
    let start = Instant::now();
    if let Kind::HangUp = kind {
        let stream = server.send_raw(body).map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).map_err(|e| e.to_string())?;
        return Ok(Outcome::HungUp); // dropped after the status line
    }
    let request = ureq::post(&server.url("/v1/chat/completions")).timeout(Duration::from_secs(300));
    let response = match request.send_json(body.clone()) {
        Ok(r) => r,
        Err(ureq::Error::Status(429, _)) => return Ok(Outcome::Refused),
        Err(ureq::Error::Status(400, r)) if matches!(kind, Kind::BadImage) => {
            let body: Value = r.into_json().map_err(|e| e.to_string())?;
            return match body["error"]["param"].as_str() {
                Some("messages[0].content[0].image_url.url") => Ok(Outcome::Complete(start.elapsed())),
                _ => Err(format!("a 400 without the field: {body}")),
            };
        }
        Err(e) => return Err(format!("{:?}", answer(Err(e)))),
    };
    if matches!(kind, Kind::BadImage) {
        return Err("a broken image was accepted".into());
    }
    if let Kind::Plain = kind {
        let reply: Value = response.into_json().map_err(|e| e.to_string())?;
        let ok = reply["choices"][0]["message"]["content"].is_string()
            && ["stop", "length"].contains(&reply["choices"][0]["finish_reason"].as_str().unwrap_or(""))
            && reply["usage"]["total_tokens"].as_u64() == Some(reply["usage"]["prompt_tokens"].as_u64().unwrap_or(0) + reply["usage"]["completion_tokens"].as_u64().unwrap_or(0));
        return if ok { Ok(Outcome::Complete(start.elapsed())) } else { Err(format!("malformed: {reply}")) };
    }
    let mut text = String::new();
    response.into_reader().read_to_string(&mut text).map_err(|e| e.to_string())?;
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    if events.last() != Some(&"data: [DONE]") {
        return Err(format!("no [DONE]: {text:.300}"));
    }
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.strip_prefix("data: ").and_then(|j| serde_json::from_str(j).ok()).ok_or(format!("bad event {e:?}")))
        .collect::<Result<_, _>>()?;
    let finishes = chunks.iter().filter(|c| !c["choices"][0]["finish_reason"].is_null()).count();
    let one_id = chunks.iter().all(|c| c["id"] == chunks[0]["id"]);
    if finishes != 1 || !one_id || chunks[0]["choices"][0]["delta"]["role"] != "assistant" {
        return Err(format!("malformed stream: {text:.500}"));
    }
    Ok(Outcome::Complete(start.elapsed()))
}
