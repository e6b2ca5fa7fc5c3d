//! The bar above the conversation: the sidebar button (narrow screens), the
//! name, the open conversation's title, the connection status and the theme
//! toggle.

use leptos::prelude::*;

use super::{session::ChatSession, status::StatusBadge, theme::ThemeToggle};

/// The top bar; `sidebar_open` is the page's sidebar state, which its menu
/// button toggles.
#[component]
pub fn TopBar(sidebar_open: RwSignal<bool>) -> impl IntoView {
    let session = ChatSession::get();
    let ChatSession { chat, status, .. } = session;
    let title = move || {
        let id = chat.with(|c| c.conversation_id.clone())?;
        session
            .conversations
            .with(|list| list.iter().find(|c| c.id == id).map(|c| c.title.clone()))
    };
    view! {
        <header class="topbar">
            <div class="brand">
                <button
                    type="button"
                    class="icon menu"
                    aria-label="Show conversations"
                    aria-expanded=move || sidebar_open.get().to_string()
                    on:click=move |_| sidebar_open.update(|o| *o = !*o)
                >
                    "☰"
                </button>
                <span class="logo" aria-hidden="true">"◍"</span>
                <h1>"Tether"</h1>
                <span class="conversation-title">{title}</span>
            </div>
            <div class="topbar-actions">
                <StatusBadge status/>
                <ThemeToggle/>
            </div>
        </header>
    }
}
