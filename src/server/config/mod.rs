//! Server configuration: every knob and its default, in one place.
//!
//! Sources, each overriding the one before: [`Config::defaults`], the TOML
//! file (`tether.toml` or `--config`, see `file.rs`), environment variables,
//! command-line flags (both read by clap, see `cli.rs`). Tests build a
//! `Config` directly. Secrets never appear in `Debug` output.

mod cli;
mod file;

pub use cli::Cli;

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;
use thiserror::Error;

/// A configuration value that could not be used; names the setting.
#[derive(Debug, Error)]
#[error("invalid configuration: {field} = {value:?}: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

/// A secret (API key, cookie key). Its `Debug` never shows the value.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
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

/// Where the model lives.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    pub api_key: ApiKey,
    pub model: String,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// Penalties against repetition (-2.0 to 2.0), when set.
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    /// Extra stop sequences sent with every request.
    pub stop: Vec<String>,
    /// Deadline for the first byte, and for the gap between two chunks.
    pub timeout: Duration,
}

/// Every limit the server enforces. In the TOML file, the `[limits]` table
/// uses these field names; missing fields keep their defaults.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest client frame handled; larger gets `too_large`.
    pub max_frame_bytes: usize,
    /// Longest user message, in characters.
    pub max_message_chars: usize,
    /// Per-user send budget: bucket size …
    pub rate_burst: u32,
    /// … and refill per second.
    pub rate_per_sec: f64,
    /// Open WebSockets per user.
    pub max_sockets_per_user: usize,
    /// Open WebSockets overall.
    pub max_connections: usize,
    /// Upstream requests running at once; more wait in line.
    pub max_concurrent_upstream: usize,
    /// Most recent messages sent to the model.
    pub history_messages: usize,
    /// Character budget of the history sent to the model (system prompt excluded).
    pub context_chars: usize,
    /// Events buffered per subscriber before it is resynced with a snapshot.
    pub subscriber_buffer: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 * 1024,
            max_message_chars: 8_000,
            rate_burst: 20,
            rate_per_sec: 1.0,
            max_sockets_per_user: 16,
            max_connections: 50_000,
            max_concurrent_upstream: 2_048,
            history_messages: 40,
            context_chars: 24_000,
            subscriber_buffer: 512,
        }
    }
}

/// Everything the server needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub site_root: String,
    pub origins: OriginPolicy,
    pub database_url: String,
    /// Directory for the SQLite file and the generated session secret.
    pub data_dir: String,
    /// Explicit cookie-signing secret; generated and persisted when absent.
    pub session_secret: Option<Secret>,
    /// `Some(true)` always sets `Secure`; `None` sets it when the request came over https.
    pub cookie_secure: Option<bool>,
    pub upstream: UpstreamConfig,
    pub limits: LimitsConfig,
    pub personas: Vec<Persona>,
    pub ws_ping_interval: Duration,
    pub shutdown_grace: Duration,
    pub log_json: bool,
}

