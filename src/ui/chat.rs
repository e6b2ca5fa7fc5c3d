//! The chat page (`/` for a new chat, `/c/:id` for a conversation):
//! sidebar, conversation view, composer, connection status.
//!
//! State lives in the app-wide [`ChatSession`]; server frames flow through
//! the pure [`ChatView`] reducer. This page follows the conversation in its
//! URL and puts a new conversation's id into the URL once the server accepts it.

use leptos::{html, prelude::*};
use leptos_router::{
    components::Outlet,
    hooks::{use_location, use_navigate},
    NavigateOptions,
};

use super::{
    composer::Composer,
    history::history_resource,
    message::MessageBubble,
    session::ChatSession,
    sidebar::{conversation_from_param, Sidebar},
    status::StatusBadge,
    theme::ThemeToggle,
};
use crate::{
    client::state::{ChatView, Retry, ViewMessage},
    protocol::{ClientFrame, Role},
};

/// The page.
#[component]
pub fn ChatPage() -> impl IntoView {
    let session = ChatSession::get();
    let ChatSession {
        chat,
        status,
        draft,
        ..
    } = session;
    let location = use_location();
    let route_id = Signal::derive(move || {
        location.pathname.with(|p| {
            p.strip_prefix("/c/")
                .map(|id| id.trim_end_matches('/').to_owned())
        })
    });
    let navigate = use_navigate();
    let sidebar_open = RwSignal::new(false);
    let list_ref = NodeRef::<html::Div>::new();

    // Follow the conversation named by the URL (on arrival and on navigation).
    Effect::new(move |_| {
        let wanted = conversation_from_param(route_id.get());
        let current = chat.with_untracked(|c| c.conversation_id.clone());
        if wanted == current {
            return;
        }
        if let Some(conversation_id) = current {
            session.send(ClientFrame::Unsubscribe { conversation_id });
        }
        chat.set(ChatView {
            conversation_id: wanted.clone(),
            ..ChatView::default()
        });
        if let Some(conversation_id) = wanted {
            session.send(ClientFrame::Subscribe { conversation_id });
        }
    });
    // A new conversation got its id: show it in the URL.
    Effect::new(move |_| {
        let current = chat.with(|c| c.conversation_id.clone());
        if let Some(id) = current {
            if route_id.get_untracked().is_none() {
                navigate(
                    &format!("/c/{id}"),
                    NavigateOptions {
                        replace: true,
                        ..Default::default()
                    },
                );
            }
        }
    });

    let streaming = Signal::derive(move || chat.with(|c| c.is_streaming()));
    let on_send = Callback::new(move |()| {
        let text = draft.get_untracked();
        if text.trim().is_empty() || chat.with_untracked(|c| c.is_streaming()) {
            return;
        }
        session.send_text(text);
        draft.set(String::new());
    });
    let on_stop = Callback::new(move |()| {
        if let Some(conversation_id) = chat.with_untracked(|c| c.conversation_id.clone()) {
            session.send(ClientFrame::Stop { conversation_id });
        }
    });

    // Follow the newest text while the user is at the bottom; once they
    // scroll up, leave them there and offer a way back.
    let at_bottom = RwSignal::new(true);
    // Only the user scrolling *up* lets go of the bottom: a render that makes
    // the list taller between a jump and its scroll event must not.
    let last_top = StoredValue::new(0);
    let on_scroll = move |_| {
        if let Some(list) = list_ref.get_untracked() {
            let top = list.scroll_top();
            let distance = list.scroll_height() - top - list.client_height();
            if distance < 48 {
                at_bottom.set(true);
            } else if top < last_top.get_value() {
                at_bottom.set(false);
            }
            last_top.set_value(top);
        }
    };
    let jump_to_latest = move || {
        if let Some(list) = list_ref.get_untracked() {
            list.set_scroll_top(list.scroll_height());
        }
        at_bottom.set(true);
    };
    Effect::new(move |_| {
        chat.track();
        if at_bottom.get_untracked() {
            jump_to_latest();
        }
    });
    let show_jump = move || !at_bottom.get() && chat.with(|c| !c.messages.is_empty());
    let history = history_resource(route_id);

    let can_regenerate = move || {
        chat.with(|c| {
            !c.is_streaming()
                && c.messages
                    .last()
                    .is_some_and(|m| m.message.role == Role::Assistant)
        })
    };
    let title = move || {
        let id = chat.with(|c| c.conversation_id.clone())?;
        session
            .conversations
            .with(|list| list.iter().find(|c| c.id == id).map(|c| c.title.clone()))
    };

    view! {
        <div
            class="app"
            class:sidebar-open=move || sidebar_open.get()
            on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                if ev.key() == "Escape" {
                    sidebar_open.set(false);
                }
            }
        >
            <Sidebar open=sidebar_open active=route_id/>
            // Narrow screens: tapping beside the open sidebar closes it.
            <div class="backdrop" aria-hidden="true" on:click=move |_| sidebar_open.set(false)></div>
            <div class="main">
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
                <main class="chat">
                    <div
                        class="messages"
                        node_ref=list_ref
                        role="log"
                        aria-live="polite"
                        aria-label="Conversation"
                        on:scroll=on_scroll
                        on:click=copy_code
                    >
                        <Show when=move || route_id.with(|r| r.is_none()) && chat.with(|c| c.messages.is_empty())>
                            <EmptyState/>
                        </Show>
                        <Suspense>
                            {move || Suspend::new(async move {
                                // Server render and hydration of `/c/:id` show the stored
                                // history until the socket's snapshot fills the live view.
                                // `chat` itself is never touched here, so everything else
                                // on the page renders the same on both sides.
                                let initial = initial_messages(history.await);
                                view! {
                                    <For
                                        each=move || {
                                            let live = chat.with(|c| c.messages.clone());
                                            if live.is_empty() { initial.clone() } else { live }
                                        }
                                        key=|m| (m.message.id.clone(), m.message.content.len(), m.streaming, m.message.finish_reason, m.pending)
                                        children=|m| view! { <MessageBubble message=m/> }
                                    />
                                }
                            })}
                        </Suspense>
                        <Show when=can_regenerate>
                            <div class="message-actions">
                                <button type="button" class="ghost small regenerate" on:click=move |_| session.regenerate()>
                                    "↻ Regenerate"
                                </button>
                            </div>
                        </Show>
                        <Notice/>
                    </div>
                    <Show when=show_jump>
                        <button type="button" class="jump-latest" on:click=move |_| jump_to_latest()>
                            "↓ Jump to latest"
                        </button>
                    </Show>
                    <Composer draft streaming on_send on_stop/>
                    <Outlet/>
                </main>
            </div>
        </div>
    }
}

