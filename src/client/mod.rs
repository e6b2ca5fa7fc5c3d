//! The browser side of the chat: the view reducer (pure, compiled everywhere
//! so it is tested natively), the WebSocket and its HTTP fallback (WASM only).

pub mod highlight;
pub mod markdown;
pub mod state;

#[cfg(feature = "browser")]
pub mod browser;
#[cfg(feature = "browser")]
pub mod fallback;
#[cfg(feature = "browser")]
pub mod socket;

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

/// A fresh idempotency key for `send` / `regenerate`.
pub fn new_client_msg_id() -> crate::protocol::ClientMsgId {
    #[cfg(feature = "browser")]
    {
        let now = js_sys::Date::now() as u64;
        let a = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
        let b = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
        crate::protocol::ClientMsgId(format!("{now:x}-{a:x}-{b:x}"))
    }
    #[cfg(not(feature = "browser"))]
    {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        crate::protocol::ClientMsgId(format!("native-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
    }
}

/// Now, as RFC 3339 (browser clock), for messages not yet stored.
pub fn now_rfc3339() -> String {
    #[cfg(feature = "browser")]
    {
        js_sys::Date::new_0().to_iso_string().into()
    }
    #[cfg(not(feature = "browser"))]
    {
        String::new()
    }
}
