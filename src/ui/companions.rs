//! Companions on the page: the gallery a new chat starts from (the presets
//! and the user's own, with their pictures), the greeting a new chat opens
//! with (`‹ 1/3 ›` between its alternates), importing a character card,
//! and the editor (make, change, copy a preset, picture, export, delete).
//! The calls are `client::api`'s, through [`browser`].

use leptos::{ev, prelude::*};

use super::session::{split_greetings, ChatSession, Editor};
use crate::{
    client::browser,
    protocol::{CompanionDraft, CompanionInfo},
};

/// The gallery, the greeting preview and the editor of a new chat.
#[component]
pub fn CompanionGallery() -> impl IntoView {
    let session = ChatSession::get();
    let importing = RwSignal::new(false);
    let on_import = move |ev: ev::Event| {
        importing.set(true);
        leptos::task::spawn_local(async move {
            match browser::import_card(ev).await {
                Ok(saved) => session.companion_saved(saved),
                Err(reason) => session
                    .companion_error
                    .set(Some(format!("Could not import the card: {reason}"))),
            }
            importing.set(false);
        });
    };
    view! {
        <section class="companions" aria-label="Companions">
            <div class="companion-grid" role="radiogroup" aria-label="Companion">
                <For
                    each=move || session.companions.get()
                    key=|c| (c.id.clone(), c.updated_at.clone(), c.fields.name.clone())
                    children=move |c| view! { <CompanionCard companion=c/> }
                />
            </div>
            <div class="companion-actions">
                <button type="button" class="ghost small" on:click=move |_| session.edit_companion(None)>
                    "+ New companion"
                </button>
                <label class="ghost small file-button" class:busy=move || importing.get()>
                    "Import a character card"
                    <input
                        type="file"
                        class="visually-hidden"
                        accept=".png,.json,image/png,application/json"
                        on:change=on_import
                    />
                </label>
            </div>
            <Show when=move || session.companion_error.with(Option::is_some)>
                <p class="companion-error" role="alert">{move || session.companion_error.get()}</p>
            </Show>
            <GreetingPreview/>
            <CompanionEditor/>
        </section>
    }
}

/// One companion of the gallery: choosing it, and editing it (a preset is copied).
#[component]
fn CompanionCard(companion: CompanionInfo) -> impl IntoView {
    let session = ChatSession::get();
    let id = companion.id.clone();
    let selected = Signal::derive({
        let id = id.clone();
        move || session.chosen_companion().is_some_and(|c| c.id == id)
    });
    let name = companion.fields.name.clone();
    let edit_label = if companion.preset {
        format!("Copy {name} into a new companion")
    } else {
        format!("Edit {name}")
    };
    let for_edit = companion.clone();
    view! {
        <div class="companion-card" class:selected=move || selected.get() data-companion=name.clone()>
            <button
                type="button"
                class="companion-choose"
                role="radio"
                aria-checked=move || selected.get().to_string()
                on:click=move |_| session.choose_companion(id.clone())
            >
                <Avatar companion=companion.clone()/>
                <strong>{name.clone()}</strong>
                <span class="companion-description">{companion.fields.description.clone()}</span>
            </button>
            <button
                type="button"
                class="ghost small companion-edit"
                aria-label=edit_label
                on:click=move |_| session.edit_companion(Some(&for_edit))
            >
                {if companion.preset { "Copy" } else { "Edit" }}
            </button>
        </div>
    }
}

/// A companion's picture, else its emoji, else its initial.
#[component]
pub fn Avatar(companion: CompanionInfo) -> impl IntoView {
    let initial: String = companion.fields.name.chars().take(1).collect();
    match (companion.avatar_url, companion.fields.emoji) {
        (Some(url), _) => {
            view! { <img class="avatar" src=url alt="" width="48" height="48"/> }.into_any()
        }
        (None, Some(emoji)) => {
            view! { <span class="avatar emoji" aria-hidden="true">{emoji}</span> }.into_any()
        }
        (None, None) => {
            view! { <span class="avatar initial" aria-hidden="true">{initial}</span> }.into_any()
        }
    }
}

