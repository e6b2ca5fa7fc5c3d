//! Companions: the characters people chat with. The community's format for
//! them is the character card ([`card`]: V2 and V3, JSON or PNG via [`png`]),
//! with an optional lorebook ([`lore`]); [`prompt`] turns a card into the
//! system prompt of a reply (`{{char}}` and `{{user}}` filled in, the
//! lorebook entries the recent messages call up); [`service`] is what the
//! HTTP endpoints ([`routes`]) do; pictures are checked by
//! [`avatar`].

pub mod avatar;
pub mod card;
pub mod lore;
pub mod png;
pub mod prompt;
pub mod routes;
pub mod service;

pub(crate) use service::file_name;
pub use service::{CompanionError, Companions, PromptSource};
