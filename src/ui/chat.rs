//! The chat page: conversation view, composer, connection status.
//!
//! State lives in signals owned here; server frames flow through the pure
//! [`ChatView`] reducer. The socket starts only in the browser, after hydration.

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use leptos::{html, prelude::*};

use super::{composer::Composer, message::MessageBubble, status::StatusBadge};
use crate::{
    client::{new_client_msg_id, now_rfc3339, state::ChatView, ConnStatus},
    protocol::{ClientFrame, ErrorCode, Role},
};

/// The page at `/`.
#[component]
pub fn ChatPage() -> impl IntoView {
    let chat = RwSignal::new(ChatView::default());
    let status = RwSignal::new(ConnStatus::Connecting);
    let draft = RwSignal::new(String::new());
    let (tx, rx) = unbounded::<ClientFrame>();
    let outbox = StoredValue::new(tx);
    let inbox: StoredValue<Option<UnboundedReceiver<ClientFrame>>> = StoredValue::new(Some(rx));
    let list_ref = NodeRef::<html::Div>::new();

    start_socket(chat, status, outbox, inbox);

    let send_frame = move |frame: ClientFrame| {
        outbox.with_value(|tx: &UnboundedSender<ClientFrame>| {
            let _ = tx.unbounded_send(frame);
        });
    };
    let streaming = Signal::derive(move || chat.with(|c| c.is_streaming()));
    let on_send = Callback::new(move |()| {
        let text = draft.get_untracked();
        if text.trim().is_empty() || chat.with_untracked(|c| c.is_streaming()) {
            return;
        }
        let client_msg_id = new_client_msg_id();
        let conversation_id = chat.with_untracked(|c| c.conversation_id.clone());
        chat.update(|c| {
            c.notice = None;
            c.add_pending(&client_msg_id, &text, now_rfc3339());
        });
        send_frame(ClientFrame::Send {
            client_msg_id,
            conversation_id,
            text,
            persona: None,
        });
        draft.set(String::new());
    });
    let on_stop = Callback::new(move |()| {
        if let Some(conversation_id) = chat.with_untracked(|c| c.conversation_id.clone()) {
            send_frame(ClientFrame::Stop { conversation_id });
        }
    });
    let on_regenerate = move |_| {
        if let Some(conversation_id) = chat.with_untracked(|c| c.conversation_id.clone()) {
            send_frame(ClientFrame::Regenerate {
                conversation_id,
                client_msg_id: new_client_msg_id(),
            });
        }
    };
    let new_chat = move |_| {
        if !chat.with_untracked(|c| c.is_streaming()) {
            if let Some(conversation_id) = chat.with_untracked(|c| c.conversation_id.clone()) {
                send_frame(ClientFrame::Unsubscribe { conversation_id });
            }
            chat.set(ChatView::default());
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

    view! {
        <div class="app">
            <header class="topbar">
                <div class="brand">
                    <span class="logo" aria-hidden="true">"◍"</span>
                    <h1>"Tether"</h1>
                </div>
                <div class="topbar-actions">
                    <StatusBadge status/>
                    <button type="button" class="ghost" on:click=new_chat>"New chat"</button>
                </div>
            </header>
            <main class="chat">
                <div class="messages" node_ref=list_ref aria-live="polite" aria-label="Conversation">
                    <Show when=move || chat.with(|c| c.messages.is_empty())>
                        <div class="empty">
                            <h2>"Hi, I'm here for you."</h2>
                            <p>"Tell me about your day — replies stream in as they are written."</p>
                        </div>
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
                {move || {
                    chat.with(|c| c.notice.clone())
                        .map(|notice| {
                            let code = notice.code.as_str();
                            let retry = matches!(
                                notice.code,
                                ErrorCode::RateLimited | ErrorCode::UpstreamError | ErrorCode::UpstreamTimeout | ErrorCode::Busy
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
                }}
                <Composer draft streaming on_send on_stop/>
            </main>
        </div>
    }
}

/// Opens the socket once the page is hydrated (browser only).
#[allow(unused_variables)]
fn start_socket(
    chat: RwSignal<ChatView>,
    status: RwSignal<ConnStatus>,
    outbox: StoredValue<UnboundedSender<ClientFrame>>,
    inbox: StoredValue<Option<UnboundedReceiver<ClientFrame>>>,
) {
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let Some(rx) = inbox.try_update_value(|rx| rx.take()).flatten() else {
            return;
        };
        crate::client::socket::spawn(
            rx,
            move |frame| {
                if matches!(frame, crate::protocol::ServerFrame::Hello { .. }) {
                    // (Re)connected: follow the open conversation again from a snapshot.
                    if let Some(conversation_id) =
                        chat.with_untracked(|c| c.conversation_id.clone())
                    {
                        outbox.with_value(|tx| {
                            let _ = tx.unbounded_send(ClientFrame::Subscribe { conversation_id });
                        });
                    }
                }
                chat.update(|c| c.apply(&frame));
            },
            move |s| status.set(s),
        );
    });
}
