//! The message box: Enter sends, Shift+Enter inserts a newline.

use leptos::{ev, prelude::*};

/// The input row with Send / Stop.
#[component]
pub fn Composer(
    draft: RwSignal<String>,
    streaming: Signal<bool>,
    on_send: Callback<()>,
    on_stop: Callback<()>,
) -> impl IntoView {
    let on_keydown = move |ev: ev::KeyboardEvent| {
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            on_send.run(());
        }
    };
    view! {
        <form
            class="composer"
            on:submit=move |ev: ev::SubmitEvent| {
                ev.prevent_default();
                on_send.run(());
            }
        >
            <label for="composer-input" class="visually-hidden">"Message"</label>
            <textarea
                id="composer-input"
                name="message"
                rows="1"
                placeholder="Say something…"
                autocomplete="off"
                prop:value=move || draft.get()
                on:input=move |ev| draft.set(event_target_value(&ev))
                on:keydown=on_keydown
            ></textarea>
            <Show
                when=move || streaming.get()
                fallback=move || {
                    view! {
                        <button type="submit" class="send" aria-label="Send message">"Send"</button>
                    }
                }
            >
                <button
                    type="button"
                    class="stop"
                    aria-label="Stop the reply"
                    on:click=move |_| on_stop.run(())
                >
                    "Stop"
                </button>
            </Show>
        </form>
    }
}
