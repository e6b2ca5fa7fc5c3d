//! The site's files inside the binary (feature `embed-site`): the WASM, JS,
//! CSS and public files `cargo leptos build --release` wrote to
//! `target/site`, embedded at compile time, so the `tether` binary alone
//! serves the app from any directory (`scripts/package.sh`).
//!
//! Each file is served with its content type, an `ETag` (its SHA-256) with
//! `Cache-Control: no-cache` (the names are not content-hashed, so a browser
//! revalidates and gets `304` when nothing changed), and gzip when the
//! browser accepts it and it pays (text, JS, WASM): compressed once, at
//! start.

use std::{collections::HashMap, sync::Arc};

use axum::{
    body::Body,
    http::{header, HeaderMap, HeaderValue, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
// Relative to the crate root: where `cargo leptos build` writes the site.
#[folder = "target/site"]
struct Site;

/// One embedded file, ready to send.
#[derive(Debug)]
struct Asset {
    body: Vec<u8>,
    gzip: Option<Vec<u8>>,
    content_type: HeaderValue,
    etag: HeaderValue,
}

/// Every embedded file by path (`pkg/tether.wasm`); built once at start.
#[derive(Debug, Clone)]
pub struct Assets(Arc<HashMap<String, Asset>>);

impl Assets {
    /// Reads (and compresses) the embedded files.
    pub fn load() -> Self {
        let files = Site::iter()
            // TypeScript declarations wasm-bindgen writes beside the JS.
            .filter(|path| !path.ends_with(".d.ts"))
            .filter_map(|path| {
                let file = Site::get(&path)?;
                let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
                let content_type = HeaderValue::from_str(file.metadata.mimetype()).ok()?;
                let body = file.data.into_owned();
                let gzip = compressible(&content_type).then(|| gzip(&body)).flatten();
                Some((
                    path.into_owned(),
                    Asset {
                        body,
                        gzip,
                        content_type,
                        etag: HeaderValue::from_str(&etag).ok()?,
                    },
                ))
            })
            .collect();
        Self(Arc::new(files))
    }

    /// How many files are embedded (logged at start).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is embedded (the site was not built first).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The response for `uri`, if it names an embedded file.
    pub fn serve(&self, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
        let asset = self.0.get(uri.path().trim_start_matches('/'))?;
        let mut response = if headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|tag| tag == asset.etag)
        {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            match (&asset.gzip, accepts_gzip(headers)) {
                (Some(gzip), true) => {
                    let mut response = Body::from(gzip.clone()).into_response();
                    response
                        .headers_mut()
                        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    response
                }
                _ => Body::from(asset.body.clone()).into_response(),
            }
        };
        let out = response.headers_mut();
        out.insert(header::CONTENT_TYPE, asset.content_type.clone());
        out.insert(header::ETAG, asset.etag.clone());
        out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        Some(response)
    }
}

fn compressible(content_type: &HeaderValue) -> bool {
    let kind = content_type.to_str().unwrap_or_default();
    kind.starts_with("text/")
        || kind.contains("javascript")
        || kind.contains("json")
        || kind.contains("wasm")
        || kind.contains("svg")
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| coding.trim().split(';').next() == Some("gzip"))
}

/// `body` gzipped, when that makes it smaller.
fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(body).ok()?;
    let compressed = encoder.finish().ok()?;
    (compressed.len() < body.len()).then_some(compressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_offered_only_to_browsers_that_accept_it() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_gzip(&headers));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0.8"),
        );
        assert!(accepts_gzip(&headers));
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzipx"));
        assert!(!accepts_gzip(&headers));
    }

    #[test]
    fn text_and_wasm_compress_images_do_not() {
        for kind in [
            "text/css",
            "text/javascript",
            "application/wasm",
            "image/svg+xml",
        ] {
            assert!(compressible(&HeaderValue::from_static(kind)), "{kind}");
        }
        assert!(!compressible(&HeaderValue::from_static("image/png")));
        let text = b"hello hello hello hello hello hello hello hello".repeat(10);
        assert!(gzip(&text).is_some_and(|z| z.len() < text.len()));
        assert_eq!(gzip(b"x"), None, "not smaller");
    }
}
