//! One message bubble. Content is inserted as text, never as HTML.

use leptos::prelude::*;

use crate::{
    client::state::ViewMessage,
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
        FinishReason::Error => "interrupted by an error",
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
                <div class="content">{message.message.content.clone()}</div>
                {streaming.then(|| view! { <span class="cursor" aria-hidden="true"></span> })}
            </div>
            {finish
                .filter(|f| !f.is_empty())
                .map(|f| view! { <div class="finish" data-finish=f>{f}</div> })}
            {stats.map(|s| view! { <div class="stats">{s}</div> })}
        </article>
    }
}
