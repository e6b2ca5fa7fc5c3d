//! How a server-rendered page leaves: whole, with its length, and
//! compressed only when that saves a round trip.
//!
//! Pages render in Leptos' `SsrMode::Async`: the whole document exists
//! before its first byte is sent, so [`whole`] holding it costs no time and
//! gives the response an exact `Content-Length`. With the length known,
//! [`compression`] leaves a page under [`COMPRESS_FROM`] as it is: a page
//! that small reaches the browser within TCP's first window either way, and
//! compressing it was most of a page's cost (a new visitor's 4.4 KB page:
//! ~0.5 M instructions to render, ~0.66 M more to gzip, most of that the
//! encoder's zeroed state). Larger pages (a conversation with its history
//! and sidebar: 81 KB as markup) go out as brotli (quality 4) or gzip.

use axum::{
    body::Body,
    extract::Request,
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use tower_http::compression::{
    predicate::{DefaultPredicate, Predicate, SizeAbove},
    CompressionLayer,
};

/// Pages of at least this many bytes are compressed. TCP's initial window
/// is ten segments (14,600 bytes on a 1,500-byte MTU), so a smaller page
/// arrives in the first round trip compressed or not.
pub const COMPRESS_FROM: u16 = 14 * 1024;

/// The most a page may hold. A page shows at most a window of one
/// conversation's messages and of the sidebar, so this is far above any
/// page; it bounds what one request can make the server hold.
pub const MAX_PAGE_BYTES: usize = 64 << 20;

/// Collects a page's body, so that it goes out with its length.
pub async fn whole(request: Request, next: Next) -> Response {
    let (parts, body) = next.run(request).await.into_parts();
    match axum::body::to_bytes(body, MAX_PAGE_BYTES).await {
        Ok(bytes) => Response::from_parts(parts, Body::from(bytes)),
        Err(error) => {
            tracing::error!(%error, limit = MAX_PAGE_BYTES, "a page could not be rendered whole");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// Brotli, else gzip, for pages from [`COMPRESS_FROM`] bytes, when the
/// browser accepts them.
pub fn compression() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new()
        .no_deflate()
        .no_zstd()
        .compress_when(DefaultPredicate::new().and(SizeAbove::new(COMPRESS_FROM)))
}
