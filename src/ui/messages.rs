//! The conversation itself: the message list (the stored history while the
//! socket's snapshot is on its way, the live view after), Continue (for a
//! reply that ended early) and Regenerate, the notice of a refusal or
//! failure, and "Jump to latest" when the user has scrolled up.
//!
//! A long conversation shows its newest messages (the snapshot's window)
//! under a "Loading earlier messages…" row while older ones exist;
//! scrolling near the top asks for the page before them, which is
//! prepended with the message that was first kept where it was on screen
//! (no jump). The row goes when the first message is reached.

use leptos::{html, prelude::*};

use super::{
    empty::EmptyState, history::history_resource, message::MessageBubble, session::ChatSession,
};
use crate::{
    client::{
        browser,
        state::{ChatView, Retry, ViewMessage},
    },
    protocol::{FinishReason, MessageId, Role, ServerFrame},
};

/// How close to the top (px) the list asks for earlier messages.
const EARLIER_MARGIN: i32 = 400;

/// The first message shown, where it was (`offsetTop`) and the list's
/// `scrollTop` then: what keeps it in place when a page is prepended.
#[derive(Clone, Debug, Default)]
struct Anchor {
    first: Option<MessageId>,
    top: i32,
    scroll_top: i32,
}

impl Anchor {
    /// After a render: when what is above the anchored message grew (a
    /// page prepended) or shrank, scrolls by as much as it moved.
    fn restore(&self, list: &leptos::web_sys::HtmlDivElement) {
        let Some(first) = &self.first else {
            return;
        };
        match browser::message_top(list, first.as_str()) {
            Some(top) if top != self.top => list.set_scroll_top(self.scroll_top + top - self.top),
            _ => {}
        }
    }

    /// The first message shown now, and where it is.
    fn take(list: &leptos::web_sys::HtmlDivElement, first: Option<MessageId>) -> Self {
        let top = first
            .as_ref()
            .and_then(|id| browser::message_top(list, id.as_str()))
            .unwrap_or_default();
        Self {
            first,
            top,
            scroll_top: list.scroll_top(),
        }
    }
}

/// The message list and its "Jump to latest" button, for the conversation
/// in the URL (`route_id`, `None` for a new chat).
#[component]
pub fn MessageList(route_id: Signal<Option<String>>) -> impl IntoView {
    let session = ChatSession::get();
    let chat = session.chat;
    let list_ref = NodeRef::<html::Div>::new();

    // Follow the newest text while the user is at the bottom; once they
    // scroll up, leave them there and offer a way back.
    let at_bottom = RwSignal::new(true);
    // Only the user scrolling *up* lets go of the bottom: a render that makes
    // the list taller between a jump and its scroll event must not.
    let last_top = StoredValue::new(0);
    let anchor = StoredValue::new(Anchor::default());
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
            anchor.update_value(|a| a.scroll_top = top);
            if top < EARLIER_MARGIN {
                session.load_earlier();
            }
        }
    };
    let jump_to_latest = move || {
        if let Some(list) = list_ref.get_untracked() {
            list.set_scroll_top(list.scroll_height());
            last_top.set_value(list.scroll_top());
        }
        at_bottom.set(true);
    };
    // New text follows the bottom, unless the user has scrolled up since the
    // last look, even if no scroll event has said so yet (text arriving every
    // few ms would otherwise pull the list back down before it does).
    let scrolled_up = move || {
        list_ref.get_untracked().is_some_and(|list| {
            let top = list.scroll_top();
            let distance = list.scroll_height() - top - list.client_height();
            distance >= 48 && top < last_top.get_value()
        })
    };
    // Measured once the render has reached the DOM (effects may run before
    // the list's own update), before the frame is painted.
    let settle = move || {
        let Some(list) = list_ref.get_untracked() else {
            return;
        };
        let first = chat.with_untracked(|c| c.messages.first().map(|m| m.message.id.clone()));
        if at_bottom.get_untracked() && scrolled_up() {
            at_bottom.set(false);
        }
        if at_bottom.get_untracked() {
            jump_to_latest();
        } else {
            anchor.with_value(|a| a.restore(&list));
            last_top.set_value(list.scroll_top());
        }
        anchor.set_value(Anchor::take(&list, first));
        // A window shorter than the screen cannot be scrolled up: ask now.
        if list.scroll_top() < EARLIER_MARGIN {
            session.load_earlier();
        }
    };
    Effect::new(move |_| {
        chat.track();
        browser::after_render(settle);
    });
    // Shown while older messages exist (reaching it loads them), so it
    // takes its place before any page is asked for and nothing moves then.
    let has_earlier = move || chat.with(|c| c.has_more);
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

    view! {
        <div
            class="messages"
            node_ref=list_ref
            role="log"
            aria-live="polite"
            aria-label="Conversation"
            on:scroll=on_scroll
            // Copy buttons inside rendered markdown (one delegated handler).
            on:click=|ev: leptos::ev::MouseEvent| browser::copy_code_on_click(&ev)
        >
            <Show when=move || route_id.with(|r| r.is_none()) && chat.with(|c| c.messages.is_empty())>
                <EmptyState/>
            </Show>
            <Show when=has_earlier>
                <div class="loading-earlier" role="status">"Loading earlier messages…"</div>
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
                            key=|m| (m.message.id.clone(), m.message.content.len(), m.streaming, m.message.finish_reason, m.pending, m.message.alternatives)
                            children=|m| view! { <MessageBubble message=m/> }
                        />
                    }
                })}
            </Suspense>
            <Show when=can_regenerate>
                <div class="message-actions">
                    <ContinueAction/>
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
    }
}

/// "Continue" for a last reply that ended early (interrupted, cut short at
/// the length limit, or stopped): more text streams into the same bubble.
#[component]
fn ContinueAction() -> impl IntoView {
    let session = ChatSession::get();
    let chat = session.chat;
    move || {
        chat.with(|c| c.continuable()).map(|reason| {
            let why = match reason {
                FinishReason::Error => "The reply was interrupted.",
                FinishReason::Length => "The reply reached the length limit.",
                FinishReason::Stop | FinishReason::Stopped => "The reply was stopped.",
            };
            view! {
                <button
                    type="button"
                    class="ghost small continue"
                    title=format!("{why} Continue it where it stopped.")
                    on:click=move |_| session.continue_reply()
                >
                    "Continue"
                </button>
            }
        })
    }
}

/// The messages of a server-rendered history, as the view shows them.
fn initial_messages(history: Option<ServerFrame>) -> Vec<ViewMessage> {
    let mut view = ChatView::default();
    if let Some(frame) = history {
        view.apply(&frame);
    }
    view.messages
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
