//! The server's (and any native build's) twin of `browser.rs`: the same
//! functions with the same signatures, doing nothing, so the `ui/` components
//! compile unchanged on both sides without a `cfg` of their own.
//!
//! None of these runs while the server renders a page (event handlers and
//! effects run only in a browser); they exist so the code type-checks. Where
//! a value is needed it is the neutral one: no clipboard, no theme known, no
//! confirmation, no socket, nothing to wait for before painting.

use futures::channel::mpsc::UnboundedReceiver;
use leptos::ev::Event;

use super::{ConnStatus, Theme};
use crate::protocol::{
    ClientFrame, ClientMsgId, CompanionDraft, CompanionInfo, ConversationSummary, ModelSetup,
    ServerFrame,
};

/// No clipboard: nothing is copied.
pub async fn copy(_text: &str) -> bool {
    false
}

/// No page to click in.
pub fn copy_code_on_click(_ev: &Event) {}

/// Unknown outside a browser.
pub fn current_theme() -> Option<Theme> {
    None
}

/// No page to apply it to.
pub fn set_theme(_theme: Theme) {}

/// Nobody to ask: declined.
pub fn confirm(_message: &str) -> bool {
    false
}

/// No socket: the outgoing frames are dropped with their receiver.
pub fn open_socket(
    _outgoing: UnboundedReceiver<ClientFrame>,
    _on_frame: impl Fn(ServerFrame) + 'static,
    _on_status: impl Fn(ConnStatus) + 'static,
) {
}

/// No page to update.
pub fn follow_model_setup(_on_change: impl Fn(ModelSetup) + 'static) {}

/// No paint to wait for: runs `f` now.
pub fn before_next_paint(f: impl Fn() + Clone + 'static) {
    f();
}

/// Nothing to wait for: runs `f` now.
pub fn after_render(f: impl FnOnce() + 'static) {
    f();
}

/// A key unique within this process (native tests).
pub fn new_client_msg_id() -> ClientMsgId {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    ClientMsgId(format!("native-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// No browser clock: empty (the server stamps stored messages).
pub fn now_rfc3339() -> String {
    String::new()
}

/// Nothing is rendered: no position.
pub fn message_top(_list: &leptos::web_sys::HtmlElement, _id: &str) -> Option<i32> {
    None
}

/// What the companion calls answer outside a browser (never called there).
const NOT_A_BROWSER: &str = "not in a browser";

/// No server to ask.
pub async fn companions() -> Option<Vec<CompanionInfo>> {
    None
}

pub async fn save_companion(
    _id: Option<String>,
    _draft: CompanionDraft,
) -> Result<CompanionInfo, String> {
    Err(NOT_A_BROWSER.into())
}

pub async fn delete_companion(_id: String) -> Result<(), String> {
    Err(NOT_A_BROWSER.into())
}

pub async fn import_card(_event: Event) -> Result<CompanionInfo, String> {
    Err(NOT_A_BROWSER.into())
}

pub async fn import_conversation(_event: Event) -> Result<ConversationSummary, String> {
    Err(NOT_A_BROWSER.into())
}

pub async fn set_avatar(_id: String, _event: Event) -> Result<CompanionInfo, String> {
    Err(NOT_A_BROWSER.into())
}

pub async fn remove_avatar(_id: String) -> Result<CompanionInfo, String> {
    Err(NOT_A_BROWSER.into())
}
