//! `DATABASE_URL`, parsed by scheme.
//!
//! This build stores data in SQLite only. Accepted: `sqlite://path`,
//! `sqlite:path`, `sqlite:///absolute/path` (query parameters ignored) and a
//! plain file path without a scheme. Any other scheme stops start-up, naming
//! it and the supported ones, instead of being mistaken for a file path.

use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
};

use thiserror::Error;

/// The schemes this build can store data with.
pub const SUPPORTED_SCHEMES: &[&str] = &["sqlite"];

/// Where the data lives; `--print-config` shows which store was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file (created with its directory when missing).
    Sqlite { path: PathBuf },
}

impl DatabaseUrl {
    /// `tether.db` in `dir`: the default store of a data directory.
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        Self::Sqlite {
            path: dir.as_ref().join("tether.db"),
        }
    }

    /// One line naming the store, for `--print-config` and the start-up log.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("SQLite file {}", path.display()),
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
        }
    }
}

/// Why a database URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UrlError {
    #[error("is empty")]
    Empty,
    #[error("is not a URL: {0:?} is not a scheme")]
    Malformed(String),
    #[error("names no SQLite file{0}")]
    NoPath(&'static str),
    #[error(
        "scheme `{scheme}:` is not supported by this build (supported: {})",
        supported()
    )]
    Unsupported { scheme: String },
}

fn supported() -> String {
    SUPPORTED_SCHEMES
        .iter()
        .map(|s| format!("`{s}:`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for DatabaseUrl {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, UrlError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(UrlError::Empty);
        }
        let Some((scheme, rest)) = split_scheme(url)? else {
            return sqlite(url);
        };
        match scheme.as_str() {
            "sqlite" => sqlite(rest.strip_prefix("//").unwrap_or(rest)),
            _ => Err(UrlError::Unsupported { scheme }),
        }
    }
}

/// `Some((scheme, rest))` for `scheme:rest`, `None` for a plain path.
///
/// A scheme is a letter then letters, digits, `+`, `-` or `.` (RFC 3986),
/// at least two characters so that `C:\dir` stays a path. Text before `://`
/// that is not a scheme is malformed.
fn split_scheme(url: &str) -> Result<Option<(String, &str)>, UrlError> {
    let Some((head, rest)) = url.split_once(':') else {
        return Ok(None);
    };
    let is_scheme = head.len() >= 2
        && head.starts_with(|c: char| c.is_ascii_alphabetic())
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if is_scheme {
        Ok(Some((head.to_ascii_lowercase(), rest)))
    } else if url.contains("://") || head.is_empty() {
        Err(UrlError::Malformed(head.to_owned()))
    } else {
        Ok(None)
    }
}

/// A SQLite file path; query parameters are ignored.
fn sqlite(rest: &str) -> Result<DatabaseUrl, UrlError> {
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() {
        return Err(UrlError::NoPath(""));
    }
    if path.starts_with(':') {
        return Err(UrlError::NoPath(" (in-memory databases are not supported)"));
    }
    Ok(DatabaseUrl::Sqlite {
        path: PathBuf::from(path),
    })
}

/// `url` with the password of its user info (`user:password@`) hidden.
pub(super) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!(
                "{scheme}://{user}:<redacted>@{host}{}",
                &rest[authority_end..]
            )
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(url: &str) -> PathBuf {
        match url.parse::<DatabaseUrl>() {
            Ok(DatabaseUrl::Sqlite { path }) => path,
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn sqlite_forms_are_accepted_as_before() {
        assert_eq!(path("sqlite://data/tether.db"), Path::new("data/tether.db"));
        assert_eq!(path("sqlite:///var/lib/t.db"), Path::new("/var/lib/t.db"));
        assert_eq!(path("sqlite:t.db?mode=rwc"), Path::new("t.db"));
        assert_eq!(path("SQLITE://t.db"), Path::new("t.db"));
        assert_eq!(path("data/t.db"), Path::new("data/t.db"));
        assert_eq!(path("./odd:name.db"), Path::new("./odd:name.db"));
        assert_eq!(
            DatabaseUrl::in_dir("data").to_string(),
            "sqlite://data/tether.db"
        );
    }

    #[test]
    fn other_schemes_and_malformed_urls_are_refused() {
        let err = "postgres://tether@127.0.0.1:5432/tether"
            .parse::<DatabaseUrl>()
            .expect_err("unsupported");
        assert_eq!(
            err.to_string(),
            "scheme `postgres:` is not supported by this build (supported: `sqlite:`)"
        );
        assert!(matches!(
            "mysql:x".parse::<DatabaseUrl>(),
            Err(UrlError::Unsupported { .. })
        ));
        for bad in [
            "",
            "  ",
            "://x",
            "1db://x",
            "post gres://x",
            "sqlite://",
            "sqlite::memory:",
        ] {
            assert!(bad.parse::<DatabaseUrl>().is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:hunter2@db:5432/t"),
            "postgres://u:<redacted>@db:5432/t"
        );
        assert_eq!(redact("postgres://u@db/t"), "postgres://u@db/t");
        assert_eq!(redact("sqlite://a/b.db"), "sqlite://a/b.db");
    }
}
