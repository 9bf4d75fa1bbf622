//! `phi3v serve`: an OpenAI-compatible HTTP server for Phi-3-vision.
//!
//! - `POST /v1/chat/completions`: text and `image_url` parts, streamed (SSE) or not.
//! - `GET /v1/models`, `GET /v1/models/{id}`: the loaded model.
//! - `GET /health`: 200 once the weights are loaded, 503 before.
//! - `GET /metrics`: Prometheus text.
//!
//! The model runs on the library's [`phi3v::Engine`] (continuous batching on one worker thread,
//! a bounded queue); the async threads only speak HTTP. The server keeps no state between requests beyond the
//! engine's image cache, so replicas can sit behind any HTTP load balancer.

mod chat;
mod error;
mod media;
mod metrics;
mod request;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use phi3v::{Cancel, Engine, Pipeline};
use serde_json::json;

pub use error::ApiError;
pub use media::MediaPolicy;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    /// 0 picks a free port (the address is logged).
    pub port: u16,
    /// The model id clients name (`model` in requests and in `/v1/models`).
    pub model_name: String,
    /// Requests to `/v1/…` need `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// Batching and queueing of chat requests (requests past a full queue get 429).
    pub engine: phi3v::EngineOptions,
    /// Largest request body (images as data URLs included); larger ones are refused with 413.
    pub max_body_bytes: usize,
    /// Most images in one request.
    pub max_images: usize,
    /// Largest `num_crops` a request may ask for (each crop is a CLIP pass).
    pub max_crops: usize,
    /// `num_crops` for requests that do not say (`None`: the checkpoint's).
    pub default_crops: Option<usize>,
    pub media: MediaPolicy,
    /// After SIGTERM or Ctrl-C, how long running requests may take to finish before they are
    /// cut (their answers end with what was generated).
    pub shutdown_timeout: Duration,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
    #[error("cannot start the server: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Load(#[from] phi3v::Error),
}

/// Shared by every handler.
pub(crate) struct AppState {
    config: ServerConfig,
    engine: OnceLock<Engine>,
    loaded_at: AtomicU64,
    context_length: AtomicU64,
    metrics: metrics::Metrics,
    /// Cancel flags of the chat requests in flight, cut when shutdown runs out of time.
    inflight: Mutex<HashMap<u64, Cancel>>,
    next_request: AtomicU64,
}

impl AppState {
    /// The engine, or 503 while the weights are still loading.
    fn engine(&self) -> Result<&Engine, ApiError> {
        self.engine.get().ok_or_else(|| ApiError::status(StatusCode::SERVICE_UNAVAILABLE, "the model is still loading"))
    }

    fn inflight(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Cancel>> {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A chat request in flight: registered for shutdown, cancelled when dropped (the client went
/// away, or the answer is complete and cancelling is a no-op).
pub(crate) struct Inflight {
    state: Arc<AppState>,
    key: u64,
    cancel: Cancel,
}

impl Inflight {
    fn new(state: &Arc<AppState>, cancel: Cancel) -> Self {
        let key = state.next_request.fetch_add(1, Ordering::SeqCst);
        state.inflight().insert(key, cancel.clone());
        Self { state: state.clone(), key, cancel }
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.state.inflight().remove(&self.key);
    }
}

/// Seconds since the Unix epoch (OpenAI's `created`).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The routes, on a state whose engine is set once the model has loaded.
fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/chat/completions", post(chat::completions))
        .route("/models", get(models))
        .route("/models/{id}", get(model))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .nest("/v1", v1)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::status(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(middleware::from_fn_with_state(state.clone(), log))
        .with_state(state)
}

/// `Authorization: Bearer <key>`, compared in constant time.
async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    use subtle::ConstantTimeEq;
    let Some(key) = &state.config.api_key else { return next.run(request).await };
    let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if bool::from(given.trim().as_bytes().ct_eq(key.as_bytes())) => next.run(request).await,
        _ => ApiError::status(StatusCode::UNAUTHORIZED, "a valid API key is needed (Authorization: Bearer …)")
            .with_code("invalid_api_key")
            .into_response(),
    }
}

/// One log line and one metrics count per request.
async fn log(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let start = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    // Paths are counted by route, not by whatever a client typed.
    let route = match path.as_str() {
        "/v1/chat/completions" | "/v1/models" | "/health" | "/metrics" => path.as_str(),
        p if p.starts_with("/v1/models/") => "/v1/models/{id}",
        _ => "other",
    };
    state.metrics.request(route, status);
    tracing::info!(%method, path, status, duration_ms = start.elapsed().as_millis() as u64, "request");
    response
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    match state.engine.get() {
        Some(_) => Json(json!({"status": "ok"})).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "loading"}))).into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.metrics.render(state.engine.get());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

