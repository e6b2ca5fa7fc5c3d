//! The site's files inside the binary (feature `embed-site`): the WASM, JS,
//! CSS and public files `cargo leptos build --release` wrote to
//! `target/site`, embedded at compile time, so the `tether` binary alone
//! serves the app from any directory (`scripts/package.sh`).
//!
//! The build's own files (`pkg/`: the WASM, its JS and the CSS) are also
//! served under a versioned path, `pkg/<version>/…`, where the version is a
//! hash of all of them ([`Assets::version`]); pages link that path
//! ([`Assets::pkg_dir`], set as the page's `site_pkg_dir`), and it is sent
//! `Cache-Control: public, max-age=31536000, immutable`: a returning
//! browser uses its copy without asking. A new build is a new version, so a
//! new path; an older version's path is not found. The files everyone
//! links by name (`/pkg/tether.css`, public files) keep their path and are
//! served with an `ETag` (their SHA-256) and `Cache-Control: no-cache` (a
//! browser revalidates and gets `304` when nothing changed).
//!
//! Each file is served with its content type and compressed when the
//! browser accepts it and it pays (text, JS, WASM): brotli where the build
//! left a `.br` beside the file (`cargo leptos build --release
//! --precompress`, quality 11: the release WASM is a quarter smaller than
//! with gzip -9), else gzip, compressed once, at start, at the best level
//! (or the build's `.gz` if that is smaller). The `.br` and `.gz` files are
//! variants, not paths of their own.

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use axum::{
    body::Body,
    http::{header, HeaderMap, HeaderValue, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
// Relative to the crate root: where `cargo leptos build` writes the site.
#[folder = "target/site"]
struct Site;

/// One embedded file, ready to send: `Bytes`, so each response shares the
/// file instead of copying it.
#[derive(Debug)]
struct Asset {
    body: Bytes,
    gzip: Option<Bytes>,
    brotli: Option<Bytes>,
    content_type: HeaderValue,
    etag: HeaderValue,
}

/// A file of the built site, as embedded.
struct File {
    /// Relative to the site's root: `pkg/tether.wasm`.
    path: String,
    body: Vec<u8>,
    content_type: HeaderValue,
    sha256: [u8; 32],
}

/// A content coding the server can answer with, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Brotli,
    Gzip,
}

impl Coding {
    const BEST_FIRST: [Coding; 2] = [Coding::Brotli, Coding::Gzip];

    /// Its name in `Accept-Encoding` and `Content-Encoding`.
    fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The suffix of its precompressed file (`tether.wasm.br`).
    fn suffix(self) -> &'static str {
        match self {
            Coding::Brotli => ".br",
            Coding::Gzip => ".gz",
        }
    }
}

/// Every embedded file by path (`pkg/tether.wasm`), and the version of the
/// `pkg/` files; built once at start.
#[derive(Debug, Clone)]
pub struct Assets {
    files: Arc<HashMap<String, Asset>>,
    version: Arc<str>,
}

/// How long a browser may keep a file of a versioned path: a year, without
/// asking again (its path changes with its content).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

impl Assets {
    /// Reads the embedded files (and gzips those the build did not).
    pub fn load() -> Self {
        Self::from_files(Site::iter().filter_map(|path| {
            let file = Site::get(&path)?;
            Some(File {
                content_type: HeaderValue::from_str(file.metadata.mimetype()).ok()?,
                sha256: file.metadata.sha256_hash(),
                body: file.data.into_owned(),
                path: path.into_owned(),
            })
        }))
    }

