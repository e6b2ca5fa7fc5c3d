//! The bar above the conversation: the sidebar button (narrow screens), the
//! name, the open conversation's title, its export (Markdown, JSON), its
//! model (when there is a choice), the connection status, the account
//! (or "Sign in") and the theme toggle.

use leptos::prelude::*;

use super::{account::AccountLinks, session::ChatSession, status::StatusBadge, theme::ThemeToggle};

/// The top bar; `sidebar_open` is the page's sidebar state, which its menu
/// button toggles.
#[component]
pub fn TopBar(sidebar_open: RwSignal<bool>) -> impl IntoView {
    let session = ChatSession::get();
    let ChatSession { chat, status, .. } = session;
    let export_menu = NodeRef::<leptos::html::Details>::new();
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
                {move || chat.with(|c| c.conversation_id.clone()).map(|id| view! {
                    // Plain links: the browser saves what the server sends as an attachment.
                    <details class="export-menu" node_ref=export_menu>
                        <summary class="ghost small">"Export"</summary>
                        // Choosing one closes the menu.
                        <div class="export-options" on:click=move |_| {
                            if let Some(menu) = export_menu.get_untracked() {
                                let _ = menu.remove_attribute("open");
                            }
                        }>
                            <a href=format!("/api/conversations/{id}/export.md") download="">"Markdown"</a>
                            <a href=format!("/api/conversations/{id}/export.json") download="">"JSON (all branches)"</a>
                        </div>
                    </details>
                })}
                <ModelPicker/>
                <StatusBadge status/>
                <AccountLinks/>
                <ThemeToggle/>
            </div>
        </header>
    }
}

/// Which model the open conversation (or the next new one) is asked of,
/// when the server offers more than one.
#[component]
fn ModelPicker() -> impl IntoView {
    let session = ChatSession::get();
    view! {
        <Show when=move || session.models.with(|m| m.len() > 1)>
            <label for="model-picker" class="visually-hidden">"Model"</label>
            <select
                id="model-picker"
                class="model-picker"
                // The property, not the options' attributes: those no longer
                // move the selection once the person has used the list.
                prop:value=move || session.current_model().unwrap_or_default()
                on:change=move |ev| session.pick_model(event_target_value(&ev))
            >
                <For
                    each=move || session.models.get()
                    key=|m| m.clone()
                    children=move |m| {
                        let chosen = {
                            let m = m.clone();
                            move || session.current_model().as_deref() == Some(m.as_str())
                        };
                        view! { <option value=m.clone() selected=chosen>{m.clone()}</option> }
                    }
                />
            </select>
        </Show>
    }
}
