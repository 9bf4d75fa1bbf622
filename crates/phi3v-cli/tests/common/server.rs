//! A `phi3v serve` child process on 127.0.0.1 for tests and the load bench: started on a free
//! port, asked over HTTP, killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{fixture, phi3v};

/// A running `phi3v serve` and the log lines it has written so far.
pub struct Server {
    pub child: Child,
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// The tiny checkpoint with `extra` flags.
    pub fn start(extra: &[&str]) -> Server {
        let model = fixture("tiny-phi35v");
        let mut args = vec!["serve", "--model", &model, "--port", "0"];
        args.extend_from_slice(extra);
        Self::spawn(phi3v(&args))
    }

    /// `phi3v serve ARGS --port 0` run from `dir` with `hf_home` as the Hugging Face cache.
    pub fn start_in(args: &[&str], dir: &Path, hf_home: &Path) -> Server {
        let mut cmd = phi3v(&[&["serve"], args, &["--port", "0"]].concat());
        cmd.current_dir(dir).env("HF_HOME", hf_home);
        Self::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start phi3v serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (sink, stderr) = (log.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let base = loop {
            let found = log.lock().unwrap().iter().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["message"] == "listening").then(|| v["address"].as_str().unwrap().to_string())
            });
            if let Some(base) = found {
                break base;
            }
            assert!(Instant::now() < deadline, "no address logged: {:?}", log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        };
        let server = Server { child, base, log };
        while server.get("/health").0 != 200 {
            assert!(Instant::now() < deadline, "not ready: {:?}", server.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        answer(ureq::get(&self.url(path)).timeout(Duration::from_secs(30)).call())
    }

    /// A chat completion (not streamed): status and body.
    pub fn chat(&self, body: &Value) -> (u16, Value) {
        self.post("/v1/chat/completions", &body.to_string(), &[])
    }

    pub fn post(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = ureq::post(&self.url(path)).timeout(Duration::from_secs(60)).set("Content-Type", "application/json");
        for (k, v) in headers {
            request = request.set(k, v);
        }
        let (status, text) = answer(request.send_string(body));
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
    }

    /// A streamed chat completion: the `data:` payloads in order (`[DONE]` included).
    pub fn stream(&self, body: &Value) -> Vec<String> {
        let response = ureq::post(&self.url("/v1/chat/completions")).timeout(Duration::from_secs(60)).send_json(body.clone()).expect("stream");
        assert_eq!(response.header("Content-Type"), Some("text/event-stream"));
        let mut text = String::new();
        response.into_reader().read_to_string(&mut text).unwrap();
        assert!(text.ends_with("\n\n"), "{text:?}");
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {e:?}")).to_string())
            .collect()
    }

    /// A chat completion written by hand on a connection of its own, left open for the caller
    /// to read or drop (a client that goes away).
    pub fn send_raw(&self, body: &Value) -> std::io::Result<TcpStream> {
        let address = self.base.strip_prefix("http://").expect("an http address");
        let mut stream = TcpStream::connect(address)?;
        let body = body.to_string();
        let head = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        Ok(stream)
    }

    pub fn logs(&self) -> Vec<Value> {
        self.log.lock().unwrap().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    pub fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or_else(|| panic!("{name} in {text}"))
    }

    /// SIGTERM, then the exit status (within `limit`).
    pub fn terminate(mut self, limit: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running {limit:?} after SIGTERM: {:?}", self.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn answer(result: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match result {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

