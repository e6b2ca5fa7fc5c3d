//! The chat session shared by every component: one socket per page, the open
//! conversation's view, the conversation list and the personas.
//!
//! Provided once by `App` as context, so navigating between conversations
//! keeps the socket, the draft and the view state.

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use leptos::prelude::*;

use crate::{
    card_text::{greetings, substitute, USER_NAME},
    client::{
        browser, new_client_msg_id, now_rfc3339,
        state::{ChatView, Retry},
        ConnStatus,
    },
    protocol::{
        Changed, ClientFrame, CompanionDraft, CompanionInfo, ConversationId, ConversationSummary,
        MessageId, ModelSetup, PersonaInfo, ServerFrame,
    },
};

/// Signals and the outbox of the page's one connection.
#[derive(Clone, Copy)]
pub struct ChatSession {
    pub chat: RwSignal<ChatView>,
    pub status: RwSignal<ConnStatus>,
    pub draft: RwSignal<String>,
    pub conversations: RwSignal<Vec<ConversationSummary>>,
    /// `conversations` holds the server's answer (until then the sidebar
    /// shows the list rendered with the page).
    pub listed: RwSignal<bool>,
    /// The search the list shows, if any.
    pub search: RwSignal<String>,
    pub personas: RwSignal<Vec<PersonaInfo>>,
    /// The models a conversation may pick (`hello.models`; empty: no choice).
    pub models: RwSignal<Vec<String>>,
    /// The server's default model (`hello.model`).
    pub default_model: RwSignal<Option<String>>,
    /// The model picked for the next new conversation (`None`: the default).
    pub model: RwSignal<Option<String>>,
    /// Persona (companion id) for the next new conversation (`None`: the
    /// server's default).
    pub persona: RwSignal<Option<String>>,
    /// The presets and the user's own companions (`GET /api/companions`).
    pub companions: RwSignal<Vec<CompanionInfo>>,
    /// Which greeting of the chosen companion a new conversation starts with.
    pub greeting: RwSignal<u32>,
    /// The companion editor, when open.
    pub editor: RwSignal<Option<Editor>>,
    /// Why the last companion action failed, until the next one.
    pub companion_error: RwSignal<Option<String>>,
    /// The model's set-up while it is not ready (`None`: ready).
    pub model_setup: RwSignal<Option<ModelSetup>>,
    outbox: StoredValue<UnboundedSender<ClientFrame>>,
    /// Frames were applied to `chat` since the page last rendered it.
    render_pending: StoredValue<bool>,
    inbox: StoredValue<Option<UnboundedReceiver<ClientFrame>>>,
}

impl ChatSession {
    /// Creates the session and provides it as context.
    pub fn provide() -> Self {
        let (tx, rx) = unbounded::<ClientFrame>();
        let session = Self {
            chat: RwSignal::new(ChatView::default()),
            status: RwSignal::new(ConnStatus::Connecting),
            draft: RwSignal::new(String::new()),
            conversations: RwSignal::new(Vec::new()),
            listed: RwSignal::new(false),
            search: RwSignal::new(String::new()),
            personas: RwSignal::new(Vec::new()),
            models: RwSignal::new(Vec::new()),
            default_model: RwSignal::new(None),
            model: RwSignal::new(None),
            persona: RwSignal::new(None),
            companions: RwSignal::new(Vec::new()),
            greeting: RwSignal::new(0),
            editor: RwSignal::new(None),
            companion_error: RwSignal::new(None),
            model_setup: RwSignal::new(None),
            outbox: StoredValue::new(tx),
            render_pending: StoredValue::new(false),
            inbox: StoredValue::new(Some(rx)),
        };
        provide_context(session);
        session
    }

    /// The session of the current component tree.
    pub fn get() -> Self {
        expect_context::<Self>()
    }

    /// Queues a frame for the server (held while offline).
    pub fn send(&self, frame: ClientFrame) {
        self.outbox.with_value(|tx| {
            let _ = tx.unbounded_send(frame);
        });
    }

    /// Asks for the conversation list (with the current search).
    pub fn refresh_list(&self) {
        let query = self.search.get_untracked();
        let query = (!query.trim().is_empty()).then_some(query);
        self.send(ClientFrame::ListConversations { query });
    }

