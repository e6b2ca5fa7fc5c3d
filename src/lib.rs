//! Tether: a real-time AI companion chat.
//!
//! One crate, two halves. With feature `ssr` it is the axum server
//! ([`server`]); with feature `hydrate` it is the WASM app that hydrates the
//! server-rendered page ([`hydrate`]). [`protocol`] is the wire contract both
//! halves compile.

#![forbid(unsafe_code)]
#![recursion_limit = "256"]

/// In a property check: returns `Err(message)` unless `cond` holds.
#[cfg(any(test, feature = "fuzzing"))]
macro_rules! fail_unless {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(format!($($message)+));
        }
    };
}

pub mod app;
pub mod card_text;
pub mod client;
pub mod event_stream;
pub mod protocol;
mod ui;

#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

/// WASM entry point: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
