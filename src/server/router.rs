//! `fn app(state) -> Router`: every route of the server, buildable in tests.

use axum::{
    extract::State,
    http::{header, StatusCode},
    middleware,
    response::IntoResponse,
    routing::{get, post},
    Json, Router,
};
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};

use super::{error, identity, metrics, pages, sse, state::AppState, ws};
use crate::app::{shell, App};

/// The app's routes, generated once per process. Generating them runs the app
/// with resource loading suppressed by a process-wide flag, and a resource
/// first polled meanwhile (a page rendering in another server of the same
/// process, as in the tests) would wait forever (leptos issue #4773).
fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// The full router: pages (SSR + hydration assets), `/ws`, the SSE transport
/// (`/api/chat`, `/api/conversations/{id}/events`), health, metrics.
pub fn app(state: AppState) -> Router {
    let routes = route_list();
    #[cfg_attr(not(feature = "embed-site"), allow(unused_mut))]
    let mut options = state.leptos_options.clone();
    #[cfg(feature = "embed-site")]
    let assets = {
        let assets = super::assets::Assets::load();
        tracing::info!(
            files = assets.len(),
            brotli = assets.brotli_len(),
            version = assets.version(),
            "serving the site embedded in the binary"
        );
        // Pages link the build's files under their version, which browsers
        // keep without asking again (super::assets).
        options.site_pkg_dir = assets.pkg_dir().into();
        assets
    };
    // The HTTP transport; each `error` frame it answers is counted.
    let api = Router::new()
        .route("/api/chat", post(sse::chat))
        .route("/api/conversations/{id}/events", get(sse::events))
        .route("/api/conversations/{id}/messages", get(sse::messages))
        .route("/api/hello", get(sse::hello))
        .route("/api/frame", post(sse::frame))
        .merge(super::companions::routes::routes())
        .merge(super::archive::routes::routes())
        .merge(super::accounts::routes::routes())
        .layer(middleware::map_response_with_state(
            state.clone(),
            error::count_refusals,
        ));
    // The server-rendered pages go out whole, with their length, and
    // compressed when large enough for it to pay (super::pages); only these
    // routes, never the socket, the event streams or the site's files
    // (those are compressed when built, super::assets).
    let pages = Router::new()
        .leptos_routes_with_context(
            &state,
            routes,
            {
                // Pages read the state to render a conversation's history.
                let state = state.clone();
                move || provide_context(state.clone())
            },
            {
                let options = options.clone();
                move || shell(options.clone())
            },
        )
        .route_layer(middleware::from_fn(pages::whole))
        .route_layer(pages::compression());
    Router::new()
        .route("/ws", get(ws::upgrade))
        .merge(api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/session", get(session))
        .route("/api/model-setup", get(model_setup))
        .merge(pages)
        .fallback(site_files(
            &state.leptos_options.site_root,
            #[cfg(feature = "embed-site")]
            assets,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            identity::issue_cookie,
        ))
        .with_state(state)
}

/// The compressed files (`.br`, `.gz`) of the site on disk (its root and
/// `pkg/`) that are older than the file beside them: a release build's (`cargo leptos build
/// --precompress`) left behind by a later build that rewrote the files
/// only. The file server sends a variant in place of its file to browsers
/// that accept it, so these would give a page a WASM that does not match
/// this server. Named at start, not removed: the site is the build's.
fn stale_variants(site_root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut stale: Vec<_> = [site_root.to_path_buf(), site_root.join("pkg")]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| {
            let is_variant = path
                .extension()
                .is_some_and(|ext| ext == "br" || ext == "gz");
            is_variant
                && match (modified(path), modified(&path.with_extension(""))) {
                    (Some(variant), Some(file)) => variant < file,
                    _ => false,
                }
        })
        .collect();
    stale.sort();
    stale
}

/// Files of the built site (WASM, JS, CSS, public files), else the app's
/// not-found page. From `LEPTOS_SITE_ROOT`; with the feature `embed-site`,
/// first from inside the binary ([`super::assets`]).
fn site_files(
    site_root: &str,
    #[cfg(feature = "embed-site")] assets: super::assets::Assets,
) -> impl Fn(
    axum::http::Uri,
    State<AppState>,
    axum::extract::Request,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = axum::response::Response> + Send>>
       + Clone
       + Send
       + 'static {
    let from_disk = leptos_axum::file_and_error_handler::<AppState, _>(shell);
    for path in stale_variants(std::path::Path::new(site_root)) {
        tracing::warn!(
            path = %path.display(),
            "a compressed file older than the file beside it: browsers would be sent it \
             instead of that file; remove it (scripts/build-site.sh does) or build with --precompress"
        );
    }
    #[cfg(feature = "embed-site")]
    {
        move |uri, state, request: axum::extract::Request| match assets
            .serve(&uri, request.headers())
        {
            Some(response) => Box::pin(std::future::ready(response)),
            None => from_disk(uri, state, request),
        }
    }
    #[cfg(not(feature = "embed-site"))]
    from_disk
}

/// The process is up.
async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Prometheus metrics in the text format 0.0.4 (see [`super::metrics`]).
///
/// Public on the listen address, like `/healthz`, with no authentication: it
/// carries counts and timings only, never message text, user ids or keys.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics.render(state.chat.running_replies());
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body)
}