    /// Applies a server frame to the session's signals (called by the socket,
    /// which exists only in the browser build).
    pub fn on_frame(&self, frame: ServerFrame) {
        match &frame {
            ServerFrame::Hello {
                personas,
                model_setup,
                models,
                model,
                ..
            } => {
                self.personas.set(personas.clone());
                self.models.set(models.clone());
                self.default_model.set(model.clone());
                self.follow_model_setup(model_setup.clone());
                self.load_companions();
                // (Re)connected: follow the open conversation again from a snapshot.
                if let Some(conversation_id) =
                    self.chat.with_untracked(|c| c.conversation_id.clone())
                {
                    self.send(ClientFrame::Subscribe { conversation_id });
                }
                self.refresh_list();
            }
            ServerFrame::Changed { what } => match what {
                Changed::Companions => self.load_companions(),
                Changed::Conversations => self.refresh_list(),
            },
            ServerFrame::Conversations { items, query } => {
                let current = self.search.get_untracked();
                let current = (!current.trim().is_empty()).then_some(current);
                // A late answer to an older search is dropped.
                if *query == current {
                    self.conversations.set(items.clone());
                    self.listed.set(true);
                }
                return;
            }
            ServerFrame::Accepted {
                duplicate: false, ..
            }
            | ServerFrame::Done { .. } => self.refresh_list(),
            _ => {}
        }
        self.apply_to_view(&frame);
        // A refused message the user cannot simply resend comes back to the
        // composer (unless they already started typing something else).
        if let Some(text) = self
            .chat
            .try_update_untracked(|c| c.returned_draft.take())
            .flatten()
        {
            if self.draft.with_untracked(|d| d.trim().is_empty()) {
                self.draft.set(text);
            }
        }
    }

    /// Shows the model's set-up while it is not ready, following it until it
    /// is (a `hello` says whether it is; reconnecting does not start a second
    /// follower while one runs).
    fn follow_model_setup(&self, setup: Option<ModelSetup>) {
        let following = self
            .model_setup
            .with_untracked(|s| matches!(s, Some(ModelSetup::Installing { .. })));
        self.model_setup.set(setup.clone());
        if following || !matches!(setup, Some(ModelSetup::Installing { .. })) {
            return;
        }
        let signal = self.model_setup;
        browser::follow_model_setup(move |now| {
            signal.set(Some(now).filter(|s| !s.is_ready()));
        });
    }

    /// Applies a frame to the view. In the browser the page re-renders at
    /// most once per animation frame, however many deltas arrive within it
    /// (elsewhere [`browser::before_next_paint`] re-renders at once).
    fn apply_to_view(&self, frame: &ServerFrame) {
        self.chat.update_untracked(|c| c.apply(frame));
        if !self.render_pending.get_value() {
            self.render_pending.set_value(true);
            let session = *self;
            browser::before_next_paint(move || {
                if session.render_pending.get_value() {
                    session.render_pending.set_value(false);
                    session.chat.notify();
                }
            });
        }
    }

    /// Sends `text` as a new message of the open conversation (or a new
    /// one, with the chosen companion and its chosen greeting).
    pub fn send_text(&self, text: String) {
        let client_msg_id = new_client_msg_id();
        let conversation_id = self.chat.with_untracked(|c| c.conversation_id.clone());
        let new_chat = conversation_id.is_none();
        let (persona, greeting) = if new_chat {
            let index = self.greeting.get_untracked();
            let greeting = self.chosen_greeting_untracked(index);
            (
                self.persona.get_untracked(),
                greeting.map(|text| (index, text)),
            )
        } else {
            (None, None)
        };
        self.chat.update(|c| {
            c.notice = None;
            if let Some((_, greeting)) = &greeting {
                c.add_pending_greeting(greeting, now_rfc3339());
            }
            c.add_pending(&client_msg_id, &text, now_rfc3339());
        });
        self.send(ClientFrame::Send {
            client_msg_id,
            conversation_id,
            text,
            persona,
            greeting: greeting.map(|(index, _)| index),
            model: new_chat.then(|| self.model.get_untracked()).flatten(),
        });
    }

