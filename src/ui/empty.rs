//! A new chat's empty state: a welcome, and the companion the conversation
//! the first message starts will be with (its greeting shown first).

use leptos::prelude::*;

use super::companions::CompanionGallery;

/// A new chat: welcome and companion choice.
#[component]
pub fn EmptyState() -> impl IntoView {
    view! {
        <div class="empty">
            <h2>"Hi, I'm here for you."</h2>
            <p>"Choose who to talk to, or make your own — replies stream in as they are written."</p>
            <CompanionGallery/>
        </div>
    }
}