/// Hands out the identity cookie (via the cookie middleware) to a page that
/// Tether did not serve itself: the client-only Trunk build.
async fn session(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    let known = state.identity.user_from_headers(&headers).is_some();
    Json(serde_json::json!({ "identified": known }))
}

/// Whether the model is set up yet ([`crate::protocol::ModelSetup`]): the
/// page follows a local model's installation with it.
async fn model_setup(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.chat.llm().setup().now())
}

/// How long `/readyz` waits for each of its checks.
const READY_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// How old a successful provider check `/readyz` may reuse.
const PROVIDER_CHECK_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// The database, the model provider and (cluster mode) the live state
/// answer: `200` when all do, else `503`, with what is wrong in the body
/// (never the API key). A model still being installed (`model_setup`) is
/// not ready and not asked. The instance's id is in the body too. A provider
/// that answered in the last 5 s is not asked again (load balancers check
/// several times a second).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let chat = &state.chat;
    // Each check answers within READY_CHECK_TIMEOUT, whatever hangs: a
    // load balancer's probe gives up after a few seconds.
    let bounded = |what: &'static str| {
        move |_| {
            format!(
                "{what} did not answer within {} s",
                READY_CHECK_TIMEOUT.as_secs()
            )
        }
    };
    let live = async {
        match chat.cluster() {
            Some(cluster) => Some(
                tokio::time::timeout(READY_CHECK_TIMEOUT, cluster.ping())
                    .await
                    .map_err(bounded("live state (Redis)"))
                    .and_then(|answer| answer.map_err(|e| e.to_string())),
            ),
            None => None,
        }
    };
    let setup = chat.llm().setup().now();
    let provider = async {
        if setup.is_ready() {
            Some(
                tokio::time::timeout(
                    READY_CHECK_TIMEOUT,
                    chat.llm().check_recent(PROVIDER_CHECK_AGE),
                )
                .await
                .map_err(bounded("the model provider"))
                .and_then(|answer| answer.map_err(|e| e.to_string())),
            )
        } else {
            None // Not asked while it is being installed.
        }
    };
    let database = async {
        tokio::time::timeout(READY_CHECK_TIMEOUT, chat.store().ping())
            .await
            .map_err(bounded("the database"))
            .and_then(|answer| answer.map_err(|e| e.to_string()))
    };
    let (database, provider, live) = tokio::join!(database, provider, live);
    let ready = database.is_ok()
        && matches!(provider, Some(Ok(_)))
        && live.as_ref().is_none_or(Result::is_ok);
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "instance": chat.instance(),
        "model_setup": setup,
        "live_state": match &live {
            None => serde_json::json!({ "ok": true, "kind": "this process" }),
            Some(Ok(())) => serde_json::json!({ "ok": true, "kind": "redis" }),
            Some(Err(e)) => serde_json::json!({ "ok": false, "kind": "redis", "error": e }),
        },
        "database": match &database {
            Ok(()) => serde_json::json!({ "ok": true }),
            Err(e) => serde_json::json!({ "ok": false, "error": e }),
        },
        "provider": match &provider {
            None => serde_json::json!({
                "ok": false,
                "base_url": chat.llm().base_url(),
                "model": chat.llm().model(),
                "error": "the model is still being set up (see model_setup)",
            }),
            Some(Ok(models)) => serde_json::json!({
                "ok": true,
                "base_url": chat.llm().base_url(),
                "model": chat.llm().model(),
                "models": models,
            }),
            Some(Err(e)) => serde_json::json!({
                "ok": false,
                "base_url": chat.llm().base_url(),
                "model": chat.llm().model(),
                "error": e,
            }),
        },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::stale_variants;

    #[test]
    fn a_compressed_file_older_than_its_file_is_named() {
        let site = tempfile::tempdir().expect("tempdir");
        let pkg = site.path().join("pkg");
        std::fs::create_dir(&pkg).expect("pkg");
        let write = |dir: &std::path::Path, name: &str, age_secs: u64| {
            let path = dir.join(name);
            std::fs::write(&path, name).expect("write");
            let file = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_modified(SystemTime::now() - Duration::from_secs(age_secs))
                .expect("mtime");
        };
        // A debug build's files, over a release build's variants.
        write(&pkg, "tether.wasm", 0);
        write(&pkg, "tether.wasm.br", 3_600);
        write(&pkg, "tether.wasm.gz", 3_600);
        // Written with their file (a release build): not stale.
        write(&pkg, "tether.css", 60);
        write(&pkg, "tether.css.br", 60);
        // A variant alone, and a missing directory: nothing to say.
        write(&pkg, "orphan.js.br", 3_600);
        // A public file at the root, rewritten after its variant.
        write(site.path(), "passkey.js.gz", 3_600);
        write(site.path(), "passkey.js", 0);
        assert_eq!(
            stale_variants(site.path()),
            [
                site.path().join("passkey.js.gz"),
                pkg.join("tether.wasm.br"),
                pkg.join("tether.wasm.gz")
            ]
        );
        assert!(stale_variants(&site.path().join("nowhere")).is_empty());
    }
}
