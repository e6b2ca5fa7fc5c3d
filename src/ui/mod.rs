//! Components of the chat page, one concern a file.

pub mod account;
pub mod chat;
pub mod companions;
pub mod composer;
pub mod empty;
pub mod history;
pub mod listing;
pub mod message;
pub mod messages;
pub mod session;
pub mod setup_notice;
pub mod sidebar;
pub mod status;
pub mod theme;
pub mod topbar;
