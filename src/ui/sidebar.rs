//! The conversation sidebar: new chat, search, list by last activity,
//! rename and delete (with confirmation). Collapses behind a button on
//! narrow screens. The first page of the list comes with the page
//! (`listing`), so it paints before the WASM and its socket are there.

use leptos::{ev, prelude::*};
use leptos_router::{components::A, hooks::use_navigate};

use super::{listing::first_page_resource, session::ChatSession};
use crate::{
    client::browser,
    protocol::{ClientFrame, ConversationId, ConversationSummary},
};

/// Conversations the list renders at first (and after each search);
/// "Show more" renders as many more of those the server sent.
pub const LIST_PAGE: usize = 50;

/// The sidebar.
#[component]
pub fn Sidebar(open: RwSignal<bool>, active: Signal<Option<String>>) -> impl IntoView {
    let session = ChatSession::get();
    let first_page = first_page_resource();
    let rendered = RwSignal::new(LIST_PAGE);
    // Only the conversations with this companion (`None`: all).
    let companion_filter = RwSignal::new(None::<String>);
    let keep = move |c: &ConversationSummary| {
        companion_filter.with(|f| f.as_ref().is_none_or(|id| *id == c.persona))
    };
    let on_search = move |ev: ev::Event| {
        session.search.set(event_target_value(&ev));
        rendered.set(LIST_PAGE);
        session.refresh_list();
    };
    view! {
        <nav class="sidebar" class:open=move || open.get() aria-label="Conversations">
            <div class="sidebar-head">
                <A href="/" attr:class="new-chat" on:click=move |_| open.set(false)>
                    "+ New chat"
                </A>
                <label for="search" class="visually-hidden">"Search conversations"</label>
                <input
                    id="search"
                    type="search"
                    placeholder="Search…"
                    autocomplete="off"
                    prop:value=move || session.search.get()
                    on:input=on_search
                />
                <Show when=move || session.companions.with(|c| c.len() > 1)>
                    <label for="companion-filter" class="visually-hidden">"Show conversations with"</label>
                    <select
                        id="companion-filter"
                        class="companion-filter"
                        on:change=move |ev| {
                            let id = event_target_value(&ev);
                            companion_filter.set(Some(id).filter(|id| !id.is_empty()));
                            rendered.set(LIST_PAGE);
                        }
                    >
                        <option value="" selected=move || companion_filter.with(Option::is_none)>"All companions"</option>
                        <For
                            each=move || session.companions.get()
                            key=|c| (c.id.clone(), c.fields.name.clone())
                            children=move |c| {
                                let id = c.id.clone();
                                let chosen = {
                                    let id = id.clone();
                                    move || companion_filter.with(|f| f.as_deref() == Some(id.as_str()))
                                };
                                view! { <option value=id selected=chosen>{c.fields.name.clone()}</option> }
                            }
                        />
                    </select>
                </Show>
            </div>
            <Suspense>
                {move || Suspend::new(async move {
                    // The list rendered with the page until the socket's answer.
                    let first_page = first_page.await;
                    let total = {
                        let first_page = first_page.clone();
                        move || {
                            if session.listed.get() {
                                session.conversations.with(|c| c.iter().filter(|c| keep(c)).count())
                            } else {
                                first_page.iter().filter(|c| keep(c)).count()
                            }
                        }
                    };
                    let shown = move || {
                        let take = rendered.get();
                        if session.listed.get() {
                            session.conversations.with(|c| {
                                c.iter().filter(|c| keep(c)).take(take).cloned().collect()
                            })
                        } else {
                            first_page.iter().filter(|c| keep(c)).take(take).cloned().collect::<Vec<_>>()
                        }
                    };
                    let empty = {
                        let total = total.clone();
                        move || total() == 0
                    };
                    let more = move || total() > rendered.get();
                    view! {
                        <ul class="conversation-list">
                            <For
                                each=shown
                                key=|c| (c.id.clone(), c.title.clone(), c.updated_at.clone())
                                children=move |c| view! { <ConversationItem conversation=c active open/> }
                            />
                        </ul>
                        <Show when=more>
                            <button
                                type="button"
                                class="ghost small show-more"
                                on:click=move |_| rendered.update(|n| *n += LIST_PAGE)
                            >
                                "Show more"
                            </button>
                        </Show>
                        <Show when=empty>
                            <p class="list-empty">
                                {move || if session.search.with(|s| s.trim().is_empty()) {
                                    "No conversations yet."
                                } else {
                                    "Nothing matches your search."
                                }}
                            </p>
                        </Show>
                    }
                })}
            </Suspense>
            <YourData open/>
        </nav>
    }
}