    /// The model of the open conversation (the one picked for a new chat),
    /// if the server offers a choice.
    pub fn current_model(&self) -> Option<String> {
        let conversation = self.chat.with(|c| c.conversation_id.clone());
        // A conversation made a moment ago may not be listed yet: it is on
        // the model picked for it.
        let listed = conversation.and_then(|id| {
            self.conversations
                .with(|list| list.iter().find(|c| c.id == id).map(|c| c.model.clone()))
        });
        let picked = match listed {
            Some(model) => model,
            None => self.model.get(),
        };
        picked.or_else(|| self.default_model.get())
    }

    /// Picks `model` for the open conversation's next replies (stored at
    /// once), or for the next new conversation.
    pub fn pick_model(&self, model: String) {
        match self.chat.with_untracked(|c| c.conversation_id.clone()) {
            Some(conversation_id) => self.send(ClientFrame::SetModel {
                conversation_id,
                model,
            }),
            None => self.model.set(Some(model)),
        }
    }

    /// Fetches the companions (after each `hello`: a new tab, a reconnect).
    pub fn load_companions(&self) {
        let companions = self.companions;
        leptos::task::spawn_local(async move {
            if let Some(list) = browser::companions().await {
                companions.set(list);
            }
        });
    }

    /// The companion a new conversation starts with: the chosen one, else
    /// the first (the server's default preset).
    pub fn chosen_companion(&self) -> Option<CompanionInfo> {
        let chosen = self.persona.get();
        self.companions.with(|all| {
            chosen
                .and_then(|id| all.iter().find(|c| c.id == id))
                .or_else(|| all.first())
                .cloned()
        })
    }

    /// Chooses the companion for the next new conversation; another
    /// companion starts at its first greeting.
    pub fn choose_companion(&self, id: String) {
        if self.persona.get_untracked().as_deref() != Some(id.as_str()) {
            self.persona.set(Some(id));
            self.greeting.set(0);
        }
    }

    /// The greetings of the chosen companion, macros filled in.
    pub fn greetings(&self) -> Vec<String> {
        self.chosen_companion()
            .map(|c| greetings_of(&c))
            .unwrap_or_default()
    }

    fn chosen_greeting_untracked(&self, index: u32) -> Option<String> {
        let greetings = untrack(|| self.greetings());
        greetings
            .get(index as usize)
            .or_else(|| greetings.first())
            .cloned()
    }

    /// Opens the editor on a new companion (`None`) or a copy of one.
    pub fn edit_companion(&self, companion: Option<&CompanionInfo>) {
        self.companion_error.set(None);
        self.editor.set(Some(match companion {
            Some(c) if !c.preset => Editor {
                id: Some(c.id.clone()),
                draft: c.fields.clone(),
                alternates: c.fields.alternate_greetings.join(GREETING_SEPARATOR),
                avatar_url: c.avatar_url.clone(),
            },
            Some(c) => Editor {
                id: None,
                draft: CompanionDraft {
                    name: format!("{} (copy)", c.fields.name),
                    ..c.fields.clone()
                },
                alternates: c.fields.alternate_greetings.join(GREETING_SEPARATOR),
                avatar_url: None,
            },
            None => Editor::default(),
        }));
    }

    /// A companion was made, changed or imported: the list shows it and
    /// it is the one a new conversation starts with.
    pub fn companion_saved(&self, saved: CompanionInfo) {
        self.companion_error.set(None);
        let id = saved.id.clone();
        self.companions
            .update(|all| match all.iter_mut().find(|c| c.id == id) {
                Some(c) => *c = saved,
                None => {
                    let at = all.iter().take_while(|c| c.preset).count();
                    all.insert(at, saved);
                }
            });
        self.choose_companion(id);
    }

    /// A companion was deleted: the list drops it; the default is chosen.
    pub fn companion_deleted(&self, id: &str) {
        self.companions.update(|all| all.retain(|c| c.id != id));
        if self.persona.get_untracked().as_deref() == Some(id) {
            self.persona.set(None);
            self.greeting.set(0);
        }
    }

    /// Asks for the page of messages before the first one shown, when
    /// older ones exist and none is on its way (`client::earlier`).
    pub fn load_earlier(&self) {
        let ask = self
            .chat
            .try_update_untracked(|c| {
                let conversation_id = c.conversation_id.clone()?;
                let before = c.earlier_cursor()?;
                c.mark_loading_earlier();
                Some((conversation_id, before))
            })
            .flatten();
        if let Some((conversation_id, before)) = ask {
            self.chat.notify();
            self.send(ClientFrame::History {
                conversation_id,
                before: Some(before),
                limit: None,
            });
        }
    }

