//! Thin wrappers over the browser APIs the UI uses (feature `hydrate`): the
//! clipboard, the persisted colour theme, and copy buttons inside rendered
//! markdown (one delegated click handler instead of one per code block).

use leptos::prelude::set_timeout;
use std::time::Duration;
use wasm_bindgen::JsCast;

use crate::client::Theme;

/// Where the chosen theme is remembered (read again by the inline script in
/// the page head, so a reload never flashes the wrong theme).
pub const THEME_KEY: &str = "tether-theme";

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
pub fn copy_code_on_click(ev: &web_sys::Event) {
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

/// The theme in effect: the one chosen before, else the system's.
pub fn current_theme() -> Theme {
    let chosen = root()
        .and_then(|r| r.get_attribute("data-theme"))
        .and_then(|t| Theme::parse(&t));
    chosen.unwrap_or_else(|| {
        let dark = web_sys::window()
            .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
            .is_some_and(|m| m.matches());
        if dark {
            Theme::Dark
        } else {
            Theme::Light
        }
    })
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
