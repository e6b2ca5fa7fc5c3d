//! The one definition of every setting.
//!
//! Each row gives, once: the doc (shown by `--help` and in the README), the
//! field and its type, the default, the codec (how the value is written,
//! `codec.rs`), the file key (the field's name unless `key` says otherwise)
//! in the struct's file table, the environment variable and the flag. The
//! README's table is generated from these rows and a test keeps it in step.

use std::{net::SocketAddr, time::Duration};

use super::{
    codec::{
        BaseUrl, CookieMode, Database, Hidden, List, LogFormat, NonEmpty, Optional, Origins, Plain,
        Positive, Secs, Stops, ZeroIsUnset,
    },
    default_personas,
    define::settings,
    ApiKey, AuthMode, DatabaseUrl, OriginPolicy, Persona, Registration, Secret, TrustedProxies,
};

settings! {
    /// Everything the server needs to start.
    #[derive(Clone, Debug)]
    pub struct Config in "server" {
        /// Address to listen on; `LEPTOS_SITE_ADDR` is read when this is unset.
        listen_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 3000)), Plain,
            env "LISTEN_ADDR", flag "listen-addr", value "ADDR";
        /// Directory of the built site (WASM, CSS).
        site_root: String = "target/site".into(), Plain,
            env "LEPTOS_SITE_ROOT", flag "site-root", value "DIR";
        /// Origins allowed to open `/ws` (comma-separated; a list in the file).
        origins: OriginPolicy = OriginPolicy::SameOrigin, Origins, key "allowed_origins",
            env "ALLOWED_ORIGINS", flag "allowed-origins", value "ORIGINS",
            shown "same origin as the page";
        /// Directory for the SQLite file and the generated session secret.
        data_dir: String = "data".into(), Plain,
            env "TETHER_DATA_DIR", flag "data-dir", value "DIR";
        /// Where data is stored: `sqlite://path`, `sqlite:path` or a file path, or
        /// `postgres://user:password@host:port/db`; other schemes stop start-up.
        database: DatabaseUrl = DatabaseUrl::in_dir("data"), Database, key "database_url",
            env "DATABASE_URL", flag "database-url", value "URL",
            shown "`sqlite://<data dir>/tether.db`";
        /// `open`: anyone who opens the page chats (an anonymous identity, as on a
        /// laptop; accounts are optional); `accounts`: only people signed in.
        auth_mode: AuthMode = AuthMode::Open, Plain,
            env "AUTH_MODE", flag "auth-mode", value "MODE";
        /// Who may make an account: `open`, `approval` (an admin approves each),
        /// `invite` (an admin's invite link) or `closed`. The first account is the admin.
        registration: Registration = Registration::Open, Plain,
            env "REGISTRATION", flag "registration", value "WHO";
        /// A header naming the signed-in user (e.g. `X-Forwarded-User` from
        /// oauth2-proxy or Authelia), read only from `TRUSTED_PROXIES`; unset: off.
        auth_trusted_header: String = String::new(), Plain,
            env "AUTH_TRUSTED_HEADER", flag "auth-trusted-header", value "HEADER",
            shown "(none)";
        /// Days a sign-in lasts without being used.
        session_idle_days: u32 = 30, Positive,
            env "SESSION_IDLE_DAYS", flag "session-idle-days", value "DAYS";
        /// Key that signs identity cookies.
        session_secret: Option<Secret> = None, Hidden,
            env "SESSION_SECRET", flag "session-secret", value "SECRET",
            shown "generated, kept in the data dir";
        /// `true`, `false` or `auto` (`Secure` when `X-Forwarded-Proto: https`).
        cookie_secure: Option<bool> = None, CookieMode,
            env "COOKIE_SECURE", flag "cookie-secure", value "MODE";
        /// Reverse proxies (addresses or CIDR blocks, comma-separated; a list in
        /// the file) whose `X-Forwarded-For` names the client; no one else's is read.
        trusted_proxies: TrustedProxies = TrustedProxies::default(), List,
            env "TRUSTED_PROXIES", flag "trusted-proxies", value "BLOCKS", shown "(none)";
        /// Seconds between server pings; a peer silent for two is dropped.
        ws_ping_interval: Duration = Duration::from_secs(30), Secs,
            key "ws_ping_interval_secs",
            env "WS_PING_INTERVAL_SECS", flag "ws-ping-interval-secs", value "SECS";
        /// Seconds running replies get to finish on shutdown (SIGTERM).
        shutdown_grace: Duration = Duration::from_secs(10), Secs, key "shutdown_grace_secs",
            env "SHUTDOWN_GRACE_SECS", flag "shutdown-grace-secs", value "SECS";
        /// `text`, or `json` for structured logs; `RUST_LOG` filters.
        log_json: bool = false, LogFormat, key "log_format",
            env "LOG_FORMAT", flag "log-format", value "FORMAT";
        /// Redis (`redis://host:port`) for the live state of several
        /// instances on one database; unset: this process alone.
        redis_url: Option<Secret> = None, Hidden,
            env "REDIS_URL", flag "redis-url", value "URL", shown "(none: one instance)";
        /// Seconds a reply's lease lasts unrenewed: how soon another instance
        /// finishes the reply of one that died (cluster mode).
        reply_lease: Duration = Duration::from_secs(10), Secs, key "reply_lease_secs",
            env "REPLY_LEASE_SECS", flag "reply-lease-secs", value "SECS";
    }
    also {
        /// The model (the file's `[upstream]`).
        upstream: UpstreamConfig = UpstreamConfig::defaults();
        /// Every limit (the file's `[limits]`).
        limits: LimitsConfig = LimitsConfig::defaults();
        /// Personas offered for new conversations (the file's `[[personas]]`);
        /// the first is the default.
        personas: Vec<Persona> = default_personas();
    }
}