    /// Sends the frame `frame` makes for the open conversation, if one is
    /// open, clearing the notice (an action on the conversation).
    fn act_on_open(&self, frame: impl FnOnce(ConversationId) -> ClientFrame) {
        if let Some(conversation_id) = self.chat.with_untracked(|c| c.conversation_id.clone()) {
            self.chat.update(|c| c.notice = None);
            self.send(frame(conversation_id));
        }
    }

    /// Asks for the last reply of the open conversation again.
    pub fn regenerate(&self) {
        self.act_on_open(|conversation_id| ClientFrame::Regenerate {
            conversation_id,
            client_msg_id: new_client_msg_id(),
        });
    }

    /// Shows alternative `index` of the turn of `message_id` (a swipe, or
    /// another branch); every tab is shown the path by a `snapshot`.
    pub fn select_alternative(&self, message_id: MessageId, index: u32) {
        self.act_on_open(|conversation_id| ClientFrame::SelectAlternative {
            conversation_id,
            message_id,
            index,
        });
    }

    /// Deletes message `message_id` and everything after it, once the
    /// person confirms.
    pub fn delete_message(&self, message_id: MessageId) {
        if browser::confirm("Delete this message and everything after it, on every branch?") {
            self.act_on_open(|conversation_id| ClientFrame::DeleteMessage {
                conversation_id,
                message_id,
            });
        }
    }

    /// Stores `text` as a new version of message `message_id` (a branch
    /// from there); a user message's edit gets a new reply.
    pub fn edit_message(&self, message_id: MessageId, text: String) {
        self.act_on_open(|conversation_id| ClientFrame::Edit {
            conversation_id,
            client_msg_id: new_client_msg_id(),
            message_id,
            text,
        });
    }

    /// Asks for more of the open conversation's last reply, which ended early.
    pub fn continue_reply(&self) {
        self.act_on_open(|conversation_id| ClientFrame::Continue {
            conversation_id,
            client_msg_id: new_client_msg_id(),
        });
    }

    /// Does what the current notice's "Retry" offers.
    pub fn retry(&self) {
        let retry = self
            .chat
            .with_untracked(|c| c.notice.as_ref().and_then(|n| n.retry.clone()));
        match retry {
            Some(Retry::Resend(text)) => self.send_text(text),
            Some(Retry::Regenerate) => self.regenerate(),
            None => {}
        }
    }

    /// Opens the socket once the page is hydrated (browser only: effects
    /// never run on the server).
    pub fn connect(&self) {
        let session = *self;
        Effect::new(move |_| {
            let Some(rx) = session.inbox.try_update_value(|rx| rx.take()).flatten() else {
                return;
            };
            browser::open_socket(
                rx,
                move |frame| session.on_frame(frame),
                move |s| session.status.set(s),
            );
        });
    }
}

/// The companion editor's state: which companion (`None`: a new one) and
/// the fields as typed so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Editor {
    pub id: Option<String>,
    pub draft: CompanionDraft,
    /// The alternate greetings as typed (split when saved).
    pub alternates: String,
    pub avatar_url: Option<String>,
}

/// Between two alternate greetings in the editor: a line of `---`.
pub const GREETING_SEPARATOR: &str = "\n---\n";

/// The alternate greetings typed in the editor, one per part between
/// separator lines.
pub fn split_greetings(text: &str) -> Vec<String> {
    let mut greetings = Vec::new();
    let mut current = String::new();
    let mut finish = |current: &mut String| {
        let greeting = current.trim();
        if !greeting.is_empty() {
            greetings.push(greeting.to_owned());
        }
        current.clear();
    };
    for line in text.lines() {
        if line.trim() == "---" {
            finish(&mut current);
        } else {
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(line);
        }
    }
    finish(&mut current);
    greetings
}

/// A companion's greetings (its greeting, then its alternates; empty ones
/// left out), with `{{char}}` and `{{user}}` filled in as the server does.
pub fn greetings_of(companion: &CompanionInfo) -> Vec<String> {
    let fields = &companion.fields;
    greetings(&fields.greeting, &fields.alternate_greetings)
        .into_iter()
        .map(|g| substitute(g, fields.name.trim(), USER_NAME))
        .collect()
}
