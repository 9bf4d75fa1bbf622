//! `POST /v1/chat/completions`: check the request, load its images, queue it on the engine,
//! answer as one `chat.completion` or as a stream of `chat.completion.chunk` events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as Sse, Sse as SseResponse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use phi3v::{Cancel, ChatRequest, Event, Generation};
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::error::ApiError;
use crate::{request, AppState, Inflight};

/// What every response of one request shares.
struct Reply {
    state: Arc<AppState>,
    id: String,
    created: u64,
    started: Instant,
    first_token: Option<f64>,
    stream: bool,
    _inflight: Inflight,
}

pub async fn completions(State(state): State<Arc<AppState>>, body: Body) -> Result<Response, ApiError> {
    let started = Instant::now();
    let limit = state.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::status(StatusCode::PAYLOAD_TOO_LARGE, format!("the request body is over the limit of {limit} bytes (--max-body-bytes)"))
    })?;
    let request = request::parse(&bytes)?;
    let engine = state.engine()?;
    if let Some(model) = request.model.as_deref().filter(|m| *m != state.config.model_name) {
        let message = format!("the model {model:?} does not exist; this server has {:?}", state.config.model_name);
        return Err(ApiError { param: Some("model".into()), ..ApiError::status(StatusCode::NOT_FOUND, message) }.with_code("model_not_found"));
    }
    let prepared = request.prepare(state.config.max_images, state.config.max_crops)?;

    // Images and the prompt's length, off the async threads (downloads, decoding, tokenising).
    let crops = prepared.num_crops.or(state.config.default_crops);
    let (policy, refs, messages) = (state.config.media.clone(), prepared.images, prepared.messages);
    let pipeline = engine.pipeline().clone();
    let (images, messages, prompt_tokens) = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let mut images = Vec::new();
        for image in &refs {
            let input = policy.load(image)?;
            images.push(if let Some(n) = crops { input.with_num_crops(n) } else { input });
        }
        let tokens = pipeline.chat_prompt_tokens(&messages, &images).map_err(|e| ApiError::from_library(e, "messages"))?;
        Ok((images, messages, tokens))
    })
    .await
    .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;

    let cancel = Cancel::new();
    let mut params = prepared.params;
    params.cancel = Some(cancel.clone());
    let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
    let gone = cancel.clone();
    engine
        .submit(ChatRequest { messages, images, params }, move |event| {
            if sender.send(event).is_err() {
                gone.cancel(); // nobody is listening any more
            }
        })
        .map_err(|e| ApiError::status(StatusCode::TOO_MANY_REQUESTS, format!("{e}; try again later (--max-queue)")))?;
    let mut reply = Reply {
        id: format!("chatcmpl-{:024x}", rand::random::<u128>() >> 32),
        created: crate::unix_now(),
        started,
        first_token: None,
        stream: prepared.stream,
        _inflight: Inflight::new(&state, cancel),
        state,
    };
    // Nothing is sent before the first event, so a request that fails before its first token
    // (an image that does not decode, say) still gets its own status, streamed or not.
    let first = reply.next(&mut events).await;
    if let Event::Done(Err(e)) = first {
        return Err(ApiError::from_library(e, "messages"));
    }
    if prepared.stream {
        Ok(reply.stream(first, events, prepared.include_usage, prompt_tokens).into_response())
    } else {
        reply.complete(first, events).await.map(IntoResponse::into_response)
    }
}

impl Reply {
    /// The engine's next event (a closed channel, which a live worker never leaves, as an error).
    async fn next(&mut self, events: &mut UnboundedReceiver<Event>) -> Event {
        let event = events.recv().await.unwrap_or(Event::Done(Err(phi3v::Error::Internal("the engine stopped".into()))));
        if self.first_token.is_none() {
            let seconds = self.started.elapsed().as_secs_f64();
            self.first_token = Some(seconds);
            self.state.metrics.first_token(seconds);
        }
        event
    }

    async fn complete(mut self, mut event: Event, mut events: UnboundedReceiver<Event>) -> Result<Json<Value>, ApiError> {
        loop {
            match event {
                Event::Text(_) => event = self.next(&mut events).await,
                Event::Done(Err(e)) => return Err(ApiError::from_library(e, "messages")),
                Event::Done(Ok(g)) => {
                    self.finished(&g);
                    return Ok(Json(json!({
                        "id": self.id, "object": "chat.completion", "created": self.created, "model": self.state.config.model_name,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": g.text},
                                     "finish_reason": g.stop.finish_reason(), "logprobs": null}],
                        "usage": usage(&g),
                    })));
                }
            }
        }
    }

    fn stream(
        mut self,
        first: Event,
        mut events: UnboundedReceiver<Event>,
        include_usage: bool,
        prompt_tokens: usize,
    ) -> SseResponse<impl futures_core::Stream<Item = Result<Sse, Infallible>>> {
        let stream = async_stream::stream! {
            yield Ok(self.chunk(json!({"role": "assistant", "content": ""}), None, include_usage));
            let mut event = first;
            loop {
                match event {
                    Event::Text(text) => yield Ok(self.chunk(json!({"content": text}), None, include_usage)),
                    Event::Done(Ok(g)) => {
                        self.finished(&g);
                        yield Ok(self.chunk(json!({}), Some(g.stop.finish_reason()), include_usage));
                        if include_usage {
                            let mut last = self.envelope();
                            last["choices"] = json!([]);
                            last["usage"] = usage(&g);
                            yield Ok(Sse::default().data(last.to_string()));
                        }
                        break;
                    }
                    Event::Done(Err(e)) => {
                        tracing::warn!(id = %self.id, error = %e, prompt_tokens, "generation failed after the stream started");
                        yield Ok(Sse::default().data(ApiError::from_library(e, "messages").body().to_string()));
                        break;
                    }
                }
                event = self.next(&mut events).await;
            }
            yield Ok(Sse::default().data("[DONE]"));
        };
        SseResponse::new(stream)
    }

    fn envelope(&self) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.state.config.model_name})
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>, include_usage: bool) -> Sse {
        let mut chunk = self.envelope();
        chunk["choices"] = json!([{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": null}]);
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        Sse::default().data(chunk.to_string())
    }

    /// Metrics and the request's log line.
    fn finished(&self, g: &Generation) {
        self.state.metrics.generation(g);
        tracing::info!(
            id = %self.id,
            stream = self.stream,
            prompt_tokens = g.prompt_tokens,
            completion_tokens = completion_tokens(g),
            finish_reason = g.stop.finish_reason(),
            first_token_ms = (self.first_token.unwrap_or_default() * 1e3).round() as u64,
            duration_ms = self.started.elapsed().as_millis() as u64,
            "chat completion"
        );
    }
}

/// Generated tokens, a final stop token included (it was generated, and OpenAI and vLLM count it).
fn completion_tokens(g: &Generation) -> usize {
    g.tokens.len() + usize::from(matches!(g.stop, phi3v::StopReason::EndToken(_)))
}

fn usage(g: &Generation) -> Value {
    let completion = completion_tokens(g);
    json!({"prompt_tokens": g.prompt_tokens, "completion_tokens": completion, "total_tokens": g.prompt_tokens + completion,
           "prompt_tokens_details": {"cached_tokens": g.cached_tokens}})
}
