//! A new chat's empty state: a greeting and the choice of persona for the
//! conversation the first message will start.

use leptos::prelude::*;

use super::session::ChatSession;

/// A new chat: greeting and persona choice.
#[component]
pub fn EmptyState() -> impl IntoView {
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
