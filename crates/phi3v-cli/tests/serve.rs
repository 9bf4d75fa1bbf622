//! `phi3v serve` over a real socket on 127.0.0.1, on the tiny checkpoint: every request field,
//! streamed against non-streamed answers, parity with `phi3v ask`, each error class,
//! disconnects, graceful shutdown. Every server is killed when its test ends.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::server::Server;
use common::{fixture, phi3v, run};
use serde_json::{json, Value};

fn data_url(path: &str) -> String {
    let bytes = std::fs::read(path).unwrap();
    let mime = if path.ends_with(".jpg") { "image/jpeg" } else { "image/png" };
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn chart() -> String {
    format!("{}/../../assets/chart.png", env!("CARGO_MANIFEST_DIR"))
}

fn image_part(url: &str) -> Value {
    json!({"type": "image_url", "image_url": {"url": url}})
}

fn user(parts: Vec<Value>) -> Value {
    json!({"role": "user", "content": parts})
}

/// The error body's fields, checked for OpenAI's shape.
fn error(status: u16, body: &Value, expected: u16) -> (String, Option<String>, Option<String>) {
    assert_eq!(status, expected, "{body}");
    let e = &body["error"];
    assert!(e["type"].is_string() && e["message"].is_string(), "{body}");
    (e["message"].as_str().unwrap().to_string(), e["param"].as_str().map(String::from), e["code"].as_str().map(String::from))
}

#[test]
fn greedy_answer_and_usage_equal_ask_and_inspect() {
    let server = Server::start(&[]);
    let body = json!({
        "model": fixture("tiny-phi35v"),
        "messages": [{"role": "system", "content": "Be brief."},
                     user(vec![image_part(&data_url(&chart())), json!({"type": "text", "text": "Which quarter?"})])],
        "max_tokens": 12, "temperature": 0,
    });
    let (status, reply) = server.chat(&body);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["object"], "chat.completion");
    assert!(reply["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(reply["choices"][0]["message"]["role"], "assistant");

    // The same conversation through `ask --raw`: the template as the reference renders it.
    let raw = "<|system|>\nBe brief.<|end|>\n<|user|>\n<|image_1|>\nWhich quarter?<|end|>\n<|assistant|>\n";
    let model = fixture("tiny-phi35v");
    let out = run(&mut phi3v(&["ask", "--model", &model, "--raw", "--json", "-n", "12", "-i", &chart(), raw]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ask: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["choices"][0]["message"]["content"], ask["answer"]);
    assert_eq!(reply["choices"][0]["finish_reason"], ask["finish_reason"]);
    let stop_token = usize::from(ask["stop"].as_str().unwrap().starts_with("token"));
    assert_eq!(reply["usage"]["completion_tokens"], ask["tokens"].as_array().unwrap().len() + stop_token);
    assert_eq!(reply["usage"]["prompt_tokens"], ask["prompt_tokens"]);
    let total = reply["usage"]["prompt_tokens"].as_u64().unwrap() + reply["usage"]["completion_tokens"].as_u64().unwrap();
    assert_eq!(reply["usage"]["total_tokens"], total);

    // inspect counts the same prompt without loading weights.
    let out = run(&mut phi3v(&["inspect", "--model", &model, "--system", "Be brief.", "-i", &chart(), "Which quarter?"]));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("prompt")).unwrap();
    assert!(line.contains(&format!("{} tokens", reply["usage"]["prompt_tokens"])), "{line}");
}

#[test]
fn the_stream_has_openai_shape_and_equals_the_plain_answer() {
    let server = Server::start(&[]);
    let messages = json!([user(vec![json!({"type": "text", "text": "Describe"}), image_part(&data_url(&fixture("images/photo.jpg")))])]);
    let body = json!({"messages": messages, "max_completion_tokens": 20, "temperature": 0.9, "top_p": 0.9, "seed": 42});
    let (status, plain) = server.chat(&body);
    assert_eq!(status, 200, "{plain}");
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let events = server.stream(&streamed);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let id = &chunks[0]["id"];
    assert!(chunks.iter().all(|c| c["id"] == *id && c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks[1..].iter().all(|c| c["choices"].as_array().unwrap().iter().all(|ch| ch["delta"].get("role").is_none())));
    let finishing: Vec<&Value> = chunks.iter().filter(|c| !c["choices"][0]["finish_reason"].is_null()).collect();
    assert_eq!(finishing.len(), 1, "exactly one finish_reason");
    let (usage, choices) = chunks.split_last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    for field in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(usage["usage"][field], plain["usage"][field], "{field}");
    }
    // The same prompt again: all of it but its last token comes from the prefix cache.
    assert_eq!(plain["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let prompt = plain["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(usage["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64(), Some(prompt - 1));
    assert!(choices.iter().all(|c| c["usage"].is_null()));
    assert_eq!(choices.last().unwrap()["choices"][0]["finish_reason"], plain["choices"][0]["finish_reason"]);
    assert!(choices.last().unwrap()["choices"][0]["delta"].get("content").is_none());
    let text: String = choices.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, plain["choices"][0]["message"]["content"].as_str().unwrap());
    assert!(choices.len() > 3, "streamed in pieces: {events:?}");

    // Without include_usage there is no usage chunk and no usage field.
    let mut no_usage = streamed.clone();
    no_usage.as_object_mut().unwrap().remove("stream_options");
    let events = server.stream(&no_usage);
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(chunks.iter().all(|c| c.get("usage").is_none() && c["choices"].as_array().unwrap().len() == 1));
}

#[test]
fn fields_change_the_answer_as_documented() {
    let server = Server::start(&[]);
    let greedy = |extra: Value| {
        let mut body = json!({"messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 16, "temperature": 0});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (status, reply) = server.chat(&body);
        assert_eq!(status, 200, "{reply}");
        reply
    };
    let full = greedy(json!({}));
    let text = full["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert_eq!(full["choices"][0]["finish_reason"], "length");
    assert_eq!(full["usage"]["completion_tokens"], 16);
    // A stop string cuts the answer before it (string or list).
    let cut: String = text.chars().skip(text.chars().count() / 2).take(3).collect();
    for stop in [json!(cut), json!(["zzzz-never", cut])] {
        let reply = greedy(json!({"stop": stop}));
        assert_eq!(reply["choices"][0]["finish_reason"], "stop");
        assert_eq!(reply["choices"][0]["message"]["content"].as_str().unwrap(), &text[..text.find(&cut).unwrap()]);
    }
    // max_completion_tokens wins over max_tokens.
    assert_eq!(greedy(json!({"max_tokens": 3, "max_completion_tokens": 5}))["usage"]["completion_tokens"], 5);
    // Seeds: the same seed samples the same answer; sampling differs from greedy.
    let sampled = |seed: u64| greedy(json!({"temperature": 1.5, "seed": seed}))["choices"][0]["message"]["content"].clone();
    assert_eq!(sampled(7), sampled(7));
    assert_ne!(sampled(7), json!(text));
    // top_k (an extension) is applied: sampling from the one most likely token is greedy.
    assert_eq!(greedy(json!({"temperature": 1.5, "seed": 7, "top_k": 1}))["choices"][0]["message"]["content"], json!(text));
    let (status, body) = server.chat(&json!({"messages": [{"role": "user", "content": "hi"}], "repetition_penalty": 0}));
    assert_eq!(error(status, &body, 400).1.as_deref(), Some("repetition_penalty"));
    // num_crops, directly or as vLLM's mm_processor_kwargs: fewer crops, fewer prompt tokens.
    let image = json!([user(vec![image_part(&data_url(&chart())), json!({"type": "text", "text": "What?"})])]);
    let tokens = |extra: Value| {
        let mut body = json!({"messages": image, "max_tokens": 1});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        server.chat(&body).1["usage"]["prompt_tokens"].as_u64().unwrap()
    };
    let (four, one) = (tokens(json!({})), tokens(json!({"num_crops": 1})));
    assert_eq!(four - one, 757 - 313, "640×480: 757 image tokens at 4 crops, 313 at 1 (a 1×1 grid)");
    assert_eq!(tokens(json!({"mm_processor_kwargs": {"num_crops": 1}})), one);
    // The server's --num-crops is the default a request can override.
    let one_crop = Server::start(&["--num-crops", "1"]);
    let body = json!({"messages": image, "max_tokens": 1});
    assert_eq!(one_crop.chat(&body).1["usage"]["prompt_tokens"].as_u64(), Some(one));
    let mut four_crops = body.clone();
    four_crops["num_crops"] = json!(4);
    assert_eq!(one_crop.chat(&four_crops).1["usage"]["prompt_tokens"].as_u64(), Some(four));
    // Unknown fields are ignored; n = 1 is fine.
    assert_eq!(greedy(json!({"n": 1, "user": "me", "some_future_field": {"x": 1}}))["choices"][0]["message"]["content"], json!(text));
}

#[test]
fn images_of_every_kind_and_several_per_conversation() {
    let server = Server::start(&[]);
    let mut parts: Vec<Value> =
        ["images/rgba.png", "images/gray.png", "images/palette.png", "images/hopper.jpg"].iter().map(|p| image_part(&data_url(&fixture(p)))).collect();
    parts.push(json!({"type": "text", "text": "Compare these."}));
    let body = json!({"messages": [
        user(vec![image_part(&data_url(&chart())), json!({"type": "text", "text": "First"})]),
        {"role": "assistant", "content": "ok"},
        user(parts),
    ], "max_tokens": 2, "temperature": 0});
    let (status, reply) = server.chat(&body);
    assert_eq!(status, 200, "{reply}");
    // Five images numbered across the two user messages: a mistake there is a 400.
    assert!(reply["usage"]["prompt_tokens"].as_u64().unwrap() > 5 * 144);
}

#[test]
fn http_images_are_fetched_within_limits() {
    // A server on 127.0.0.1 with the chart, a redirect loop, a 404 and a large body.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let png = std::fs::read(chart()).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            let head = |status: &str, extra: &str, len: usize| format!("HTTP/1.1 {status}\r\n{extra}Content-Length: {len}\r\nConnection: close\r\n\r\n");
            let _ = match path.as_str() {
                "/chart.png" => stream.write_all(head("200 OK", "Content-Type: image/png\r\n", png.len()).as_bytes()).and_then(|()| stream.write_all(&png)),
                "/loop" => stream.write_all(head("302 Found", "Location: /loop\r\n", 0).as_bytes()),
                "/big" => stream.write_all(head("200 OK", "", 10 << 20).as_bytes()),
                _ => stream.write_all(head("404 Not Found", "", 0).as_bytes()),
            };
        }
    });
    let server = Server::start(&["--max-image-bytes", "1000000"]);
    let ask = |url: String| server.chat(&json!({"messages": [user(vec![image_part(&url)])], "max_tokens": 1}));
    let (status, reply) = ask(format!("{origin}/chart.png"));
    assert_eq!(status, 200, "{reply}");
    for (path, needle) in [("/loop", "redirect"), ("/missing", "404"), ("/big", "limit")] {
        let (status, body) = ask(format!("{origin}{path}"));
        let (message, param, _) = error(status, &body, 400);
        assert!(message.to_lowercase().contains(needle), "{path}: {message}");
        assert_eq!(param.as_deref(), Some("messages[0].content[0].image_url.url"));
    }
}

#[test]
fn local_files_only_inside_the_allowed_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    std::fs::create_dir(&media).unwrap();
    std::fs::copy(chart(), media.join("chart.png")).unwrap();
    std::fs::copy(chart(), tmp.path().join("secret.png")).unwrap();
    let ask = |server: &Server, path: String| server.chat(&json!({"messages": [user(vec![image_part(&format!("file://{path}"))])], "max_tokens": 1}));
    let closed = Server::start(&[]);
    let (status, body) = ask(&closed, media.join("chart.png").display().to_string());
    assert!(error(status, &body, 400).0.contains("--allowed-media-dir"));
    drop(closed);
    let open = Server::start(&["--allowed-media-dir", media.to_str().unwrap()]);
    assert_eq!(ask(&open, media.join("chart.png").display().to_string()).0, 200);
    for escape in [format!("{}/../secret.png", media.display()), tmp.path().join("secret.png").display().to_string(), "/etc/passwd".into()] {
        let (status, body) = ask(&open, escape.clone());
        assert!(error(status, &body, 400).0.contains("not inside"), "{escape}");
    }
}

#[test]
fn every_error_class_has_its_status_and_the_server_keeps_answering() {
    let server = Server::start(&["--max-body-bytes", "300000", "--max-images-per-request", "2", "--kv-budget", "2048tokens"]);
    let ok = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    let check = |status: u16, body: &Value, expected: u16, param: Option<&str>, needle: &str| {
        let (message, p, _) = error(status, body, expected);
        assert!(message.contains(needle), "{needle:?} in {message}");
        if param.is_some() {
            assert_eq!(p.as_deref(), param, "{body}");
        }
        assert_eq!(server.chat(&ok).0, 200, "still answering after {body}");
    };
    let (s, b) = server.post("/v1/chat/completions", "{not json", &[]);
    check(s, &b, 400, Some("body"), "invalid request body");
    let (s, b) = server.chat(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}));
    check(s, &b, 404, Some("model"), "gpt-4o");
    assert_eq!(b["error"]["code"], "model_not_found");
    let (s, b) = server.chat(&json!({"messages": [{"role": "user", "content": "hi"}], "n": 3}));
    check(s, &b, 400, Some("n"), "n is 3");
    let (s, b) = server.chat(&json!({"messages": [{"role": "user", "content": "hi"}], "frequency_penalty": 1}));
    check(s, &b, 400, Some("frequency_penalty"), "not supported");
    // Broken, truncated and non-image data.
    let mut png = std::fs::read(fixture("images/palette.png")).unwrap();
    let half = png.len() / 2;
    png[half..].fill(0);
    let broken = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&png));
    for (url, needle) in [(broken.as_str(), "cannot read image"), ("data:image/png;base64,aGVsbG8=", "format"), ("data:image/png;base64,@@@", "base64"), ("data:text/plain;base64,aGk=", "image/")] {
        let (s, b) = server.chat(&json!({"messages": [user(vec![image_part(url)])]}));
        check(s, &b, 400, Some("messages[0].content[0].image_url.url"), needle);
    }
    let (s, b) = server.chat(&json!({"messages": [user(vec![json!({"type": "image_url", "image_url": "data:image/png;base64,aGk="})])]}));
    check(s, &b, 400, Some("messages[0].content[0].image_url"), "object");
    let three = vec![image_part(&data_url(&fixture("images/tiny.png"))); 3];
    let (s, b) = server.chat(&json!({"messages": [user(three)]}));
    check(s, &b, 400, Some("messages"), "at most 2");
    // A prompt over the context (32768 positions for this checkpoint), with the numbers.
    let long = "hello ".repeat(33_000);
    let (s, b) = server.chat(&json!({"messages": [{"role": "user", "content": long}]}));
    check(s, &b, 400, Some("messages"), "32768");
    assert_eq!(b["error"]["code"], "context_length_exceeded");
    // One within the context but over --kv-budget.
    let (s, b) = server.chat(&json!({"messages": [{"role": "user", "content": "hello ".repeat(3_000)}]}));
    check(s, &b, 400, Some("messages"), "--kv-budget");
    assert_eq!(b["error"]["code"], "context_length_exceeded");
    // A body over --max-body-bytes.
    // The server answers as soon as the body passes the limit and closes the connection, so a
    // client still writing may see it closed instead: tried again then.
    let huge = json!({"messages": [{"role": "user", "content": "x".repeat(400_000)}]}).to_string();
    let over = (0..5).find_map(|_| match ureq::post(&server.url("/v1/chat/completions")).set("Content-Type", "application/json").send_string(&huge) {
        Err(ureq::Error::Status(code, r)) => Some((code, r.into_json::<Value>().unwrap())),
        Ok(r) => Some((r.status(), r.into_json::<Value>().unwrap())),
        Err(ureq::Error::Transport(_)) => None,
    });
    let (s, b) = over.expect("an answer to the oversized body");
    check(s, &b, 413, None, "--max-body-bytes");
    let (s, b) = server.post("/v1/embeddings", "{}", &[]);
    assert_eq!(error(s, &b, 404).0, "no such endpoint");
    // Every one counted by status.
    let (_, metrics) = server.get("/metrics");
    for status in ["200", "400", "404", "413"] {
        assert!(metrics.contains(&format!("path=\"/v1/chat/completions\",status=\"{status}\"")) || status == "404", "{status}: {metrics}");
    }
}