/// The greeting a new chat with the chosen companion opens with, and the
/// choice between its alternates.
#[component]
fn GreetingPreview() -> impl IntoView {
    let session = ChatSession::get();
    let greetings = Memo::new(move |_| session.greetings());
    let count = move || greetings.with(Vec::len);
    let index = move || (session.greeting.get() as usize).min(count().saturating_sub(1));
    view! {
        <Show when=move || { count() > 0 }>
            <div class="greeting-preview" aria-live="polite">
                <p class="greeting-text">
                    {move || greetings.with(|g| g.get(index()).cloned().unwrap_or_default())}
                </p>
                <Show when=move || { count() > 1 }>
                    <div class="swipe" role="group" aria-label="Greeting">
                        <button
                            type="button"
                            class="ghost small"
                            aria-label="Previous greeting"
                            prop:disabled=move || { index() == 0 }
                            on:click=move |_| session.greeting.update(|g| *g = g.saturating_sub(1))
                        >
                            "‹"
                        </button>
                        <span class="swipe-count">{move || format!("{}/{}", index() + 1, count())}</span>
                        <button
                            type="button"
                            class="ghost small"
                            aria-label="Next greeting"
                            prop:disabled=move || { index() + 1 >= count() }
                            on:click=move |_| session.greeting.update(|g| *g += 1)
                        >
                            "›"
                        </button>
                    </div>
                </Show>
            </div>
        </Show>
    }
}

/// One text area of the editor, bound to a field of the draft.
#[component]
fn DraftText(
    label: &'static str,
    name: &'static str,
    rows: u32,
    #[prop(optional)] placeholder: &'static str,
    get: fn(&CompanionDraft) -> &String,
    put: fn(&mut CompanionDraft, String),
) -> impl IntoView {
    let editor = ChatSession::get().editor;
    view! {
        <label>
            {label}
            <textarea
                name=name
                rows=rows
                placeholder=placeholder
                prop:value=move || editor.with(|e| e.as_ref().map(|e| get(&e.draft).clone()).unwrap_or_default())
                on:input=move |ev| {
                    let text = event_target_value(&ev);
                    editor.update(|e| {
                        if let Some(e) = e {
                            put(&mut e.draft, text);
                        }
                    });
                }
            ></textarea>
        </label>
    }
}