impl Config {
    /// Defaults that run on a developer machine with nothing configured.
    pub fn defaults() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            site_root: "target/site".into(),
            origins: OriginPolicy::SameOrigin,
            database_url: "sqlite://data/tether.db".into(),
            data_dir: "data".into(),
            session_secret: None,
            cookie_secure: None,
            upstream: UpstreamConfig {
                base_url: "http://127.0.0.1:8080/v1".into(),
                api_key: ApiKey::default(),
                model: "gemma-3-270m".into(),
                max_tokens: Some(512),
                temperature: None,
                frequency_penalty: None,
                presence_penalty: None,
                stop: Vec::new(),
                timeout: Duration::from_secs(60),
            },
            limits: LimitsConfig::default(),
            personas: default_personas(),
            ws_ping_interval: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            log_json: false,
        }
    }

    /// Defaults, then the TOML file, then environment and flags (from `cli`), validated.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        Self::load_with(cli, |key| std::env::var(key).ok())
    }

    /// Like [`Config::load`], reading the extra variables (`LEPTOS_SITE_ADDR`) through `env`.
    pub fn load_with(cli: &Cli, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut c = Self::defaults();
        let path = cli.config.clone().or_else(|| {
            let default = PathBuf::from("tether.toml");
            default.exists().then_some(default)
        });
        if let Some(path) = path {
            file::FileConfig::read(&path)?.apply(&mut c)?;
        }
        c.apply_cli(cli, env)?;
        c.validate()?;
        Ok(c)
    }

    fn apply_cli(
        &mut self,
        cli: &Cli,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let c = self;
        if let Some(addr) = cli.listen_addr {
            c.listen_addr = addr;
        } else if let Some(v) = env("LEPTOS_SITE_ADDR").filter(|v| !v.is_empty()) {
            c.listen_addr = parse("LEPTOS_SITE_ADDR", &v)?;
        }
        if let Some(v) = &cli.site_root {
            c.site_root = v.clone();
        }
        if let Some(v) = &cli.allowed_origins {
            c.origins = OriginPolicy::parse(Some(v))?;
        }
        if let Some(v) = &cli.data_dir {
            if cli.database_url.is_none() {
                c.database_url = format!("sqlite://{v}/tether.db");
            }
            c.data_dir = v.clone();
        }
        if let Some(v) = &cli.database_url {
            c.database_url = v.clone();
        }
        if let Some(v) = &cli.session_secret {
            c.session_secret = Some(Secret::new(v.clone()));
        }
        if let Some(v) = &cli.cookie_secure {
            c.cookie_secure = parse_cookie_secure(v)?;
        }
        let u = &mut c.upstream;
        if let Some(v) = &cli.openai_base_url {
            u.base_url = v.trim_end_matches('/').to_owned();
        }
        if let Some(v) = &cli.openai_api_key {
            u.api_key = Secret::new(v.clone());
        }
        if let Some(v) = &cli.openai_model {
            u.model = v.clone();
        }
        if let Some(v) = cli.openai_max_tokens {
            u.max_tokens = (v > 0).then_some(v);
        }
        if let Some(v) = cli.openai_temperature {
            u.temperature = Some(v);
        }
        if let Some(v) = cli.openai_frequency_penalty {
            u.frequency_penalty = Some(v);
        }
        if let Some(v) = cli.openai_presence_penalty {
            u.presence_penalty = Some(v);
        }
        if let Some(v) = &cli.openai_stop {
            u.stop = v
                .split('|')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = cli.upstream_timeout_secs {
            u.timeout = secs("UPSTREAM_TIMEOUT_SECS", v)?;
        }
        let l = &mut c.limits;
        macro_rules! limit {
            ($($field:ident),*) => {$(
                if let Some(v) = cli.$field {
                    l.$field = v;
                }
            )*};
        }
        limit!(
            max_frame_bytes,
            max_message_chars,
            rate_burst,
            rate_per_sec,
            max_sockets_per_user,
            max_connections,
            max_concurrent_upstream,
            history_messages,
            context_chars,
            subscriber_buffer
        );
        if let Some(v) = cli.ws_ping_interval_secs {
            c.ws_ping_interval = secs("WS_PING_INTERVAL_SECS", v)?;
        }
        if let Some(v) = cli.shutdown_grace_secs {
            c.shutdown_grace = secs("SHUTDOWN_GRACE_SECS", v)?;
        }
        if let Some(v) = &cli.log_format {
            c.log_json = parse_log_format(v)?;
        }
        Ok(())
    }

    /// Refuses values that would make the server unusable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |field: &'static str, v: usize| {
            if v == 0 {
                Err(ConfigError {
                    field,
                    value: v.to_string(),
                    reason: "must be greater than 0".into(),
                })
            } else {
                Ok(())
            }
        };
        let l = &self.limits;
        positive("MAX_FRAME_BYTES", l.max_frame_bytes)?;
        positive("MAX_MESSAGE_CHARS", l.max_message_chars)?;
        positive("RATE_BURST", l.rate_burst as usize)?;
        positive("MAX_SOCKETS_PER_USER", l.max_sockets_per_user)?;
        positive("MAX_CONNECTIONS", l.max_connections)?;
        positive("MAX_CONCURRENT_UPSTREAM", l.max_concurrent_upstream)?;
        positive("HISTORY_MESSAGES", l.history_messages)?;
        positive("SUBSCRIBER_BUFFER", l.subscriber_buffer)?;
        if !(l.rate_per_sec.is_finite() && l.rate_per_sec > 0.0) {
            return Err(ConfigError {
                field: "RATE_PER_SEC",
                value: l.rate_per_sec.to_string(),
                reason: "must be a positive number".into(),
            });
        }
        if self.upstream.model.trim().is_empty() {
            return Err(ConfigError {
                field: "OPENAI_MODEL",
                value: String::new(),
                reason: "must name a model".into(),
            });
        }
        if self.personas.is_empty() {
            return Err(ConfigError {
                field: "personas",
                value: String::new(),
                reason: "at least one persona is required".into(),
            });
        }
        Ok(())
    }

    /// The persona with `id`, or the default one for `None`.
    pub fn persona(&self, id: Option<&str>) -> Option<&Persona> {
        match id {
            None => self.personas.first(),
            Some(id) => self.personas.iter().find(|p| p.id == id),
        }
    }
}

