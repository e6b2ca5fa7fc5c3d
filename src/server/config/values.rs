//! The value types of settings: secrets, the origin policy, personas.

use std::fmt;

use serde::Deserialize;

use super::ConfigError;

/// A secret (API key, cookie key). Its `Debug` never shows the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

/// The upstream API key.
pub type ApiKey = Secret;

impl Secret {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The raw key, for the one place that sends it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("<empty>")
        } else {
            f.write_str("<redacted>")
        }
    }
}

/// Which `Origin`s may open `/ws`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Only the origin the page itself was served from (`Origin` host equals `Host`).
    SameOrigin,
    /// Exactly these origins (`scheme://host[:port]`, no trailing slash).
    List(Vec<String>),
}

impl OriginPolicy {
    /// `None` (unset or empty) means same-origin only.
    pub fn parse(value: Option<&str>) -> Result<Self, ConfigError> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(OriginPolicy::SameOrigin);
        };
        let mut origins = Vec::new();
        for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let origin = origin.trim_end_matches('/');
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(ConfigError {
                    field: "ALLOWED_ORIGINS",
                    value: value.to_owned(),
                    reason: format!("{origin:?} is not an http(s) origin"),
                });
            }
            origins.push(origin.to_ascii_lowercase());
        }
        Ok(OriginPolicy::List(origins))
    }

    /// Whether a browser on `origin` may connect to a server reached as `host`.
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        match self {
            OriginPolicy::List(list) => list.contains(&origin),
            OriginPolicy::SameOrigin => {
                let Some(host) = host else { return false };
                let authority = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"));
                authority == Some(host.to_ascii_lowercase().as_str())
            }
        }
    }
}

/// A persona offered for new conversations.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    pub id: String,
    pub name: String,
    pub description: String,
    pub system_prompt: String,
}

/// The personas Tether ships with; the first is the default.
pub fn default_personas() -> Vec<Persona> {
    vec![
        Persona {
            id: "companion".into(),
            name: "Companion".into(),
            description: "Warm, attentive and playful: the original Tether persona.".into(),
            system_prompt: "You are a sweet AI Girlfriend. You are warm, caring and playful, \
                you remember what the user tells you in this conversation, and you answer \
                in a few friendly sentences."
                .into(),
        },
        Persona {
            id: "listener".into(),
            name: "Good Listener".into(),
            description: "Calm and reflective; asks gentle questions.".into(),
            system_prompt: "You are a calm, empathetic listener. Reflect back what you hear, \
                ask one gentle question at a time, and keep answers short."
                .into(),
        },
        Persona {
            id: "coach".into(),
            name: "Upbeat Coach".into(),
            description: "Encouraging and practical; helps you take the next step.".into(),
            system_prompt: "You are an upbeat, practical coach. Encourage the user and suggest \
                one concrete next step. Use short markdown lists when helpful."
                .into(),
        },
    ]
}

/// Who may chat (`AUTH_MODE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// Anyone who opens the page, with an anonymous identity cookie; people
    /// may still make an account to have their chats on every device.
    #[default]
    Open,
    /// Only people signed in to an account (or named by a trusted proxy).
    Accounts,
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMode::Open => "open",
            AuthMode::Accounts => "accounts",
        })
    }
}

impl std::str::FromStr for AuthMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "open" => Ok(AuthMode::Open),
            "accounts" => Ok(AuthMode::Accounts),
            _ => Err("expected `open` or `accounts`".into()),
        }
    }
}

/// Who may make an account (`REGISTRATION`). The very first account can
/// always be made (it is the admin).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Registration {
    /// Anyone.
    #[default]
    Open,
    /// Anyone, but the account waits for an admin's approval.
    Approval,
    /// Only with an invite link from an admin.
    Invite,
    /// Nobody (admins can still invite).
    Closed,
}

impl fmt::Display for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Registration::Open => "open",
            Registration::Approval => "approval",
            Registration::Invite => "invite",
            Registration::Closed => "closed",
        })
    }
}

impl std::str::FromStr for Registration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "open" => Ok(Registration::Open),
            "approval" => Ok(Registration::Approval),
            "invite" => Ok(Registration::Invite),
            "closed" => Ok(Registration::Closed),
            _ => Err("expected `open`, `approval`, `invite` or `closed`".into()),
        }
    }
}
