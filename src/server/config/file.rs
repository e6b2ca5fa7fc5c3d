//! `tether.toml`: the configuration file (see `tether.example.toml`).
//!
//! Every key is optional; a missing key keeps its default. Unknown keys are
//! errors, so a typo never silently does nothing.

use std::path::Path;

use serde::Deserialize;

use super::{
    parse_cookie_secure, parse_log_format, secs, Config, ConfigError, LimitsConfig, OriginPolicy,
    Persona, Secret,
};

/// The file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    upstream: UpstreamSection,
    limits: Option<LimitsConfig>,
    personas: Option<Vec<Persona>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen_addr: Option<String>,
    site_root: Option<String>,
    allowed_origins: Option<Vec<String>>,
    data_dir: Option<String>,
    database_url: Option<String>,
    session_secret: Option<Secret>,
    cookie_secure: Option<String>,
    log_format: Option<String>,
    ws_ping_interval_secs: Option<f64>,
    shutdown_grace_secs: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamSection {
    base_url: Option<String>,
    api_key: Option<Secret>,
    model: Option<String>,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    stop: Option<Vec<String>>,
    timeout_secs: Option<f64>,
}

impl FileConfig {
    /// Reads and parses the file; errors name the file and the key.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            field: "config file",
            value: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|mut e| {
            e.value = path.display().to_string();
            e
        })
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError {
            field: "config file",
            value: String::new(),
            reason: e.to_string(),
        })
    }

    /// Overlays the file's values on `c`.
    pub fn apply(self, c: &mut Config) -> Result<(), ConfigError> {
        let s = self.server;
        if let Some(v) = s.listen_addr {
            c.listen_addr = super::parse("server.listen_addr", &v)?;
        }
        if let Some(v) = s.site_root {
            c.site_root = v;
        }
        if let Some(v) = s.allowed_origins {
            c.origins = OriginPolicy::parse(Some(&v.join(",")))?;
        }
        if let Some(v) = s.data_dir {
            c.database_url = format!("sqlite://{v}/tether.db");
            c.data_dir = v;
        }
        if let Some(v) = s.database_url {
            c.database_url = v;
        }
        if let Some(v) = s.session_secret {
            c.session_secret = Some(v);
        }
        if let Some(v) = s.cookie_secure {
            c.cookie_secure = parse_cookie_secure(&v)?;
        }
        if let Some(v) = s.log_format {
            c.log_json = parse_log_format(&v)?;
        }
        if let Some(v) = s.ws_ping_interval_secs {
            c.ws_ping_interval = secs("server.ws_ping_interval_secs", v)?;
        }
        if let Some(v) = s.shutdown_grace_secs {
            c.shutdown_grace = secs("server.shutdown_grace_secs", v)?;
        }
        let u = self.upstream;
        if let Some(v) = u.base_url {
            c.upstream.base_url = v.trim_end_matches('/').to_owned();
        }
        if let Some(v) = u.api_key {
            c.upstream.api_key = v;
        }
        if let Some(v) = u.model {
            c.upstream.model = v;
        }
        if let Some(v) = u.max_tokens {
            c.upstream.max_tokens = (v > 0).then_some(v);
        }
        if let Some(v) = u.temperature {
            c.upstream.temperature = Some(v);
        }
        if let Some(v) = u.frequency_penalty {
            c.upstream.frequency_penalty = Some(v);
        }
        if let Some(v) = u.presence_penalty {
            c.upstream.presence_penalty = Some(v);
        }
        if let Some(v) = u.stop {
            c.upstream.stop = v;
        }
        if let Some(v) = u.timeout_secs {
            c.upstream.timeout = secs("upstream.timeout_secs", v)?;
        }
        if let Some(limits) = self.limits {
            c.limits = limits;
        }
        if let Some(personas) = self.personas {
            c.personas = personas;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_applies() {
        let text = include_str!("../../../tether.example.toml");
        let mut c = Config::defaults();
        FileConfig::parse(text)
            .expect("example parses")
            .apply(&mut c)
            .expect("applies");
        c.validate().expect("valid");
        assert_eq!(c.personas[0].id, "companion");
        assert!(c.personas[0].system_prompt.contains("sweet AI Girlfriend"));
    }

    #[test]
    fn partial_sections_keep_defaults() {
        let mut c = Config::defaults();
        FileConfig::parse("[limits]\nmax_frame_bytes = 999\n[upstream]\nmodel = \"m\"\n")
            .expect("parses")
            .apply(&mut c)
            .expect("applies");
        assert_eq!(c.limits.max_frame_bytes, 999);
        assert_eq!(
            c.limits.max_message_chars, 8_000,
            "untouched limit keeps its default"
        );
        assert_eq!(c.upstream.model, "m");
    }

    #[test]
    fn typos_and_bad_values_are_refused_with_the_key() {
        let err = FileConfig::parse("[limits]\nmax_frame_byte = 1\n").expect_err("unknown key");
        assert!(err.reason.contains("max_frame_byte"), "{}", err.reason);
        let err =
            FileConfig::parse("[limits]\nmax_frame_bytes = \"lots\"\n").expect_err("bad type");
        assert!(err.reason.contains("max_frame_bytes"), "{}", err.reason);
        let mut c = Config::defaults();
        let err = FileConfig::parse("[server]\nlisten_addr = \"nowhere\"\n")
            .expect("parses")
            .apply(&mut c)
            .expect_err("bad address");
        assert_eq!(err.field, "server.listen_addr");
    }
}
