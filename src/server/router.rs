//! `fn app(state) -> Router`: every route of the server, buildable in tests.

use axum::{middleware, response::IntoResponse, routing::get, Json, Router};
use leptos_axum::{generate_route_list, LeptosRoutes};

use super::{identity, state::AppState, ws};
use crate::app::{shell, App};

/// The full router: pages (SSR + hydration assets), `/ws`, health.
pub fn app(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(healthz))
        .leptos_routes(&state, routes, {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            identity::issue_cookie,
        ))
        .with_state(state)
}

/// The process is up.
async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}