fn model_card(state: &AppState) -> serde_json::Value {
    json!({
        "id": state.config.model_name, "object": "model", "created": state.loaded_at.load(Ordering::SeqCst),
        "owned_by": "phi3v", "max_model_len": state.context_length.load(Ordering::SeqCst),
    })
}

async fn models(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    state.engine()?;
    Ok(Json(json!({"object": "list", "data": [model_card(&state)]})))
}

async fn model(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    state.engine()?;
    if id != state.config.model_name {
        return Err(ApiError::status(StatusCode::NOT_FOUND, format!("the model {id:?} does not exist")).with_code("model_not_found"));
    }
    Ok(Json(model_card(&state)))
}

/// Listens at once (`/health` answers 503 while loading), loads the model with `load` on a
/// thread of its own, serves until SIGTERM or Ctrl-C, then stops accepting and lets running
/// requests finish within [`ServerConfig::shutdown_timeout`].
pub fn serve(config: ServerConfig, load: impl FnOnce() -> phi3v::Result<Pipeline> + Send + 'static) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(ServeError::Runtime)?;
    runtime.block_on(run(config, load))
}

async fn run(config: ServerConfig, load: impl FnOnce() -> phi3v::Result<Pipeline> + Send + 'static) -> Result<(), ServeError> {
    let address = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&address).await.map_err(|source| ServeError::Bind { address: address.clone(), source })?;
    let local: SocketAddr = listener.local_addr().map_err(|source| ServeError::Bind { address, source })?;
    tracing::info!(address = %format!("http://{local}"), model = %config.model_name, "listening");
    let shutdown_timeout = config.shutdown_timeout;
    let engine_options = config.engine;
    let state = Arc::new(AppState {
        config,
        engine: OnceLock::new(),
        loaded_at: AtomicU64::new(0),
        context_length: AtomicU64::new(0),
        metrics: metrics::Metrics::default(),
        inflight: Mutex::new(HashMap::new()),
        next_request: AtomicU64::new(0),
    });

    let (failed, load_failed) = tokio::sync::oneshot::channel();
    let loading = state.clone();
    std::thread::spawn(move || match load() {
        Ok(pipeline) => {
            loading.context_length.store(pipeline.config().max_position_embeddings as u64, Ordering::SeqCst);
            loading.loaded_at.store(unix_now(), Ordering::SeqCst);
            let _ = loading.engine.set(Engine::new(pipeline, engine_options));
            tracing::info!("ready");
        }
        Err(e) => {
            let _ = failed.send(e);
        }
    });

    let stopping = Arc::new(tokio::sync::Notify::new());
    let (stop_signal, load_error) = (stopping.clone(), Arc::new(Mutex::new(None)));
    let load_error_slot = load_error.clone();
    let server = axum::serve(listener, router(state.clone())).with_graceful_shutdown(async move {
        tokio::select! {
            () = termination() => tracing::info!(timeout_s = shutdown_timeout.as_secs_f64(), "shutting down: finishing running requests"),
            Ok(e) = load_failed => { *load_error_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e); }
        }
        stop_signal.notify_one();
    });
    let server = std::future::IntoFuture::into_future(server);
    tokio::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        () = async { stopping.notified().await; tokio::time::sleep(shutdown_timeout).await } => {
            let cut: Vec<Cancel> = state.inflight().values().cloned().collect();
            tracing::warn!(requests = cut.len(), "shutdown timeout: cutting running requests");
            cut.iter().for_each(Cancel::cancel);
            // They end at their next token; give them a moment to send what they have.
            tokio::time::timeout(Duration::from_secs(5), &mut server).await.unwrap_or(Ok(()))
        }
    };
    if let Some(e) = load_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(ServeError::Load(e));
    }
    served.map_err(ServeError::Runtime)?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM or Ctrl-C.
async fn termination() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Logs as JSON lines on stderr (`RUST_LOG` filters; `info` by default).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().json().flatten_event(true).with_writer(std::io::stderr).with_env_filter(filter).try_init();
}
