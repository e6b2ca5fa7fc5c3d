//! `tether.toml`: the configuration file (see `tether.example.toml`).
//!
//! Tables `[server]`, `[upstream]` and `[limits]` hold the settings of the
//! table (`table.rs`) under their file keys, and `[[personas]]` the
//! personas. Every key is optional; a missing key keeps its default.
//! Unknown keys are errors, so a typo never silently does nothing.

use std::path::{Path, PathBuf};

use super::{
    all_settings,
    define::{Info, Raw, Source},
    ConfigError, Persona,
};

/// The parsed file, as a configuration source.
#[derive(Debug)]
pub(super) struct FileSource {
    path: PathBuf,
    table: toml::Table,
}

const PERSONAS: &str = "personas";

impl FileSource {
    /// Reads and parses the file; errors name the file and the key.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            field: "config file",
            value: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` (read from `path`) and refuses unknown tables and keys.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let error = |reason: String| ConfigError {
            field: "config file",
            value: path.display().to_string(),
            reason,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| error(e.to_string()))?;
        for (name, section) in &table {
            if name == PERSONAS {
                continue;
            }
            let known: Vec<&str> = all_settings()
                .filter(|info| info.section == name)
                .map(|info| info.key)
                .collect();
            if known.is_empty() {
                return Err(error(format!(
                    "unknown table `[{name}]` (expected server, upstream, limits or personas)"
                )));
            }
            let Some(section) = section.as_table() else {
                return Err(error(format!("`{name}` must be a table (`[{name}]`)")));
            };
            if let Some(key) = section.keys().find(|key| !known.contains(&key.as_str())) {
                return Err(error(format!(
                    "unknown key `{name}.{key}`; known keys: {}",
                    known.join(", ")
                )));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            table,
        })
    }

    /// The `[[personas]]`, when the file has them.
    pub fn personas(&self) -> Result<Option<Vec<Persona>>, ConfigError> {
        let Some(personas) = self.table.get(PERSONAS) else {
            return Ok(None);
        };
        personas
            .clone()
            .try_into()
            .map(Some)
            .map_err(|e: toml::de::Error| ConfigError {
                field: "personas",
                value: self.path.display().to_string(),
                reason: e.to_string(),
            })
    }
}

impl Source for FileSource {
    fn get(&self, info: &Info) -> Option<Raw<'_>> {
        self.table
            .get(info.section)?
            .as_table()?
            .get(info.key)
            .map(Raw::Toml)
    }

    fn name(&self, info: &Info) -> &'static str {
        info.path
    }
}
