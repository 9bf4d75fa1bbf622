//! Errors as OpenAI sends them: a status and `{"error": {"message", "type", "param", "code"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// One error response.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault (`messages[0].content[1].image_url.url`), when there is one.
    pub param: Option<String>,
    /// A machine-readable code where OpenAI has one (`model_not_found`, `context_length_exceeded`).
    pub code: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), param: None, code: None }
    }

    /// 400: something in the request is wrong.
    pub fn bad_request(message: impl Into<String>, param: impl Into<String>) -> Self {
        Self { param: Some(param.into()), ..Self::new(StatusCode::BAD_REQUEST, message) }
    }

    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, message)
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// OpenAI's `type` for the status.
    pub fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            s if s.is_server_error() => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// The JSON body (also sent as a `data:` event when a stream fails after it started).
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {
            "message": self.message, "type": self.kind(), "param": self.param, "code": self.code,
        }})
    }

    /// A library error met while preparing or running a request: what the user sent is a 400
    /// (images, tags, length, values), the rest is the server's fault.
    pub fn from_library(e: phi3v::Error, param: &str) -> Self {
        use phi3v::Error as E;
        match e {
            E::PromptTooLong { .. } | E::KvBudget { .. } => Self::bad_request(e.to_string(), "messages").with_code("context_length_exceeded"),
            E::Vision(_) | E::Prompt(_) | E::Fetch { .. } | E::EmptyPrompt | E::Params(_) => Self::bad_request(e.to_string(), param),
            E::Cancelled => Self::status(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            _ => Self::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
