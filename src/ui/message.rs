//! One message bubble. User text is inserted as text; model output as
//! sanitised markdown (`client::markdown`), never as raw HTML.

use std::time::Duration;

use leptos::prelude::*;

use crate::{
    client::{browser, markdown, state::ViewMessage},
    protocol::{FinishReason, Role},
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
    let streaming = message.streaming;
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
            <div class="bubble">
                {match message.message.role {
                    Role::User => view! { <div class="content">{message.message.content.clone()}</div> }.into_any(),
                    Role::Assistant => {
                        let html = markdown::render(&message.message.content);
                        view! { <div class="content markdown" inner_html=html></div> }.into_any()
                    }
                }}
                {streaming.then(|| view! { <span class="cursor" aria-hidden="true"></span> })}
            </div>
            {finish
                .filter(|f| !f.is_empty())
                .map(|f| view! { <div class="finish" data-finish=f>{f}</div> })}
            <div class="meta">
                {stats.map(|s| view! { <span class="stats">{s}</span> })}
                {(!streaming && !message.pending).then(|| view! {
                    <button type="button" class="copy-message" aria-label="Copy message" on:click=copy>
                        {move || if copied.get() { "Copied" } else { "Copy" }}
                    </button>
                })}
            </div>
        </article>
    }
}