settings! {
    /// Where the model lives.
    #[derive(Clone, Debug)]
    pub struct UpstreamConfig in "upstream" {
        /// Any OpenAI-compatible endpoint, e.g. `https://api.openai.com/v1`.
        base_url: String = "http://127.0.0.1:8080/v1".into(), BaseUrl,
            env "OPENAI_BASE_URL", flag "openai-base-url", value "URL";
        /// Sent as `Authorization: Bearer`, omitted when empty; never logged.
        api_key: ApiKey = ApiKey::default(), Hidden,
            env "OPENAI_API_KEY", flag "openai-api-key", value "KEY", shown "(none)";
        /// Model name.
        model: String = "local-model".into(), NonEmpty,
            env "OPENAI_MODEL", flag "openai-model", value "NAME";
        /// Most tokens per reply; `0` leaves it to the provider.
        max_tokens: Option<u32> = Some(512), ZeroIsUnset,
            env "OPENAI_MAX_TOKENS", flag "openai-max-tokens", value "N";
        /// Sampling temperature.
        temperature: Option<f32> = None, Optional,
            env "OPENAI_TEMPERATURE", flag "openai-temperature", value "T",
            shown "the provider's";
        /// Penalty against repeated tokens, -2.0 to 2.0.
        frequency_penalty: Option<f32> = None, Optional,
            env "OPENAI_FREQUENCY_PENALTY", flag "openai-frequency-penalty", value "P",
            shown "the provider's";
        /// Penalty against tokens already present, -2.0 to 2.0.
        presence_penalty: Option<f32> = None, Optional,
            env "OPENAI_PRESENCE_PENALTY", flag "openai-presence-penalty", value "P",
            shown "the provider's";
        /// Extra stop sequences sent with every request (`|`-separated; a list in the file).
        stop: Vec<String> = Vec::new(), Stops,
            env "OPENAI_STOP", flag "openai-stop", value "STOPS", shown "(none)";
        /// Seconds to wait for the first byte, and for each gap between chunks.
        timeout: Duration = Duration::from_secs(60), Secs, key "timeout_secs",
            env "UPSTREAM_TIMEOUT_SECS", flag "upstream-timeout-secs", value "SECS";
        /// Status file of a model being installed (`scripts/start.sh` sets it):
        /// replies wait while it says `installing`; no file means ready.
        setup_file: String = String::new(), Plain,
            env "MODEL_SETUP_FILE", flag "model-setup-file", value "FILE", shown "(none)";
    }
}

