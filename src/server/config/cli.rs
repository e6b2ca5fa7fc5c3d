//! The command line: every setting as a flag that can also come from its
//! environment variable (clap reads both; a flag beats the variable).

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;

/// Tether: a real-time AI companion chat server.
///
/// Settings come from defaults, then `tether.toml` (or --config), then
/// environment variables, then flags; each later source wins.
#[derive(Debug, Default, Parser)]
#[command(name = "tether", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file (default: ./tether.toml when it exists).
    #[arg(long, env = "TETHER_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Print the resolved configuration (secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Address to listen on [default: 127.0.0.1:3000]; LEPTOS_SITE_ADDR is read too.
    #[arg(long, env = "LISTEN_ADDR", value_name = "ADDR")]
    pub listen_addr: Option<SocketAddr>,

    /// Directory of the built site (WASM, CSS) [default: target/site].
    #[arg(long, env = "LEPTOS_SITE_ROOT", value_name = "DIR")]
    pub site_root: Option<String>,

    /// Comma-separated origins allowed to open /ws [default: same origin].
    #[arg(long, env = "ALLOWED_ORIGINS", value_name = "ORIGINS")]
    pub allowed_origins: Option<String>,

    /// Directory for the SQLite file and the generated session secret [default: data].
    #[arg(long, env = "TETHER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<String>,

    /// Database URL [default: sqlite://<data dir>/tether.db].
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// Key that signs identity cookies [default: generated, kept in the data dir].
    #[arg(
        long,
        env = "SESSION_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub session_secret: Option<String>,

    /// `true`, `false` or `auto` (Secure when X-Forwarded-Proto is https) [default: auto].
    #[arg(long, env = "COOKIE_SECURE", value_name = "MODE")]
    pub cookie_secure: Option<String>,

    /// OpenAI-compatible endpoint [default: http://127.0.0.1:8080/v1].
    #[arg(long, env = "OPENAI_BASE_URL", value_name = "URL")]
    pub openai_base_url: Option<String>,

    /// API key, sent as a Bearer token; never logged.
    #[arg(
        long,
        env = "OPENAI_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub openai_api_key: Option<String>,

    /// Model name [default: gemma-3-270m].
    #[arg(long, env = "OPENAI_MODEL", value_name = "NAME")]
    pub openai_model: Option<String>,

    /// Max tokens per reply, 0 for the provider's default [default: 512].
    #[arg(long, env = "OPENAI_MAX_TOKENS", value_name = "N")]
    pub openai_max_tokens: Option<u32>,

    /// Sampling temperature [default: the provider's].
    #[arg(long, env = "OPENAI_TEMPERATURE", value_name = "T")]
    pub openai_temperature: Option<f32>,

    /// Frequency penalty against repetition, -2.0 to 2.0 [default: the provider's].
    #[arg(long, env = "OPENAI_FREQUENCY_PENALTY", value_name = "P")]
    pub openai_frequency_penalty: Option<f32>,

    /// Presence penalty, -2.0 to 2.0 [default: the provider's].
    #[arg(long, env = "OPENAI_PRESENCE_PENALTY", value_name = "P")]
    pub openai_presence_penalty: Option<f32>,

    /// Extra stop sequences, separated by `|`.
    #[arg(long, env = "OPENAI_STOP", value_name = "STOPS")]
    pub openai_stop: Option<String>,

    /// Deadline for the first byte and between chunks, seconds [default: 60].
    #[arg(long, env = "UPSTREAM_TIMEOUT_SECS", value_name = "SECS")]
    pub upstream_timeout_secs: Option<f64>,

    /// Largest client frame in bytes [default: 16384].
    #[arg(long, env = "MAX_FRAME_BYTES", value_name = "BYTES")]
    pub max_frame_bytes: Option<usize>,

    /// Longest user message in characters [default: 8000].
    #[arg(long, env = "MAX_MESSAGE_CHARS", value_name = "CHARS")]
    pub max_message_chars: Option<usize>,

    /// Sends a user may make at once [default: 20].
    #[arg(long, env = "RATE_BURST", value_name = "N")]
    pub rate_burst: Option<u32>,

    /// Sends per second a user regains [default: 1].
    #[arg(long, env = "RATE_PER_SEC", value_name = "RATE")]
    pub rate_per_sec: Option<f64>,

    /// Open WebSockets per user [default: 16].
    #[arg(long, env = "MAX_SOCKETS_PER_USER", value_name = "N")]
    pub max_sockets_per_user: Option<usize>,

    /// Open WebSockets overall [default: 50000].
    #[arg(long, env = "MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Model requests at once; more wait in line [default: 2048].
    #[arg(long, env = "MAX_CONCURRENT_UPSTREAM", value_name = "N")]
    pub max_concurrent_upstream: Option<usize>,

    /// Most recent messages sent to the model [default: 40].
    #[arg(long, env = "HISTORY_MESSAGES", value_name = "N")]
    pub history_messages: Option<usize>,

    /// Character budget of the history sent to the model [default: 24000].
    #[arg(long, env = "CONTEXT_CHARS", value_name = "N")]
    pub context_chars: Option<usize>,

    /// Events a slow socket may lag before it is resynced [default: 512].
    #[arg(long, env = "SUBSCRIBER_BUFFER", value_name = "N")]
    pub subscriber_buffer: Option<usize>,

    /// Seconds between server pings [default: 30].
    #[arg(long, env = "WS_PING_INTERVAL_SECS", value_name = "SECS")]
    pub ws_ping_interval_secs: Option<f64>,

    /// Seconds running replies get to finish on shutdown [default: 10].
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<f64>,

    /// `text` or `json` [default: text].
    #[arg(long, env = "LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
}
