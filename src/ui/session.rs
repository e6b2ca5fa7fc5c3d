//! The chat session shared by every component: one socket per page, the open
//! conversation's view, the conversation list and the personas.
//!
//! Provided once by `App` as context, so navigating between conversations
//! keeps the socket, the draft and the view state.

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use leptos::prelude::*;

use crate::{
    client::{state::ChatView, ConnStatus},
    protocol::{ClientFrame, ConversationSummary, PersonaInfo, ServerFrame},
};

/// Signals and the outbox of the page's one connection.
#[derive(Clone, Copy)]
pub struct ChatSession {
    pub chat: RwSignal<ChatView>,
    pub status: RwSignal<ConnStatus>,
    pub draft: RwSignal<String>,
    pub conversations: RwSignal<Vec<ConversationSummary>>,
    /// The search the list shows, if any.
    pub search: RwSignal<String>,
    pub personas: RwSignal<Vec<PersonaInfo>>,
    /// Persona for the next new conversation (`None`: the server's default).
    pub persona: RwSignal<Option<String>>,
    outbox: StoredValue<UnboundedSender<ClientFrame>>,
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
            search: RwSignal::new(String::new()),
            personas: RwSignal::new(Vec::new()),
            persona: RwSignal::new(None),
            outbox: StoredValue::new(tx),
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
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub fn on_frame(&self, frame: ServerFrame) {
        match &frame {
            ServerFrame::Hello { personas, .. } => {
                self.personas.set(personas.clone());
                // (Re)connected: follow the open conversation again from a snapshot.
                if let Some(conversation_id) =
                    self.chat.with_untracked(|c| c.conversation_id.clone())
                {
                    self.send(ClientFrame::Subscribe { conversation_id });
                }
                self.refresh_list();
            }
            ServerFrame::Conversations { items, query } => {
                let current = self.search.get_untracked();
                let current = (!current.trim().is_empty()).then_some(current);
                // A late answer to an older search is dropped.
                if *query == current {
                    self.conversations.set(items.clone());
                }
                return;
            }
            ServerFrame::Accepted {
                duplicate: false, ..
            }
            | ServerFrame::Done { .. } => self.refresh_list(),
            _ => {}
        }
        self.chat.update(|c| c.apply(&frame));
    }

    /// Opens the socket once the page is hydrated (browser only).
    pub fn connect(&self) {
        #[cfg(feature = "hydrate")]
        {
            let session = *self;
            Effect::new(move |_| {
                let Some(rx) = session.inbox.try_update_value(|rx| rx.take()).flatten() else {
                    return;
                };
                crate::client::socket::spawn(
                    rx,
                    move |frame| session.on_frame(frame),
                    move |s| session.status.set(s),
                );
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = self.inbox;
    }
}
