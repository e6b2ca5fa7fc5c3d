//! `DATABASE_URL`, parsed by scheme.
//!
//! Accepted: `sqlite://path`, `sqlite:path`, `sqlite:///absolute/path`
//! (query parameters ignored) and a plain file path without a scheme, for a
//! SQLite file; `postgres://…` and `postgresql://…` (libpq's URL form,
//! checked by `tokio-postgres`) for PostgreSQL. Any other scheme stops
//! start-up, naming it and the supported ones, instead of being mistaken for
//! a file path. A Postgres URL's password is never shown: `Display`,
//! `Debug` and [`DatabaseUrl::describe`] hide it.

use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
};

use thiserror::Error;

/// The schemes this build can store data with.
pub const SUPPORTED_SCHEMES: &[&str] = &["sqlite", "postgres", "postgresql"];

/// Where the data lives; `--print-config` shows which store was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file (created with its directory when missing).
    Sqlite { path: PathBuf },
    /// A PostgreSQL database (it must exist; the schema is migrated).
    Postgres { url: PostgresUrl },
}

/// A `postgres://` URL, password included; only [`PostgresUrl::expose`]
/// gives it out (to connect), every other view hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// The URL with its password: for connecting only, never for a log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({:?})", redact(&self.0))
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
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
            Self::Postgres { url } => format!("PostgreSQL {url}"),
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            Self::Postgres { url } => write!(f, "{url}"),
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
    /// `tokio-postgres` refused it; its words never contain the password.
    #[error("is not a valid PostgreSQL URL: {0}")]
    Postgres(String),
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
            // The client reads the scheme in lower case only.
            "postgres" | "postgresql" => postgres(&format!("{scheme}:{rest}")),
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

/// A Postgres URL, checked by the client that will connect with it.
fn postgres(url: &str) -> Result<DatabaseUrl, UrlError> {
    url.parse::<tokio_postgres::Config>()
        .map_err(|e| UrlError::Postgres(e.to_string()))?;
    Ok(DatabaseUrl::Postgres {
        url: PostgresUrl(url.to_owned()),
    })
}

/// `url` with its password hidden: the one of the user info
/// (`user:password@`) and a `password=` query parameter.
pub(super) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{user}:<redacted>@{host}")
        }
        _ => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=<redacted>")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(url: &str) -> PathBuf {
        match url.parse::<DatabaseUrl>() {
            Ok(DatabaseUrl::Sqlite { path }) => path,
            Ok(other) => panic!("{url}: not SQLite: {other}"),
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
        let err = "mysql://tether@127.0.0.1:3306/tether"
            .parse::<DatabaseUrl>()
            .expect_err("unsupported");
        assert_eq!(
            err.to_string(),
            "scheme `mysql:` is not supported by this build \
             (supported: `sqlite:`, `postgres:`, `postgresql:`)"
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
            "postgres://u@h:notaport/db",
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
        assert_eq!(
            redact("postgres://u@db/t?sslmode=disable&password=hunter2"),
            "postgres://u@db/t?sslmode=disable&password=<redacted>"
        );
        assert_eq!(
            redact("postgres://u:pw@db?password=x"),
            "postgres://u:<redacted>@db?password=<redacted>"
        );
        assert_eq!(redact("sqlite://a/b.db"), "sqlite://a/b.db");
    }

    #[test]
    fn postgres_urls_are_accepted_and_never_show_the_password() {
        for url in [
            "postgres://tether:hunter2@db.internal:5432/tether",
            "POSTGRESQL://tether:hunter2@db.internal/tether?application_name=t",
        ] {
            let parsed: DatabaseUrl = url.parse().expect("accepted");
            let DatabaseUrl::Postgres { url: pg } = &parsed else {
                panic!("{url}: not Postgres")
            };
            assert!(
                pg.expose().eq_ignore_ascii_case(url),
                "connects with the URL as given"
            );
            for shown in [parsed.to_string(), format!("{parsed:?}"), parsed.describe()] {
                assert!(!shown.contains("hunter2"), "{shown}");
                assert!(shown.contains("<redacted>"), "{shown}");
                assert!(shown.contains("db.internal"), "{shown}");
            }
            // What `--print-config` shows is itself a valid value.
            assert!(parsed.to_string().parse::<DatabaseUrl>().is_ok());
        }
    }
}