/// The editor dialog of a new or existing companion.
#[component]
fn CompanionEditor() -> impl IntoView {
    let session = ChatSession::get();
    let editor = session.editor;
    let saving = RwSignal::new(false);
    let value = move |get: fn(&CompanionDraft) -> String| {
        move || editor.with(|e| e.as_ref().map(|e| get(&e.draft)).unwrap_or_default())
    };
    let set = move |put: fn(&mut CompanionDraft, String)| {
        move |ev: ev::Event| {
            let text = event_target_value(&ev);
            editor.update(|e| {
                if let Some(e) = e {
                    put(&mut e.draft, text);
                }
            });
        }
    };
    let existing = move || editor.with(|e| e.as_ref().and_then(|e| e.id.clone()));
    let close = move || {
        editor.set(None);
        session.companion_error.set(None);
    };
    let on_submit = move |ev: ev::SubmitEvent| {
        ev.prevent_default();
        let Some(Editor {
            id,
            mut draft,
            alternates,
            ..
        }) = editor.get_untracked()
        else {
            return;
        };
        draft.alternate_greetings = split_greetings(&alternates);
        saving.set(true);
        leptos::task::spawn_local(async move {
            match browser::save_companion(id, draft).await {
                Ok(saved) => {
                    session.companion_saved(saved);
                    editor.set(None);
                }
                Err(reason) => session.companion_error.set(Some(reason)),
            }
            saving.set(false);
        });
    };
    let on_picture = move |ev: ev::Event| {
        let Some(id) = existing() else { return };
        leptos::task::spawn_local(async move {
            match browser::set_avatar(id, ev).await {
                Ok(saved) => {
                    editor.update(|e| {
                        if let Some(e) = e {
                            e.avatar_url = saved.avatar_url.clone();
                        }
                    });
                    session.companion_saved(saved);
                }
                Err(reason) => session.companion_error.set(Some(reason)),
            }
        });
    };
    let on_remove_picture = move |_| {
        let Some(id) = existing() else { return };
        leptos::task::spawn_local(async move {
            match browser::remove_avatar(id).await {
                Ok(saved) => {
                    editor.update(|e| {
                        if let Some(e) = e {
                            e.avatar_url = None;
                        }
                    });
                    session.companion_saved(saved);
                }
                Err(reason) => session.companion_error.set(Some(reason)),
            }
        });
    };
    let on_delete = move |_| {
        let Some(id) = existing() else { return };
        let name =
            editor.with_untracked(|e| e.as_ref().map(|e| e.draft.name.clone()).unwrap_or_default());
        if !browser::confirm(&format!(
            "Delete {name}? Its conversations stay, with the default companion."
        )) {
            return;
        }
        leptos::task::spawn_local(async move {
            match browser::delete_companion(id.clone()).await {
                Ok(()) => {
                    session.companion_deleted(&id);
                    editor.set(None);
                }
                Err(reason) => session.companion_error.set(Some(reason)),
            }
        });
    };
    let on_key = move |ev: ev::KeyboardEvent| {
        if ev.key() == "Escape" {
            close();
        }
    };
    view! {
        <Show when=move || editor.with(Option::is_some)>
            <div class="dialog-backdrop">
                <form
                    class="companion-editor"
                    role="dialog"
                    aria-modal="true"
                    aria-labelledby="companion-editor-title"
                    on:submit=on_submit
                    on:keydown=on_key
                >
                    <h2 id="companion-editor-title">
                        {move || if existing().is_some() { "Edit companion" } else { "New companion" }}
                    </h2>
                    <div class="editor-row">
                        <label>
                            "Name"
                            <input
                                name="name"
                                required
                                maxlength="100"
                                autofocus
                                prop:value=value(|d| d.name.clone())
                                on:input=set(|d, v| d.name = v)
                            />
                        </label>
                        <label class="emoji-field">
                            "Emoji"
                            <input
                                name="emoji"
                                maxlength="8"
                                placeholder="🙂"
                                prop:value=value(|d| d.emoji.clone().unwrap_or_default())
                                on:input=set(|d, v| d.emoji = Some(v).filter(|v| !v.trim().is_empty()))
                            />
                        </label>
                    </div>
                    <DraftText label="Description" name="description" rows=2 get={|d| &d.description} put={|d, v| d.description = v}/>
                    <DraftText label="Personality" name="personality" rows=2 get={|d| &d.personality} put={|d, v| d.personality = v}/>
                    <DraftText label="Scenario" name="scenario" rows=2 get={|d| &d.scenario} put={|d, v| d.scenario = v}/>
                    <DraftText label="Greeting (the first message of a new chat)" name="greeting" rows=2 get={|d| &d.greeting} put={|d, v| d.greeting = v}/>
                    <label>
                        "Other greetings (separated by a line of ---)"
                        <textarea
                            name="alternate_greetings"
                            rows="3"
                            prop:value=move || editor.with(|e| e.as_ref().map(|e| e.alternates.clone()).unwrap_or_default())
                            on:input=move |ev| {
                                let text = event_target_value(&ev);
                                editor.update(|e| {
                                    if let Some(e) = e {
                                        e.alternates = text;
                                    }
                                });
                            }
                        ></textarea>
                    </label>
                    <DraftText label="Example dialogue" name="example_dialogue" rows=3 placeholder="<START>\n{{user}}: Hi!\n{{char}}: Hello there." get={|d| &d.example_dialogue} put={|d, v| d.example_dialogue = v}/>
                    <DraftText label="System prompt (optional; {{original}} is the server's default)" name="system_prompt" rows=3 get={|d| &d.system_prompt} put={|d, v| d.system_prompt = v}/>
                    <Show when=move || existing().is_some()>
                        <div class="editor-picture">
                            {move || editor.with(|e| e.as_ref().and_then(|e| e.avatar_url.clone())).map(|url| view! {
                                <img class="avatar" src=url alt="Picture" width="48" height="48"/>
                            })}
                            <label class="ghost small file-button">
                                "Choose a picture"
                                <input
                                    type="file"
                                    class="visually-hidden"
                                    name="avatar"
                                    accept="image/png,image/jpeg,image/gif,image/webp"
                                    on:change=on_picture
                                />
                            </label>
                            <Show when=move || editor.with(|e| e.as_ref().is_some_and(|e| e.avatar_url.is_some()))>
                                <button type="button" class="ghost small" on:click=on_remove_picture>
                                    "Remove picture"
                                </button>
                            </Show>
                        </div>
                        <div class="editor-export">
                            <a class="ghost small" download="" href=move || format!("/api/companions/{}/card.png", existing().unwrap_or_default())>
                                "Export PNG card"
                            </a>
                            <a class="ghost small" download="" href=move || format!("/api/companions/{}/card.json", existing().unwrap_or_default())>
                                "Export JSON card"
                            </a>
                            <button type="button" class="ghost small danger" on:click=on_delete>
                                "Delete"
                            </button>
                        </div>
                    </Show>
                    <Show when=move || session.companion_error.with(Option::is_some)>
                        <p class="companion-error" role="alert">{move || session.companion_error.get()}</p>
                    </Show>
                    <div class="editor-buttons">
                        <button type="button" class="ghost" on:click=move |_| close()>"Cancel"</button>
                        <button type="submit" prop:disabled=move || saving.get()>"Save"</button>
                    </div>
                </form>
            </div>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::session::GREETING_SEPARATOR;

    #[test]
    fn alternate_greetings_are_separated_by_a_line_of_dashes() {
        let greetings = vec!["Hi!\n\nHow are you?".to_owned(), "Yo".to_owned()];
        let text = greetings.join(GREETING_SEPARATOR);
        assert_eq!(split_greetings(&text), greetings);
        assert_eq!(split_greetings("a\n---\n\n---\n b "), vec!["a", "b"]);
        assert!(split_greetings("").is_empty());
    }
}