/// The messages of a server-rendered history, as the view shows them.
fn initial_messages(history: Option<crate::protocol::ServerFrame>) -> Vec<ViewMessage> {
    let mut view = ChatView::default();
    if let Some(frame) = history {
        view.apply(&frame);
    }
    view.messages
}

/// Copy buttons inside rendered markdown (one delegated handler).
fn copy_code(ev: leptos::ev::MouseEvent) {
    #[cfg(feature = "browser")]
    crate::client::browser::copy_code_on_click(&ev);
    #[cfg(not(feature = "browser"))]
    let _ = ev;
}

/// A new chat: greeting and persona choice.
#[component]
fn EmptyState() -> impl IntoView {
    let session = ChatSession::get();
    view! {
        <div class="empty">
            <h2>"Hi, I'm here for you."</h2>
            <p>"Tell me about your day — replies stream in as they are written."</p>
            <div class="personas" role="group" aria-label="Persona">
                <For
                    each=move || session.personas.get()
                    key=|p| p.id.clone()
                    children=move |p| {
                        let id = p.id.clone();
                        let selected = {
                            let id = id.clone();
                            move || {
                                let chosen = session.persona.get();
                                let first = session.personas.with(|all| all.first().map(|f| f.id.clone()));
                                chosen.or(first).as_deref() == Some(id.as_str())
                            }
                        };
                        view! {
                            <button
                                type="button"
                                class="persona"
                                aria-pressed=move || selected().to_string()
                                on:click=move |_| session.persona.set(Some(id.clone()))
                            >
                                <strong>{p.name.clone()}</strong>
                                <span>{p.description.clone()}</span>
                            </button>
                        }
                    }
                />
            </div>
        </div>
    }
}

/// A refusal or failure, under the message it concerns: dismissible, with
/// Retry where trying again can help.
#[component]
fn Notice() -> impl IntoView {
    let session = ChatSession::get();
    let chat = session.chat;
    move || {
        chat.with(|c| c.notice.clone()).map(|notice| {
            let code = notice.code.as_str();
            let retry_label = notice.retry.as_ref().map(|r| match r {
                Retry::Resend(_) => "Send again",
                Retry::Regenerate => "Retry",
            });
            view! {
                <div class="notice" role="alert" data-code=code>
                    <span class="notice-text">{notice.text}</span>
                    {retry_label.map(|label| view! {
                        <button type="button" class="ghost small retry" on:click=move |_| session.retry()>
                            {label}
                        </button>
                    })}
                    <button
                        type="button"
                        class="ghost small dismiss"
                        aria-label="Dismiss"
                        on:click=move |_| chat.update(|c| c.notice = None)
                    >
                        "✕"
                    </button>
                </div>
            }
        })
    }
}