    /// The site from its files. A `.br` or `.gz` beside a file is that
    /// file's precompressed variant, kept when it is smaller.
    fn from_files(files: impl IntoIterator<Item = File>) -> Self {
        let mut all: HashMap<String, File> = files
            .into_iter()
            // TypeScript declarations wasm-bindgen writes beside the JS.
            .filter(|file| !file.path.ends_with(".d.ts"))
            .map(|file| (file.path.clone(), file))
            .collect();
        // `tether.wasm.br` beside `tether.wasm`; a `.br` alone is a file.
        let is_variant = |path: &str| {
            Coding::BEST_FIRST.iter().any(|coding| {
                path.strip_suffix(coding.suffix())
                    .is_some_and(|original| all.contains_key(original))
            })
        };
        let variants: Vec<String> = all
            .keys()
            .filter(|path| is_variant(path))
            .cloned()
            .collect();
        let mut precompressed: HashMap<String, Vec<u8>> = variants
            .into_iter()
            .filter_map(|path| Some((path.clone(), all.remove(&path)?.body)))
            .collect();
        let version = version_of(all.values());
        let files = all
            .into_iter()
            .filter_map(|(path, file)| {
                let File {
                    body,
                    content_type,
                    sha256,
                    ..
                } = file;
                let etag = format!("\"{}\"", hex::encode(sha256));
                let smaller = |variant: Option<Vec<u8>>| variant.filter(|v| v.len() < body.len());
                let mut variant = |coding: Coding| {
                    smaller(precompressed.remove(&format!("{path}{}", coding.suffix())))
                };
                let brotli = variant(Coding::Brotli);
                // The smaller of the build's and our own: cargo leptos'
                // gzip is not the best level (the release WASM: 566 KB
                // against 483 KB).
                let gzip = [
                    variant(Coding::Gzip),
                    compressible(&content_type).then(|| gzip(&body)).flatten(),
                ]
                .into_iter()
                .flatten()
                .min_by_key(Vec::len);
                Some((
                    path,
                    Asset {
                        etag: HeaderValue::from_str(&etag).ok()?,
                        body: body.into(),
                        gzip: gzip.map(Bytes::from),
                        brotli: brotli.map(Bytes::from),
                        content_type,
                    },
                ))
            })
            .collect();
        Self {
            files: Arc::new(files),
            version: version.into(),
        }
    }

    /// A hash of the `pkg/` files (their paths and contents): 16 hex digits.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Where pages link the build's files: `pkg/<version>`.
    pub fn pkg_dir(&self) -> String {
        format!("pkg/{}", self.version)
    }

    /// How many files are embedded (logged at start).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// How many of them have a brotli variant (logged at start).
    pub fn brotli_len(&self) -> usize {
        self.files.values().filter(|a| a.brotli.is_some()).count()
    }

    /// Whether nothing is embedded (the site was not built first).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The response for `uri`, if it names an embedded file, under its own
    /// path or this version's.
    pub fn serve(&self, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
        let path = uri.path().trim_start_matches('/');
        let (path, cache): (Cow<str>, _) = match path
            .strip_prefix("pkg/")
            .and_then(|rest| rest.strip_prefix(&*self.version))
            .and_then(|rest| rest.strip_prefix('/'))
        {
            Some(file) => (format!("pkg/{file}").into(), IMMUTABLE),
            None => (path.into(), "no-cache"),
        };
        let asset = self.files.get(&*path)?;
        let mut response = if headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|tag| tag == asset.etag)
        {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let chosen = Coding::BEST_FIRST.into_iter().find_map(|coding| {
                let body = match coding {
                    Coding::Brotli => asset.brotli.as_ref(),
                    Coding::Gzip => asset.gzip.as_ref(),
                }?;
                accepts(headers, coding).then_some((coding, body))
            });
            match chosen {
                Some((coding, body)) => {
                    let mut response = Body::from(body.clone()).into_response();
                    response.headers_mut().insert(
                        header::CONTENT_ENCODING,
                        HeaderValue::from_static(coding.token()),
                    );
                    response
                }
                None => Body::from(asset.body.clone()).into_response(),
            }
        };
        let out = response.headers_mut();
        out.insert(header::CONTENT_TYPE, asset.content_type.clone());
        out.insert(header::ETAG, asset.etag.clone());
        out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        Some(response)
    }
}

/// 16 hex digits of the SHA-256 of the `pkg/` files' paths and hashes, in
/// path order.
fn version_of<'a>(files: impl Iterator<Item = &'a File>) -> String {
    use sha2::Digest as _;
    let mut pkg: Vec<&File> = files.filter(|f| f.path.starts_with("pkg/")).collect();
    pkg.sort_by(|a, b| a.path.cmp(&b.path));
    let mut hash = sha2::Sha256::new();
    for file in pkg {
        hash.update(file.path.as_bytes());
        hash.update([0]);
        hash.update(file.sha256);
    }
    hex::encode(&hash.finalize()[..8])
}

