//! Server configuration: every setting defined once, in `table.rs`.
//!
//! Sources, each overriding the one before: the defaults, the TOML file
//! (`tether.toml` or `--config`, `file.rs`), environment variables, then
//! command-line flags (clap reads both, `cli.rs`). One overlay applies any
//! source ([`define::overlay`]); `--help` and the README table come from the
//! same rows. Tests build a `Config` directly. Secrets never appear in
//! `Debug` output.

mod cli;
mod codec;
mod database;
mod define;
mod file;
mod proxies;
mod table;
mod values;

pub use cli::{Cli, SettingArgs};
pub use database::{DatabaseUrl, PostgresUrl, UrlError, SUPPORTED_SCHEMES};
pub use proxies::{canonical as canonical_ip, IpBlock, TrustedProxies};
pub use table::{Config, LimitsConfig, UpstreamConfig};
pub use values::{default_personas, ApiKey, AuthMode, OriginPolicy, Persona, Registration, Secret};

use std::path::PathBuf;

use thiserror::Error;

use self::define::{overlay, Info, Source};

/// A configuration value that could not be used; names the setting.
#[derive(Debug, Error)]
#[error("invalid configuration: {field} = {value:?}: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

impl Config {
    /// Defaults, then the TOML file, then environment and flags (from `cli`), validated.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        Self::load_with(cli, |key| std::env::var(key).ok())
    }

    /// Like [`Config::load`], reading the extra variables (`LEPTOS_SITE_ADDR`) through `env`.
    pub fn load_with(cli: &Cli, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let path = cli.config.clone().or_else(|| {
            let default = PathBuf::from("tether.toml");
            default.exists().then_some(default)
        });
        let file = path.map(|path| file::FileSource::read(&path)).transpose()?;
        let flags = cli.settings.source(env("LEPTOS_SITE_ADDR"));
        let mut sources: Vec<&dyn Source> = Vec::new();
        if let Some(file) = &file {
            sources.push(file);
        }
        sources.push(&flags);

        let mut c = Self::defaults();
        for source in &sources {
            c.apply(*source)?;
        }
        // The database lives in the data directory unless it is named itself.
        let named = all_settings()
            .filter(|info| info.env == "DATABASE_URL")
            .any(|info| sources.iter().any(|source| source.get(info).is_some()));
        if !named {
            c.database = DatabaseUrl::in_dir(&c.data_dir);
        }
        if let Some(personas) = file.as_ref().map(|f| f.personas()).transpose()?.flatten() {
            c.personas = personas;
        }
        c.validate()?;
        Ok(c)
    }

    /// Sets every setting `source` has.
    fn apply(&mut self, source: &dyn Source) -> Result<(), ConfigError> {
        overlay(self, Self::SETTINGS, source)?;
        overlay(&mut self.upstream, UpstreamConfig::SETTINGS, source)?;
        overlay(&mut self.limits, LimitsConfig::SETTINGS, source)
    }

    /// Refuses values that would make the server unusable: each setting
    /// must be one its codec would accept (so a `Config` built in code obeys
    /// the same rules as a loaded one), and there must be a persona.
    pub fn validate(&self) -> Result<(), ConfigError> {
        define::validate(self, Self::SETTINGS)?;
        define::validate(&self.upstream, UpstreamConfig::SETTINGS)?;
        define::validate(&self.limits, LimitsConfig::SETTINGS)?;
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

/// Every setting, in the order of the table.
fn all_settings() -> impl Iterator<Item = &'static Info> {
    let server = Config::SETTINGS.iter().map(|s| &s.info);
    let upstream = UpstreamConfig::SETTINGS.iter().map(|s| &s.info);
    let limits = LimitsConfig::SETTINGS.iter().map(|s| &s.info);
    server.chain(upstream).chain(limits)
}

/// The README's settings table (between its `settings` markers).
pub fn readme_table() -> String {
    let cell = |text: String| text.replace('|', "\\|");
    let mut out =
        String::from("| variable | flag | file key | default | meaning |\n|---|---|---|---|---|\n");
    for info in all_settings() {
        let default = match info.shown {
            Some(shown) => shown.to_owned(),
            None => format!("`{}`", (info.default)()),
        };
        out.push_str(&format!(
            "| `{}` | `--{}` | `{}` | {} | {} |\n",
            info.env,
            info.flag,
            info.path,
            cell(default),
            cell(info.help())
        ));
    }
    out
}

#[cfg(test)]
mod tests;