settings! {
    /// Every limit the server enforces (the file's `[limits]`).
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct LimitsConfig in "limits" {
        /// Largest client frame, in bytes; larger gets `too_large`.
        max_frame_bytes: usize = 16 * 1024, Positive,
            env "MAX_FRAME_BYTES", flag "max-frame-bytes", value "BYTES";
        /// Longest user message, in characters.
        max_message_chars: usize = 8_000, Positive,
            env "MAX_MESSAGE_CHARS", flag "max-message-chars", value "CHARS";
        /// Per-user send budget (token bucket): sends a user may make at once …
        rate_burst: u32 = 20, Positive,
            env "RATE_BURST", flag "rate-burst", value "N";
        /// … and sends a user regains per second.
        rate_per_sec: f64 = 1.0, Positive,
            env "RATE_PER_SEC", flag "rate-per-sec", value "RATE";
        /// Open WebSockets per user.
        max_sockets_per_user: usize = 16, Positive,
            env "MAX_SOCKETS_PER_USER", flag "max-sockets-per-user", value "N";
        /// Open WebSockets overall (`503` beyond).
        max_connections: usize = 50_000, Positive,
            env "MAX_CONNECTIONS", flag "max-connections", value "N";
        /// Model requests running at once; more wait in line.
        max_concurrent_upstream: usize = 2_048, Positive,
            env "MAX_CONCURRENT_UPSTREAM", flag "max-concurrent-upstream", value "N";
        /// Most recent messages sent to the model.
        history_messages: usize = 40, Positive,
            env "HISTORY_MESSAGES", flag "history-messages", value "N";
        /// Character budget of the history sent to the model (system prompt excluded).
        context_chars: usize = 24_000, Plain,
            env "CONTEXT_CHARS", flag "context-chars", value "N";
        /// Events a slow subscriber may lag before it is resynced with a snapshot.
        subscriber_buffer: usize = 512, Positive,
            env "SUBSCRIBER_BUFFER", flag "subscriber-buffer", value "N";
        /// Conversations one socket follows at once; one more drops the least recently used.
        max_subscriptions_per_socket: usize = 64, Positive,
            env "MAX_SUBSCRIPTIONS_PER_SOCKET", flag "max-subscriptions-per-socket", value "N";
        /// Seconds a socket write may take before the peer is taken for gone.
        write_timeout: Duration = Duration::from_secs(15), Secs, key "write_timeout_secs",
            env "WRITE_TIMEOUT_SECS", flag "write-timeout-secs", value "SECS";
        /// Store reads running at once, and read connections kept open.
        store_readers: usize = 8, Positive,
            env "STORE_READERS", flag "store-readers", value "N";
        /// Writes waiting for the store's writer; beyond, callers wait for room.
        store_writer_queue: usize = 4_096, Positive,
            env "STORE_WRITER_QUEUE", flag "store-writer-queue", value "N";
        /// Most writes committed in one transaction.
        store_writer_batch: usize = 512, Positive,
            env "STORE_WRITER_BATCH", flag "store-writer-batch", value "N";
        /// Seconds a store read or write waits for a lock another process holds; then it is refused with `unavailable`.
        store_busy_timeout: Duration = Duration::from_secs(5), Secs,
            key "store_busy_timeout_secs",
            env "STORE_BUSY_TIMEOUT_SECS", flag "store-busy-timeout-secs", value "SECS";
        /// Longest title a user may give a conversation, in characters.
        max_title_chars: usize = 120, Positive,
            env "MAX_TITLE_CHARS", flag "max-title-chars", value "CHARS";
        /// Length of the title taken from a conversation's first message, in characters.
        auto_title_chars: usize = 48, Positive,
            env "AUTO_TITLE_CHARS", flag "auto-title-chars", value "CHARS";
        /// A streaming reply's text is stored after this many tokens (kept if the process dies) …
        checkpoint_tokens: usize = 64, Positive,
            env "CHECKPOINT_TOKENS", flag "checkpoint-tokens", value "N";
        /// … or this many seconds, whichever comes first.
        checkpoint_interval: Duration = Duration::from_secs(1), Secs,
            key "checkpoint_interval_secs",
            env "CHECKPOINT_INTERVAL_SECS", flag "checkpoint-interval-secs", value "SECS";
        /// Seconds a client gets to send a request's headers; slower (or silent)
        /// connections are closed.
        header_timeout: Duration = Duration::from_secs(10), Secs, key "header_timeout_secs",
            env "HEADER_TIMEOUT_SECS", flag "header-timeout-secs", value "SECS";
        /// Open WebSockets and event streams per client address (IPv6: per /64).
        max_streams_per_addr: usize = 256, Positive,
            env "MAX_STREAMS_PER_ADDR", flag "max-streams-per-addr", value "N";
        /// Per-address send budget (token bucket), over all its identities: sends at once …
        addr_rate_burst: u32 = 100, Positive,
            env "ADDR_RATE_BURST", flag "addr-rate-burst", value "N";
        /// … and sends regained per second.
        addr_rate_per_sec: f64 = 10.0, Positive,
            env "ADDR_RATE_PER_SEC", flag "addr-rate-per-sec", value "RATE";
        /// New identity cookies one address may be given at once …
        identity_burst: u32 = 30, Positive,
            env "IDENTITY_BURST", flag "identity-burst", value "N";
        /// … and regains per second (`429` beyond).
        identity_per_sec: f64 = 0.2, Positive,
            env "IDENTITY_PER_SEC", flag "identity-per-sec", value "RATE";
        /// WebSocket frames a connection may send at once …
        frame_burst: u32 = 120, Positive,
            env "FRAME_BURST", flag "frame-burst", value "N";
        /// … and regains per second; frames beyond are dropped (one `rate_limited`) …
        frames_per_sec: f64 = 20.0, Positive,
            env "FRAMES_PER_SEC", flag "frames-per-sec", value "RATE";
        /// … and after this many dropped frames the socket is closed (1008).
        flood_close_after: u32 = 60, Positive,
            env "FLOOD_CLOSE_AFTER", flag "flood-close-after", value "N";
        /// PostgreSQL connections kept open (`postgres://` only); more queries wait for one.
        database_pool_size: usize = 16, Positive,
            env "DATABASE_POOL_SIZE", flag "database-pool-size", value "N";
        /// Newest messages a `snapshot` (and the page of `/c/:id`) carries; older ones are
        /// asked for page by page (`history`).
        history_window: usize = 50, Positive,
            env "HISTORY_WINDOW", flag "history-window", value "N";
        /// Most messages one `history` page returns (a larger `limit` is lowered to it).
        history_page_max: usize = 200, Positive,
            env "HISTORY_PAGE_MAX", flag "history-page-max", value "N";
        /// Largest character card a user may import (PNG or JSON), in bytes; larger gets `413`.
        max_card_bytes: usize = 8 * 1024 * 1024, Positive,
            env "MAX_CARD_BYTES", flag "max-card-bytes", value "BYTES";
        /// Largest companion picture (PNG, JPEG, GIF or WebP), in bytes; larger gets `413`.
        max_avatar_bytes: usize = 2 * 1024 * 1024, Positive,
            env "MAX_AVATAR_BYTES", flag "max-avatar-bytes", value "BYTES";
        /// Longest text of one companion field (description, greeting, …), in characters.
        max_companion_field_chars: usize = 32_000, Positive,
            env "MAX_COMPANION_FIELD_CHARS", flag "max-companion-field-chars", value "CHARS";
        /// Companions one user may keep (built-in presets not counted).
        max_companions_per_user: usize = 500, Positive,
            env "MAX_COMPANIONS_PER_USER", flag "max-companions-per-user", value "N";
        /// Largest conversation export a user may import (JSON), in bytes; larger gets `413`.
        max_import_bytes: usize = 32 * 1024 * 1024, Positive,
            env "MAX_IMPORT_BYTES", flag "max-import-bytes", value "BYTES";
        /// Failed sign-ins one account, or one address, may make before each
        /// further try must wait (`429` with `Retry-After`) …
        login_failures: u32 = 5, Positive,
            env "LOGIN_FAILURES", flag "login-failures", value "N";
        /// … first this many seconds, doubling with each failure (at most 15 minutes).
        login_backoff: Duration = Duration::from_secs(2), Secs, key "login_backoff_secs",
            env "LOGIN_BACKOFF_SECS", flag "login-backoff-secs", value "SECS";
        /// Messages an account may send per UTC day (`quota_exceeded` beyond);
        /// `0`: no limit. An admin can set another for one account.
        quota_messages_per_day: Option<u32> = None, ZeroIsUnset,
            env "QUOTA_MESSAGES_PER_DAY", flag "quota-messages-per-day", value "N",
            shown "0 (no limit)";
        /// Model tokens (prompt and reply) an account may use per UTC day; `0`: no limit.
        quota_tokens_per_day: Option<u32> = None, ZeroIsUnset,
            env "QUOTA_TOKENS_PER_DAY", flag "quota-tokens-per-day", value "N",
            shown "0 (no limit)";
    }
}
