//! Thin wrappers over the browser APIs the UI uses (feature `browser`): the
//! clipboard, the persisted colour theme, `confirm`, the page's socket, the
//! model's set-up, the companion endpoints ([`super::api`]), paint timing, ids and the clock, and copy buttons inside rendered markdown (one
//! delegated click handler instead of one per code block).
//!
//! Other builds compile `browser_twin.rs` in its place (chosen in
//! `client/mod.rs`): the same functions, doing nothing there. Every public
//! item here must have its twin with the same signature.

use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use leptos::{
    ev::Event,
    prelude::{request_animation_frame, set_timeout},
};
use wasm_bindgen::JsCast;

use super::{ConnStatus, Theme, THEME_KEY};
use crate::protocol::{
    ClientFrame, ClientMsgId, CompanionDraft, CompanionInfo, ConversationSummary, ModelSetup,
    ServerFrame,
};

/// Copies `text` to the clipboard; `true` when the browser accepted it.
pub async fn copy(text: &str) -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let promise = window.navigator().clipboard().write_text(text);
    wasm_bindgen_futures::JsFuture::from(promise).await.is_ok()
}

/// Handles a click anywhere in the message list: a `.copy-code` button copies
/// the code of its block and says so for a moment.
pub fn copy_code_on_click(ev: &Event) {
    let Some(button) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .and_then(|el| el.closest(".copy-code").ok().flatten())
    else {
        return;
    };
    let Some(text) = button
        .closest(".code-block")
        .ok()
        .flatten()
        .and_then(|block| block.query_selector("code").ok().flatten())
        .and_then(|code| code.text_content())
    else {
        return;
    };
    leptos::task::spawn_local(async move {
        let label = if copy(&text).await {
            "Copied"
        } else {
            "Copy failed"
        };
        button.set_text_content(Some(label));
        set_timeout(
            move || button.set_text_content(Some("Copy")),
            Duration::from_millis(1500),
        );
    });
}

fn root() -> Option<web_sys::Element> {
    web_sys::window()?.document()?.document_element()
}

/// The theme in effect: the one chosen before, else the system's (always
/// known in a browser).
pub fn current_theme() -> Option<Theme> {
    let chosen = root()
        .and_then(|r| r.get_attribute("data-theme"))
        .and_then(|t| Theme::parse(&t));
    Some(chosen.unwrap_or_else(|| {
        let dark = web_sys::window()
            .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
            .is_some_and(|m| m.matches());
        if dark {
            Theme::Dark
        } else {
            Theme::Light
        }
    }))
}

/// Applies `theme` to the page and remembers it.
pub fn set_theme(theme: Theme) {
    if let Some(root) = root() {
        let _ = root.set_attribute("data-theme", theme.as_str());
    }
    if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = storage.set_item(THEME_KEY, theme.as_str());
    }
}

/// Asks the user to confirm `message`; `false` when they decline (or the
/// browser cannot ask).
pub fn confirm(message: &str) -> bool {
    web_sys::window()
        .and_then(|w| w.confirm_with_message(message).ok())
        .unwrap_or(false)
}

/// Opens the page's connection to the server ([`super::socket::spawn`]).
pub fn open_socket(
    outgoing: UnboundedReceiver<ClientFrame>,
    on_frame: impl Fn(ServerFrame) + 'static,
    on_status: impl Fn(ConnStatus) + 'static,
) {
    super::socket::spawn(outgoing, on_frame, on_status);
}

/// Follows a model that is being set up: asks the server every 2 s and hands
/// each answer to `on_change`, until it is ready or failed.
pub fn follow_model_setup(on_change: impl Fn(ModelSetup) + 'static) {
    leptos::task::spawn_local(async move {
        loop {
            gloo_timers::future::TimeoutFuture::new(2_000).await;
            let Some(setup) = super::fallback::model_setup().await else {
                continue; // Offline for now: the socket reconnects meanwhile.
            };
            let settled = !matches!(setup, ModelSetup::Installing { .. });
            on_change(setup);
            if settled {
                return;
            }
        }
    });
}

/// Runs `f` before the next paint, or after 100 ms at the latest (hidden tabs
/// get no animation frames). It may run twice, so `f` must be idempotent.
pub fn before_next_paint(f: impl Fn() + Clone + 'static) {
    request_animation_frame(f.clone());
    set_timeout(f, Duration::from_millis(100));
}

/// Runs `f` once the reactive updates queued now have reached the DOM (a
/// microtask after the executor's queue), still before the next paint.
pub fn after_render(f: impl FnOnce() + 'static) {
    leptos::prelude::queue_microtask(f);
}

/// A fresh idempotency key for `send` / `regenerate`.
pub fn new_client_msg_id() -> ClientMsgId {
    let now = js_sys::Date::now() as u64;
    let a = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    let b = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    ClientMsgId(format!("{now:x}-{a:x}-{b:x}"))
}

/// Now, as RFC 3339 (browser clock), for messages not yet stored.
pub fn now_rfc3339() -> String {
    js_sys::Date::new_0().to_iso_string().into()
}

/// The `offsetTop` of the message `id` inside `list`, if it is rendered:
/// where it sits, to keep it in place while older messages are prepended.
pub fn message_top(list: &leptos::web_sys::HtmlElement, id: &str) -> Option<i32> {
    list.query_selector(&format!("[data-message-id=\"{id}\"]"))
        .ok()
        .flatten()?
        .dyn_into::<web_sys::HtmlElement>()
        .ok()
        .map(|element| element.offset_top())
}

/// The presets and the user's own companions (`None`: not reachable now).
pub async fn companions() -> Option<Vec<CompanionInfo>> {
    super::api::companions().await
}

/// Makes (`id` `None`) or changes a companion; `Err` is the reason to show.
pub async fn save_companion(
    id: Option<String>,
    draft: CompanionDraft,
) -> Result<CompanionInfo, String> {
    super::api::save(id, &draft).await
}

pub async fn delete_companion(id: String) -> Result<(), String> {
    super::api::delete(&id).await
}

/// Imports the character card chosen in the file input of `event`.
pub async fn import_card(event: Event) -> Result<CompanionInfo, String> {
    super::api::import(&event).await
}

/// Imports the conversation export chosen in the file input of `event`.
pub async fn import_conversation(event: Event) -> Result<ConversationSummary, String> {
    super::api::import_conversation(&event).await
}

/// Sets the picture chosen in the file input of `event`.
pub async fn set_avatar(id: String, event: Event) -> Result<CompanionInfo, String> {
    super::api::set_avatar(&id, &event).await
}

pub async fn remove_avatar(id: String) -> Result<CompanionInfo, String> {
    super::api::remove_avatar(&id).await
}
