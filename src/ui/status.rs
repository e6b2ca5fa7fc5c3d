//! The connection indicator.

use leptos::prelude::*;

use crate::client::ConnStatus;

/// Shows connected / reconnecting, announced politely to screen readers.
#[component]
pub fn StatusBadge(status: RwSignal<ConnStatus>) -> impl IntoView {
    view! {
        <span
            class="status"
            role="status"
            aria-live="polite"
            data-status=move || status.get().as_str()
        >
            <span class="status-dot" aria-hidden="true"></span>
            <span class="status-label">{move || status.get().label()}</span>
        </span>
    }
}