fn compressible(content_type: &HeaderValue) -> bool {
    let kind = content_type.to_str().unwrap_or_default();
    kind.starts_with("text/")
        || kind.contains("javascript")
        || kind.contains("json")
        || kind.contains("wasm")
        || kind.contains("svg")
}

/// Whether `Accept-Encoding` names `coding` with a weight above zero
/// (`br;q=0` refuses it).
fn accepts(headers: &HeaderMap, coding: Coding) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            parts
                .next()
                .is_some_and(|name| name.eq_ignore_ascii_case(coding.token()))
                && parts.all(|param| {
                    param
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        .is_none_or(|q| q > 0.0)
                })
        })
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

    fn accept(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn a_coding_is_offered_only_to_browsers_that_accept_it() {
        let none = HeaderMap::new();
        assert!(!accepts(&none, Coding::Gzip));
        assert!(!accepts(&none, Coding::Brotli));
        let both = accept("br, gzip;q=0.8");
        assert!(accepts(&both, Coding::Gzip));
        assert!(accepts(&both, Coding::Brotli));
        assert!(!accepts(&accept("gzipx, brotli"), Coding::Gzip));
        assert!(!accepts(&accept("gzipx, brotli"), Coding::Brotli));
        assert!(accepts(&accept("GZIP"), Coding::Gzip));
        // A weight of zero refuses it.
        assert!(!accepts(&accept("br;q=0, gzip"), Coding::Brotli));
        assert!(!accepts(&accept("br; q=0.0"), Coding::Brotli));
        assert!(accepts(&accept("br; q=0.1"), Coding::Brotli));
    }

    fn file(path: &str, body: &[u8], kind: &'static str) -> File {
        File {
            path: path.to_owned(),
            body: body.to_vec(),
            content_type: HeaderValue::from_static(kind),
            sha256: [7; 32],
        }
    }

    async fn fetch(
        assets: &Assets,
        path: &str,
        encoding: &'static str,
    ) -> (Option<String>, Vec<u8>) {
        let uri: Uri = path.parse().expect("a path");
        let response = assets
            .serve(&uri, &accept(encoding))
            .expect("an embedded file");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::VARY], "accept-encoding");
        let coding = response
            .headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().expect("ascii").to_owned());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the body");
        (coding, body.to_vec())
    }

    #[tokio::test]
    async fn the_builds_brotli_is_served_first_then_gzip_then_the_file() {
        let wasm = b"wasm wasm wasm wasm wasm wasm wasm wasm wasm wasm wasm".repeat(20);
        let assets = Assets::from_files([
            file("pkg/tether.wasm", &wasm, "application/wasm"),
            file("pkg/tether.wasm.br", b"BROTLI", "application/octet-stream"),
            file("pkg/tether.wasm.gz", b"GZIP", "application/gzip"),
            // Only a variant of a file that is there.
            file("pkg/orphan.js.br", b"ORPHAN", "application/octet-stream"),
        ]);
        assert_eq!(assets.len(), 2, "the variants are not paths of their own");
        assert_eq!(assets.brotli_len(), 1);
        let path = "/pkg/tether.wasm";
        assert_eq!(
            fetch(&assets, path, "gzip, deflate, br").await,
            (Some("br".into()), b"BROTLI".to_vec())
        );
        assert_eq!(
            fetch(&assets, path, "gzip").await,
            (Some("gzip".into()), b"GZIP".to_vec())
        );
        assert_eq!(
            fetch(&assets, path, "br;q=0, gzip").await,
            (Some("gzip".into()), b"GZIP".to_vec())
        );
        assert_eq!(fetch(&assets, path, "identity").await, (None, wasm.clone()));
        assert!(assets
            .serve(
                &"/pkg/tether.wasm.br".parse().expect("a path"),
                &HeaderMap::new()
            )
            .is_none());
        assert_eq!(
            fetch(&assets, "/pkg/orphan.js.br", "br").await,
            (None, b"ORPHAN".to_vec())
        );
    }

    #[tokio::test]
    async fn gzip_is_made_at_start_unless_the_builds_is_smaller_and_a_larger_variant_is_dropped() {
        let css = b".a { color: red } .b { color: red } .c { color: red }".repeat(20);
        let png = b"\x89PNG not really".to_vec();
        let assets = Assets::from_files([
            file("pkg/tether.css", &css, "text/css"),
            // Smaller than the file, larger than our own gzip: ours is sent.
            file("pkg/tether.css.gz", &[b'z'; 500], "application/gzip"),
            file("logo.png", &png, "image/png"),
            file("logo.png.br", &png.repeat(3), "application/octet-stream"),
        ]);
        assert_eq!(
            assets.brotli_len(),
            0,
            "a variant larger than its file is no gain"
        );
        let (coding, body) = fetch(&assets, "/pkg/tether.css", "gzip, br").await;
        assert_eq!(coding.as_deref(), Some("gzip"));
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut unzipped)
            .expect("gzip");
        assert_eq!(unzipped, css);
        assert_eq!(fetch(&assets, "/logo.png", "gzip, br").await, (None, png));
    }

    #[test]
    fn an_unchanged_file_is_not_sent_again() {
        let assets = Assets::from_files([file("pkg/tether.js", b"let x = 1;", "text/javascript")]);
        let mut headers = accept("br");
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"{}\"", hex::encode([7u8; 32]))).expect("ascii"),
        );
        let response = assets
            .serve(&"/pkg/tether.js".parse().expect("a path"), &headers)
            .expect("a file");
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn the_builds_files_under_their_version_are_kept_for_a_year() {
        let js = b"import init from './snippets/x.js';".to_vec();
        let assets = Assets::from_files([
            file("pkg/tether.js", &js, "text/javascript"),
            file("pkg/snippets/x.js", b"export {}", "text/javascript"),
            file("favicon.ico", b"ico", "image/x-icon"),
        ]);
        let version = assets.version().to_owned();
        assert_eq!(version.len(), 16);
        assert!(version.bytes().all(|b| b.is_ascii_hexdigit()), "{version}");
        assert_eq!(assets.pkg_dir(), format!("pkg/{version}"));
        let cache = |path: &str| {
            let response = assets
                .serve(&path.parse().expect("a path"), &HeaderMap::new())
                .expect("a file");
            response.headers()[header::CACHE_CONTROL]
                .to_str()
                .expect("ascii")
                .to_owned()
        };
        let versioned = format!("/pkg/{version}/tether.js");
        assert_eq!(cache(&versioned), "public, max-age=31536000, immutable");
        assert_eq!(fetch(&assets, &versioned, "identity").await, (None, js));
        // What the glue imports beside itself resolves under the version too.
        assert_eq!(
            cache(&format!("/pkg/{version}/snippets/x.js")),
            "public, max-age=31536000, immutable"
        );
        // Under their own names, revalidated each time.
        assert_eq!(cache("/pkg/tether.js"), "no-cache");
        assert_eq!(cache("/favicon.ico"), "no-cache");
        // Another version's path is not this build's: not found.
        for path in [
            "/pkg/0123456789abcdef/tether.js",
            &format!("/pkg/{version}tether.js"),
            &format!("/{version}/tether.js"),
        ] {
            assert!(
                assets
                    .serve(&path.parse().expect("a path"), &HeaderMap::new())
                    .is_none(),
                "{path}"
            );
        }
    }

    #[test]
    fn the_version_changes_with_any_file_of_the_build_and_only_with_those() {
        let with = |js: u8, public: u8| {
            let mut script = file("pkg/tether.js", b"js", "text/javascript");
            script.sha256 = [js; 32];
            let mut icon = file("favicon.ico", b"ico", "image/x-icon");
            icon.sha256 = [public; 32];
            Assets::from_files([script, icon]).version().to_owned()
        };
        assert_eq!(with(1, 1), with(1, 1), "the same build, the same version");
        assert_ne!(with(1, 1), with(2, 1), "a new WASM, JS or CSS: a new path");
        assert_eq!(with(1, 1), with(1, 2), "public files keep their own path");
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
