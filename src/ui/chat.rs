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
    message::MessageBubble,
    session::ChatSession,
    sidebar::{conversation_from_param, Sidebar},
    status::StatusBadge,
};
use crate::{
    client::{new_client_msg_id, now_rfc3339, state::ChatView},
    protocol::{ClientFrame, ErrorCode, Role},
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
        let client_msg_id = new_client_msg_id();
        let conversation_id = chat.with_untracked(|c| c.conversation_id.clone());
        let persona = if conversation_id.is_none() {
            session.persona.get_untracked()
        } else {
            None
        };
        chat.update(|c| {
            c.notice = None;
            c.add_pending(&client_msg_id, &text, now_rfc3339());
        });
        session.send(ClientFrame::Send {
            client_msg_id,
            conversation_id,
            text,
            persona,
        });
        draft.set(String::new());
    });
    let on_stop = Callback::new(move |()| {
        if let Some(conversation_id) = chat.with_untracked(|c| c.conversation_id.clone()) {
            session.send(ClientFrame::Stop { conversation_id });
        }
    });
    let on_regenerate = move |_| {
        if let Some(conversation_id) = chat.with_untracked(|c| c.conversation_id.clone()) {
            session.send(ClientFrame::Regenerate {
                conversation_id,
                client_msg_id: new_client_msg_id(),
            });
        }
    };

    // Keep the newest text in view while the user is at the bottom.
    Effect::new(move |_| {
        chat.track();
        if let Some(list) = list_ref.get() {
            let distance = list.scroll_height() - list.scroll_top() - list.client_height();
            if distance < 160 {
                list.set_scroll_top(list.scroll_height());
            }
        }
    });

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
        <div class="app" class:sidebar-open=move || sidebar_open.get()>
            <Sidebar open=sidebar_open active=route_id/>
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
                    </div>
                </header>
                <main class="chat">
                    <div class="messages" node_ref=list_ref aria-live="polite" aria-label="Conversation">
                        <Show when=move || chat.with(|c| c.messages.is_empty() && c.conversation_id.is_none())>
                            <EmptyState/>
                        </Show>
                        <For
                            each=move || chat.with(|c| c.messages.clone())
                            key=|m| (m.message.id.clone(), m.message.content.len(), m.streaming, m.message.finish_reason, m.pending)
                            children=|m| view! { <MessageBubble message=m/> }
                        />
                        <Show when=can_regenerate>
                            <div class="message-actions">
                                <button type="button" class="ghost small regenerate" on:click=on_regenerate>
                                    "↻ Regenerate"
                                </button>
                            </div>
                        </Show>
                    </div>
                    <Notice/>
                    <Composer draft streaming on_send on_stop/>
                    <Outlet/>
                </main>
            </div>
        </div>
    }
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

/// A refusal or failure, dismissible.
#[component]
fn Notice() -> impl IntoView {
    let chat = ChatSession::get().chat;
    move || {
        chat.with(|c| c.notice.clone()).map(|notice| {
            let code = notice.code.as_str();
            let retry = matches!(
                notice.code,
                ErrorCode::RateLimited
                    | ErrorCode::UpstreamError
                    | ErrorCode::UpstreamTimeout
                    | ErrorCode::Busy
            );
            view! {
                <div class="notice" role="alert" data-code=code>
                    <span>{notice.text}</span>
                    {retry.then(|| view! { <span class="hint">" You can try again."</span> })}
                    <button
                        type="button"
                        class="ghost small"
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
