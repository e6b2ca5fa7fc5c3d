//! The chat page (`/` for a new chat, `/c/:id` for a conversation): the
//! layout around the sidebar, top bar, message list and composer.
//!
//! State lives in the app-wide [`ChatSession`]; server frames flow through
//! the pure [`ChatView`] reducer. This page follows the conversation in its
//! URL and puts a new conversation's id into the URL once the server accepts it.

use leptos::prelude::*;
use leptos_router::{
    components::Outlet,
    hooks::{use_location, use_navigate},
    NavigateOptions,
};

use super::{
    composer::Composer, messages::MessageList, session::ChatSession,
    setup_notice::ModelSetupNotice, sidebar::conversation_from_param, sidebar::Sidebar,
    topbar::TopBar,
};
use crate::{client::state::ChatView, protocol::ClientFrame};

/// The page.
#[component]
pub fn ChatPage() -> impl IntoView {
    let session = ChatSession::get();
    let ChatSession { chat, draft, .. } = session;
    let location = use_location();
    let route_id = Signal::derive(move || {
        location.pathname.with(|p| {
            p.strip_prefix("/c/")
                .map(|id| id.trim_end_matches('/').to_owned())
        })
    });
    let navigate = use_navigate();
    let sidebar_open = RwSignal::new(false);

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
                <TopBar sidebar_open/>
                <main class="chat">
                    <ModelSetupNotice/>
                    <MessageList route_id/>
                    <Composer draft streaming on_send on_stop/>
                    <Outlet/>
                </main>
            </div>
        </div>
    }
}