#[test]
fn api_key_models_health_and_metrics() {
    let server = Server::start(&["--api-key", "sekrit", "--served-model-name", "phi-3.5-vision"]);
    let body = json!({"model": "phi-3.5-vision", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).to_string();
    for auth in [None, Some("Bearer wrong"), Some("sekrit")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let (s, b) = server.post("/v1/chat/completions", &body, &headers);
        assert_eq!(error(s, &b, 401).2.as_deref(), Some("invalid_api_key"));
    }
    let (s, b) = server.post("/v1/chat/completions", &body, &[("Authorization", "Bearer sekrit")]);
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["model"], "phi-3.5-vision");
    let models = ureq::get(&server.url("/v1/models")).set("Authorization", "Bearer sekrit").call().unwrap().into_json::<Value>().unwrap();
    assert_eq!(models["data"][0]["id"], "phi-3.5-vision");
    assert_eq!(models["data"][0]["max_model_len"], 32768);
    assert_eq!(models["data"][0]["owned_by"], "phi3v");
    // Health and metrics need no key.
    assert_eq!(server.get("/health"), (200, r#"{"status":"ok"}"#.to_string()));
    // The same image after two different questions: the second is an image cache hit (the
    // prompts part before the image, so the prefix cache does not hold it).
    for question in ["What is this?", "And now?"] {
        let image = json!({"messages": [user(vec![json!({"type": "text", "text": question}), image_part(&data_url(&chart()))])], "max_tokens": 1});
        assert_eq!(server.post("/v1/chat/completions", &image.to_string(), &[("Authorization", "Bearer sekrit")]).0, 200);
    }
    assert_eq!(server.metric("phi3v_image_cache_hits_total"), 1.0);
    assert_eq!(server.metric("phi3v_image_cache_misses_total"), 1.0);
    assert_eq!(server.metric("phi3v_time_to_first_token_seconds_count"), 3.0);
    assert!(server.metric("phi3v_completion_tokens_total") >= 3.0);
    assert_eq!(server.metric("phi3v_preemptions_total"), 0.0);
    // Structured request logs.
    let logs = server.logs();
    let done: Vec<&Value> = logs.iter().filter(|l| l["message"] == "chat completion").collect();
    assert_eq!(done.len(), 3);
    assert!(done.iter().all(|l| l["prompt_tokens"].is_u64() && l["id"].as_str().unwrap().starts_with("chatcmpl-")));
    assert!(logs.iter().any(|l| l["message"] == "request" && l["status"] == 401));
}

/// Starts a streamed answer of `max_tokens` and returns the open connection after its first event.
fn start_stream(server: &Server, max_tokens: usize) -> BufReader<TcpStream> {
    let body = json!({"messages": [{"role": "user", "content": "Go on forever"}], "max_tokens": max_tokens, "stream": true, "temperature": 0});
    let mut reader = BufReader::new(server.send_raw(&body).unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "the stream was refused: {line}");
    while !line.starts_with("data: ") {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    reader
}

#[test]
fn a_client_that_goes_away_cancels_its_generation_and_a_full_queue_refuses() {
    let server = Server::start(&["--max-queue", "0", "--max-batch", "1"]);
    let connection = start_stream(&server, 100_000);
    assert_eq!(server.metric("phi3v_requests_running"), 1.0);
    // The one worker is busy and no request may wait.
    let (s, b) = server.chat(&json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}));
    assert!(error(s, &b, 429).0.contains("queue is full"));
    drop(connection);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metric("phi3v_requests_running") != 0.0 {
        assert!(Instant::now() < deadline, "the generation went on after its client left");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.chat(&json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})).0, 200);

    // The same for an answer that is not streamed: the client leaves while it is generated.
    let plain = server.send_raw(&json!({"messages": [{"role": "user", "content": "Go on forever"}], "max_tokens": 100_000})).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metric("phi3v_requests_running") != 1.0 {
        assert!(Instant::now() < deadline, "never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(plain);
    while server.metric("phi3v_requests_running") != 0.0 {
        assert!(Instant::now() < deadline, "the plain generation went on after its client left");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_finishes_running_requests_then_exits_cleanly() {
    let server = Server::start(&[]);
    let base = server.base.clone();
    let mut connection = start_stream(&server, 600);
    // The running request is finished: it ends by its own length, well within the default
    // 30 s shutdown timeout.
    let reader = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = connection.read_to_string(&mut rest);
        rest
    });
    let status = server.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit {status:?}");
    let rest = reader.join().unwrap();
    assert!(rest.contains("[DONE]") && rest.contains("finish_reason\":\"length"), "{}", &rest[rest.len().saturating_sub(500)..]);
    assert!(TcpStream::connect(base.strip_prefix("http://").unwrap()).is_err(), "no longer listening");
}

#[test]
fn shutdown_timeout_cuts_what_is_still_running() {
    let server = Server::start(&["--shutdown-timeout", "0.3"]);
    let mut connection = start_stream(&server, 100_000);
    let started = Instant::now();
    let status = server.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit {status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut rest = String::new();
    let _ = connection.read_to_string(&mut rest);
    assert!(rest.contains("[DONE]"), "the cut answer still ends properly: {rest:.300}");
}

#[test]
fn a_model_that_cannot_load_ends_serve_with_one_error_line() {
    let out = run(&mut phi3v(&["serve", "--model", "/no/such/checkpoint", "--port", "0"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap();
    assert!(last.starts_with("error: ") && last.contains("/no/such/checkpoint"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // A port that is taken is named.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run(&mut phi3v(&["serve", "--model", &fixture("tiny-phi35v"), "--port", &port]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{stderr}");
}
