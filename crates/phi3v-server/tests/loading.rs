//! The server before and without a model: `/health` and the API answer 503 while the weights
//! load (the socket is bound first), and a model that fails to load ends `serve` with its error.
//! The servers listen on 127.0.0.1 and end with the test process.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use phi3v::{ImageLimits, Pipeline, PipelineOptions};
use phi3v_server::{serve, MediaPolicy, ServeError, ServerConfig};

fn config(port: u16) -> ServerConfig {
    ServerConfig {
        host: "127.0.0.1".into(),
        port,
        model_name: "tiny".into(),
        api_key: None,
        engine: phi3v::EngineOptions::default(),
        max_body_bytes: 1 << 20,
        max_images: 2,
        max_crops: 4,
        default_crops: None,
        media: MediaPolicy { limits: ImageLimits::default(), fetch_timeout: Duration::from_secs(5), allowed_dir: None },
        shutdown_timeout: Duration::from_secs(5),
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn status(result: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match result {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn everything_answers_503_until_the_weights_are_in() {
    let port = free_port();
    let (release, wait) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        serve(config(port), move || {
            wait.recv().ok();
            Pipeline::load(&phi3v_fixtures::path("tiny-phi35v"), &PipelineOptions::default())
        })
    });
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "never listened");
        std::thread::sleep(Duration::from_millis(10));
    }
    let chat = || status(ureq::post(&url("/v1/chat/completions")).send_string(r#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}"#));
    assert_eq!(status(ureq::get(&url("/health")).call()), (503, r#"{"status":"loading"}"#.into()));
    let (code, body) = chat();
    assert_eq!(code, 503);
    assert!(body.contains("still loading") && body.contains("server_error"), "{body}");
    assert_eq!(status(ureq::get(&url("/v1/models")).call()).0, 503);
    release.send(()).unwrap();
    while status(ureq::get(&url("/health")).call()).0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(chat().0, 200);
}

#[test]
fn a_model_that_fails_to_load_ends_the_server_with_its_error() {
    let result = serve(config(free_port()), || Pipeline::load("/no/such/checkpoint".as_ref(), &PipelineOptions::default()));
    match result {
        Err(ServeError::Load(e)) => assert!(e.to_string().contains("/no/such/checkpoint"), "{e}"),
        other => panic!("{other:?}"),
    }
}