/// Bringing a conversation in (a JSON export) and taking everything out.
#[component]
fn YourData(open: RwSignal<bool>) -> impl IntoView {
    let session = ChatSession::get();
    let navigate = use_navigate();
    let importing = RwSignal::new(false);
    let problem = RwSignal::new(None::<String>);
    let on_import = move |ev: leptos::ev::Event| {
        importing.set(true);
        problem.set(None);
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            match browser::import_conversation(ev).await {
                Ok(made) => {
                    session.refresh_list();
                    open.set(false);
                    navigate(&format!("/c/{}", made.id), Default::default());
                }
                Err(reason) => problem.set(Some(format!("Could not import the chat: {reason}"))),
            }
            importing.set(false);
        });
    };
    view! {
        <div class="your-data">
            <label class="ghost small file-button" class:busy=move || importing.get()>
                "Import a chat (JSON)"
                <input type="file" class="visually-hidden" accept=".json,application/json" on:change=on_import/>
            </label>
            <a class="ghost small" href="/api/export" download="">"Download all my data"</a>
            <Show when=move || problem.with(Option::is_some)>
                <p class="import-error" role="alert">{move || problem.get()}</p>
            </Show>
        </div>
    }
}

/// One entry of the list.
#[component]
fn ConversationItem(
    conversation: ConversationSummary,
    active: Signal<Option<String>>,
    open: RwSignal<bool>,
) -> impl IntoView {
    let session = ChatSession::get();
    let navigate = use_navigate();
    let editing = RwSignal::new(false);
    let id = conversation.id.clone();
    let is_active = {
        let id = id.clone();
        move || active.get().as_deref() == Some(id.as_str())
    };
    let href = format!("/c/{}", conversation.id);
    let title = conversation.title.clone();
    let rename = {
        let id = id.clone();
        move |title: String| {
            editing.set(false);
            if !title.trim().is_empty() {
                session.send(ClientFrame::RenameConversation {
                    conversation_id: id.clone(),
                    title,
                });
            }
        }
    };
    let delete = {
        let id = id.clone();
        let title = conversation.title.clone();
        move |_| {
            if browser::confirm(&format!("Delete “{title}” and all its messages?")) {
                session.send(ClientFrame::DeleteConversation {
                    conversation_id: id.clone(),
                });
                if session
                    .chat
                    .with_untracked(|c| c.conversation_id.as_ref() == Some(&id))
                {
                    navigate("/", Default::default());
                }
            }
        }
    };
    view! {
        <li class="conversation" class:active=is_active.clone() data-conversation-id=id.to_string()>
            <Show
                when=move || editing.get()
                fallback={
                    let href = href.clone();
                    let title = title.clone();
                    let is_active = is_active.clone();
                    move || {
                        let is_active = is_active.clone();
                        let title = title.clone();
                        let href = href.clone();
                        view! {
                        <A
                            href=href
                            attr:class="conversation-link"
                            attr:aria-current=move || if is_active() { "page" } else { "false" }
                            on:click=move |_| open.set(false)
                        >
                            {title}
                        </A>
                        }
                    }
                }
            >
                <RenameInput initial=conversation.title.clone() on_done=Callback::new(rename.clone())/>
            </Show>
            <div class="conversation-actions">
                <button type="button" class="icon" aria-label="Rename" on:click=move |_| editing.set(true)>"✎"</button>
                <button type="button" class="icon" aria-label="Delete" on:click=delete.clone()>"×"</button>
            </div>
        </li>
    }
}

/// Inline title editor: Enter saves, Escape cancels.
#[component]
fn RenameInput(initial: String, on_done: Callback<String>) -> impl IntoView {
    let value = RwSignal::new(initial.clone());
    let input_ref = NodeRef::<leptos::html::Input>::new();
    let finish = move |title: Option<String>| {
        if let Some(title) = title {
            let _ = on_done.try_run(title);
        }
    };
    Effect::new(move |_| {
        if let Some(input) = input_ref.get() {
            let _ = input.focus();
            input.select();
        }
    });
    view! {
        <input
            class="rename"
            aria-label="New title"
            node_ref=input_ref
            prop:value=move || value.get()
            on:input=move |ev| value.set(event_target_value(&ev))
            on:keydown=move |ev: ev::KeyboardEvent| match ev.key().as_str() {
                "Enter" => finish(value.try_get_untracked()),
                "Escape" => finish(Some(String::new())),
                _ => {}
            }
            // Also fired as the input leaves the page (after Enter, or when
            // a notice re-renders the list): its signals may be gone then.
            on:blur=move |_| finish(value.try_get_untracked())
        />
    }
}

/// The conversation id in a `/c/:id` path.
pub fn conversation_from_param(param: Option<String>) -> Option<ConversationId> {
    param.filter(|p| !p.is_empty()).map(ConversationId)
}
