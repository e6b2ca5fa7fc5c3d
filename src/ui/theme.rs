//! Light / dark toggle. The page follows the system until the user picks;
//! the pick is remembered (and applied before first paint by the script in
//! the page head, `THEME_BOOT`).

use leptos::prelude::*;

use crate::client::{browser, Theme};

/// Runs in `<head>` before the body paints: applies a remembered theme.
pub const THEME_BOOT: &str = "try{var t=localStorage.getItem('tether-theme');\
if(t==='light'||t==='dark'){document.documentElement.setAttribute('data-theme',t)}}catch(e){}";

/// The toggle button.
#[component]
pub fn ThemeToggle() -> impl IntoView {
    // Unknown on the server; read from the page once hydrated.
    let theme = RwSignal::new(None::<Theme>);
    Effect::new(move |_| theme.set(browser::current_theme()));
    let label = move || match theme.get() {
        Some(Theme::Dark) => "Switch to light theme",
        _ => "Switch to dark theme",
    };
    let toggle = move |_| {
        let next = theme.get_untracked().unwrap_or(Theme::Light).other();
        browser::set_theme(next);
        theme.set(Some(next));
    };
    view! {
        <button
            type="button"
            class="icon theme-toggle"
            aria-label=label
            title=label
            data-theme=move || theme.get().map(Theme::as_str)
            on:click=toggle
        >
            <span aria-hidden="true">
                {move || if theme.get() == Some(Theme::Dark) { "☀" } else { "☾" }}
            </span>
        </button>
    }
}
