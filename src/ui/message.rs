//! One message bubble. User text is inserted as text; model output as
//! sanitised markdown (`client::markdown`), never as raw HTML. A message
//! with alternatives (swipes, edits) has a `‹ 2/3 ›` pager; a stored one
//! can be edited in place, which makes a new branch from it.

use std::time::Duration;

use leptos::prelude::*;

use crate::{
    client::{browser, markdown, state::ViewMessage},
    protocol::{Alternatives, FinishReason, MessageId, Role},
    ui::session::ChatSession,
};

/// A message of the conversation.
#[component]
pub fn MessageBubble(message: ViewMessage) -> impl IntoView {
    let role = match message.message.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let finish = message.message.finish_reason.map(|f| match f {
        FinishReason::Stop => "",
        FinishReason::Length => "cut short (length limit)",
        FinishReason::Stopped => "stopped",
        FinishReason::Error => "interrupted",
    });
    let stats = message.stats.as_ref().and_then(|s| {
        let ttft = s.ttft_ms?;
        let tokens_per_sec = s.completion_tokens.and_then(|n| {
            let gen_ms = s.total_ms - ttft;
            (gen_ms > 0.0 && n > 0).then(|| f64::from(n) * 1000.0 / gen_ms)
        });
        Some(match tokens_per_sec {
            Some(tps) => format!("first token {ttft:.0} ms · {tps:.0} tok/s"),
            None => format!("first token {ttft:.0} ms"),
        })
    });
    let session = ChatSession::get();
    let streaming = message.streaming;
    let stored = !streaming && !message.pending;
    let editing = RwSignal::new(None::<String>);
    let id = message.message.id.clone();
    let alternatives = message.message.alternatives;
    let content = message.message.content.clone();
    let copied = RwSignal::new(false);
    let text = message.message.content.clone();
    let copy = move |_| {
        let text = text.clone();
        leptos::task::spawn_local(async move {
            if browser::copy(&text).await {
                copied.set(true);
                set_timeout(move || copied.set(false), Duration::from_millis(1500));
            }
        });
    };
    view! {
        <article
            class=format!("message {role}")
            class:pending=message.pending
            class:streaming=streaming
            data-role=role
            data-message-id=message.message.id.to_string()
            aria-busy=streaming.to_string()
        >
            <Show
                when=move || editing.with(Option::is_none)
                fallback={
                    let id = id.clone();
                    move || view! { <EditBox id=id.clone() editing=editing/> }
                }
            >
                <div class="bubble">
                    {match message.message.role {
                        Role::User => view! { <div class="content">{content.clone()}</div> }.into_any(),
                        Role::Assistant => {
                            let html = markdown::render(&content);
                            view! { <div class="content markdown" inner_html=html></div> }.into_any()
                        }
                    }}
                    {streaming.then(|| view! { <span class="cursor" aria-hidden="true"></span> })}
                </div>
            </Show>
            {finish
                .filter(|f| !f.is_empty())
                .map(|f| view! { <div class="finish" data-finish=f>{f}</div> })}
            <div class="meta">
                {alternatives.map(|alternatives| view! { <Pager id=id.clone() alternatives=alternatives/> })}
                {stats.map(|s| view! { <span class="stats">{s}</span> })}
                {message.message.model.clone().map(|model| {
                    // Named only where there is a choice of models.
                    view! {
                        <Show when=move || session.models.with(|m| m.len() > 1)>
                            <span class="reply-model">{model.clone()}</span>
                        </Show>
                    }
                })}
                {stored.then(|| view! {
                    <button type="button" class="copy-message" aria-label="Copy message" on:click=copy>
                        {move || if copied.get() { "Copied" } else { "Copy" }}
                    </button>
                    <button
                        type="button"
                        class="edit-message"
                        aria-label="Edit message"
                        on:click={
                            let text = message.message.content.clone();
                            move |_| editing.set(Some(text.clone()))
                        }
                    >
                        "Edit"
                    </button>
                    <button
                        type="button"
                        class="edit-message delete-message"
                        aria-label="Delete message"
                        on:click={
                            let id = id.clone();
                            move |_| session.delete_message(id.clone())
                        }
                    >
                        "Delete"
                    </button>
                })}
            </div>
        </article>
    }
}

/// `‹ 2/3 ›`: which alternative of its turn a message is, and the way to
/// the others (not while a reply streams: the server would say `busy`).
#[component]
fn Pager(id: MessageId, alternatives: Alternatives) -> impl IntoView {
    let session = ChatSession::get();
    let busy = move || session.chat.with(|c| c.is_streaming());
    let Alternatives { index, count } = alternatives;
    let go = move |to: u32| {
        let id = id.clone();
        move |_| session.select_alternative(id.clone(), to)
    };
    view! {
        <span class="alternatives" role="group" aria-label="Alternatives">
            <button
                type="button"
                class="ghost small previous-alternative"
                aria-label="Previous alternative"
                disabled=move || busy() || index == 0
                on:click=go(index.saturating_sub(1))
            >
                "‹"
            </button>
            <span class="alternative-position">{format!("{}/{}", index + 1, count)}</span>
            <button
                type="button"
                class="ghost small next-alternative"
                aria-label="Next alternative"
                disabled=move || { busy() || index + 1 >= count }
                on:click=go(index + 1)
            >
                "›"
            </button>
        </span>
    }
}

/// A message being edited: Save stores the text as a new branch from
/// here (the earlier version stays, one `‹` away); Escape or Cancel
/// leaves it as it was.
#[component]
fn EditBox(id: MessageId, editing: RwSignal<Option<String>>) -> impl IntoView {
    let session = ChatSession::get();
    let text_ref = NodeRef::<leptos::html::Textarea>::new();
    let busy = move || session.chat.with(|c| c.is_streaming());
    let save = move || {
        let Some(text) = editing.get_untracked() else {
            return;
        };
        if text.trim().is_empty() || busy() {
            return;
        }
        session.edit_message(id.clone(), text);
        editing.set(None);
    };
    let save_on_submit = save.clone();
    Effect::new(move |_| {
        if let Some(area) = text_ref.get() {
            let _ = area.focus();
        }
    });
    view! {
        <form
            class="edit-box"
            on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                save_on_submit();
            }
        >
            <textarea
                node_ref=text_ref
                class="edit-text"
                aria-label="Edit message"
                rows="3"
                prop:value=move || editing.get().unwrap_or_default()
                on:input=move |ev| editing.set(Some(event_target_value(&ev)))
                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                    if ev.key() == "Escape" {
                        editing.set(None);
                    }
                }
            ></textarea>
            <div class="edit-actions">
                <button type="button" class="ghost small" on:click=move |_| editing.set(None)>"Cancel"</button>
                <button type="submit" class="small save-edit" disabled=busy>"Save"</button>
            </div>
        </form>
    }
}