fn parse<T: std::str::FromStr>(field: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    value.trim().parse().map_err(|e: T::Err| ConfigError {
        field,
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

fn secs(field: &'static str, secs: f64) -> Result<Duration, ConfigError> {
    if !(secs.is_finite() && secs > 0.0) {
        return Err(ConfigError {
            field,
            value: secs.to_string(),
            reason: "must be a positive number of seconds".into(),
        });
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_cookie_secure(value: &str) -> Result<Option<bool>, ConfigError> {
    match value {
        "auto" => Ok(None),
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        other => Err(ConfigError {
            field: "COOKIE_SECURE",
            value: other.to_owned(),
            reason: "expected `true`, `false` or `auto`".into(),
        }),
    }
}

fn parse_log_format(value: &str) -> Result<bool, ConfigError> {
    match value {
        "json" => Ok(true),
        "text" => Ok(false),
        other => Err(ConfigError {
            field: "LOG_FORMAT",
            value: other.to_owned(),
            reason: "expected `text` or `json`".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn load(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["tether"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("arguments parse");
        Config::load_with(&cli, |_| None)
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::defaults();
        c.validate().expect("defaults validate");
        assert_eq!(c.origins, OriginPolicy::SameOrigin);
        assert_eq!(c.database_url, "sqlite://data/tether.db");
        assert_eq!(c.persona(None).map(|p| p.id.as_str()), Some("companion"));
    }

    #[test]
    fn flags_override_and_bad_values_name_the_field() {
        let c = load(&[
            "--max-frame-bytes",
            "2048",
            "--openai-base-url",
            "http://x/v1/",
            "--allowed-origins",
            "http://localhost:5173, https://chat.example",
            "--data-dir",
            "/tmp/t",
        ])
        .expect("loads");
        assert_eq!(c.limits.max_frame_bytes, 2048);
        assert_eq!(c.upstream.base_url, "http://x/v1");
        assert_eq!(c.database_url, "sqlite:///tmp/t/tether.db");
        assert!(c.origins.allows("http://localhost:5173", None));
        assert!(!c.origins.allows("http://evil.example", None));

        assert_eq!(
            load(&["--rate-per-sec", "0"]).expect_err("refused").field,
            "RATE_PER_SEC"
        );
        assert_eq!(
            load(&["--allowed-origins", "localhost:5173"])
                .expect_err("refused")
                .field,
            "ALLOWED_ORIGINS"
        );
        assert_eq!(
            load(&["--log-format", "xml"]).expect_err("refused").field,
            "LOG_FORMAT"
        );
        assert!(
            Cli::try_parse_from(["tether", "--max-frame-bytes", "lots"]).is_err(),
            "clap refuses non-numbers, naming the flag"
        );
    }

    #[test]
    fn same_origin_compares_origin_with_host() {
        let p = OriginPolicy::SameOrigin;
        assert!(p.allows("http://127.0.0.1:3000", Some("127.0.0.1:3000")));
        assert!(!p.allows("http://evil.example", Some("127.0.0.1:3000")));
        assert!(!p.allows("http://127.0.0.1:3000", None));
    }

    #[test]
    fn secrets_are_never_printed() {
        let mut c = Config::defaults();
        c.upstream.api_key = Secret::new("sk-very-secret");
        c.session_secret = Some(Secret::new("cookie-key-secret"));
        let debug = format!("{c:?}");
        assert!(!debug.contains("sk-very-secret"));
        assert!(!debug.contains("cookie-key-secret"));
    }
}
