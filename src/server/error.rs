//! Errors at the HTTP edge, the axum way: one [`ApiError`] that every
//! handler returns with `?`, and one `IntoResponse` that writes it.
//!
//! * An access refusal (`Origin`, identity) is a status with a plain-text
//!   reason, as on the WebSocket upgrade.
//! * Everything else is the protocol's `error` frame as a JSON body, with
//!   the status its code maps to here (and `Retry-After` when the frame has
//!   `retry_after_ms`): a chat refusal, a crowded server, a bad body.
//!
//! Each `error` frame is counted in `/metrics` by [`count_refusals`], a
//! layer reading the code the response carries, so no handler counts.

use std::sync::Arc;

use axum::{
    body::{to_bytes, Body},
    extract::{FromRef, FromRequest, Request, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;

use super::{
    access::{admission::Crowded, Refusal},
    chat::{ChatError, Refused},
    config::Config,
    metrics::Metrics,
    ws::decode::parse_reason,
};
use crate::protocol::{ErrorCode, ServerFrame};

/// Why an HTTP request was refused.
#[derive(Debug)]
pub enum ApiError {
    /// `Origin` or identity: `403`/`401` with a plain-text reason.
    Access(Refusal),
    /// An `error` frame as the JSON body, with this status.
    Frame {
        status: StatusCode,
        frame: ServerFrame,
    },
}

impl ApiError {
    fn frame(status: StatusCode, frame: ServerFrame) -> Self {
        ApiError::Frame { status, frame }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        ApiError::Access(refusal)
    }
}

impl From<Crowded> for ApiError {
    fn from(crowded: Crowded) -> Self {
        let status = match crowded {
            Crowded::Server => StatusCode::SERVICE_UNAVAILABLE,
            Crowded::User { .. } | Crowded::Address { .. } => StatusCode::TOO_MANY_REQUESTS,
        };
        ApiError::frame(status, crowded.to_frame())
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        ApiError::frame(status_of(&refused.error), refused.to_frame())
    }
}

/// The HTTP status of a refusal of the chat core.
fn status_of(err: &ChatError) -> StatusCode {
    match err {
        ChatError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ChatError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ChatError::NotFound => StatusCode::NOT_FOUND,
        ChatError::RateLimited { .. } | ChatError::AddressRateLimited { .. } => {
            StatusCode::TOO_MANY_REQUESTS
        }
        ChatError::Busy => StatusCode::CONFLICT,
        ChatError::QuotaExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
        ChatError::ShuttingDown | ChatError::Unavailable(_) | ChatError::LiveUnavailable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ChatError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The code of the `error` frame a response carries, for [`count_refusals`].
#[derive(Clone, Copy, Debug)]
struct RefusedCode(ErrorCode);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, frame) = match self {
            ApiError::Access(refusal) => return refusal.into_response(),
            ApiError::Frame { status, frame } => (status, frame),
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            frame.to_json(),
        )
            .into_response();
        if let ServerFrame::Error {
            code,
            retry_after_ms,
            ..
        } = &frame
        {
            response.extensions_mut().insert(RefusedCode(*code));
            if let Some(ms) = retry_after_ms {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(ms.div_ceil(1000)));
            }
        }
        response
    }
}

/// Layer (`map_response`): counts the `error` frame of a refused request.
pub async fn count_refusals(State(metrics): State<Arc<Metrics>>, response: Response) -> Response {
    if let Some(RefusedCode(code)) = response.extensions().get() {
        metrics.refused(*code);
    }
    response
}

/// A JSON request body: `Content-Type: application/json`, at most
/// `MAX_FRAME_BYTES`, parsed as `T`; each failure an `error` frame.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    Arc<Config>: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::frame(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ServerFrame::error(
                    ErrorCode::BadRequest,
                    "the body must be JSON (Content-Type: application/json)",
                ),
            ));
        }
        let max = Arc::<Config>::from_ref(state).limits.max_frame_bytes;
        let body: Body = request.into_body();
        // Over the limit (or a body that broke off): refused without reading on.
        let Ok(bytes) = to_bytes(body, max).await else {
            return Err(ApiError::frame(
                StatusCode::PAYLOAD_TOO_LARGE,
                ServerFrame::error(
                    ErrorCode::TooLarge,
                    format!("the body is over the limit of {max} bytes"),
                ),
            ));
        };
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|err| {
            ApiError::frame(
                StatusCode::BAD_REQUEST,
                ServerFrame::error(
                    ErrorCode::BadRequest,
                    format!("invalid body: {}", parse_reason(&err)),
                ),
            )
        })
    }
}
