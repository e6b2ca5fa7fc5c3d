//! The browser side of the chat: the view reducer (pure, compiled everywhere
//! so it is tested natively), the WebSocket and its HTTP fallback (WASM only).
//!
//! The one place the two builds differ is chosen here, a module at a time:
//! [`browser`] is the real browser API wrappers with feature `browser`, and a
//! twin of the same signatures that does nothing otherwise (`browser_twin.rs`).
//! The `ui/` components call [`browser`] and carry no `cfg` of their own, so
//! the server renders exactly what the browser hydrates.

pub mod earlier;
pub mod highlight;
pub mod markdown;
pub mod state;

#[cfg(feature = "browser")]
pub mod api;
#[cfg(feature = "browser")]
pub mod browser;
#[cfg(not(feature = "browser"))]
#[path = "browser_twin.rs"]
pub mod browser;
#[cfg(feature = "browser")]
pub mod fallback;
#[cfg(feature = "browser")]
pub mod socket;

pub use browser::{new_client_msg_id, now_rfc3339};

/// What the connection indicator shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnStatus {
    Connecting,
    Connected,
    Reconnecting,
    /// Several attempts in a row failed; still retrying, with longer pauses.
    Offline,
    /// No WebSocket, but the server answers over plain HTTP (streaming).
    Http,
}

impl ConnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnStatus::Connecting => "connecting",
            ConnStatus::Connected => "connected",
            ConnStatus::Reconnecting => "reconnecting",
            ConnStatus::Offline => "offline",
            ConnStatus::Http => "http",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ConnStatus::Connecting => "Connecting…",
            ConnStatus::Connected => "Connected",
            ConnStatus::Reconnecting => "Reconnecting…",
            ConnStatus::Offline => "Offline — retrying",
            ConnStatus::Http => "Connected (HTTP)",
        }
    }
}

/// Where the chosen theme is remembered (read again by the inline script in
/// the page head, so a reload never flashes the wrong theme).
pub const THEME_KEY: &str = "tether-theme";

/// The colour theme the user chose (the system's until they choose).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Theme {
    Light,
    Dark,
}

impl Theme {
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "light" => Some(Theme::Light),
            "dark" => Some(Theme::Dark),
            _ => None,
        }
    }

    pub fn other(self) -> Self {
        match self {
            Theme::Light => Theme::Dark,
            Theme::Dark => Theme::Light,
        }
    }
}
