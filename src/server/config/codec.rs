//! How a setting's value is written: one codec per kind of value, named in
//! the settings table (`table.rs`).
//!
//! A codec parses the text of a variable or flag, reads the TOML value of
//! the file, and writes a value back (for `--help` and the README). Its
//! [`Codec::check`] is the syntax only (a number where a number is
//! expected), which clap checks while parsing the command line so that such
//! an error names the flag; what a value means (positive, a known format)
//! is checked by [`Codec::parse`] when the configuration is loaded, and that
//! error names the variable or the file key.

use std::{fmt::Display, str::FromStr, time::Duration};

use super::{DatabaseUrl, OriginPolicy, Secret};

/// Reads and writes values of type `T`.
pub(super) trait Codec<T> {
    /// The value is a secret: hidden in `--help` and in error messages.
    const SECRET: bool = false;

    /// The value from the text of a variable or a flag.
    fn parse(text: &str) -> Result<T, String>;

    /// Syntax only, checked by clap; [`Codec::parse`] checks the rest.
    fn check(_text: &str) -> Result<(), String> {
        Ok(())
    }

    /// The value from the file: a string, or a number or boolean as written.
    fn read_toml(value: &toml::Value) -> Result<T, String> {
        match value {
            toml::Value::Array(_) | toml::Value::Table(_) => {
                Err("expected a single value, not a list or a table".into())
            }
            scalar => Self::parse(&toml_text(scalar)),
        }
    }

    /// The value as it would be written in a variable.
    fn show(value: &T) -> String;

    /// A value as it may appear in an error message.
    fn redact(text: &str) -> String {
        if Self::SECRET {
            "<redacted>".into()
        } else {
            text.to_owned()
        }
    }
}

/// The text of a TOML value, as it would be written in a variable.
pub(super) fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items.iter().map(toml_text).collect::<Vec<_>>().join(","),
        other => format!("{other:?}"),
    }
}

/// A list of strings from the file (an array, or one string).
fn toml_strings(value: &toml::Value) -> Result<Vec<String>, String> {
    match value {
        toml::Value::String(s) => Ok(vec![s.clone()]),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("expected strings, found {item:?}"))
            })
            .collect(),
        other => Err(format!("expected a list of strings, found {other:?}")),
    }
}

/// Any value with `FromStr` and `Display`, taken as it is.
pub(super) struct Plain;

impl<T: FromStr + Display> Codec<T> for Plain
where
    T::Err: Display,
{
    fn parse(text: &str) -> Result<T, String> {
        text.parse().map_err(|e: T::Err| e.to_string())
    }

    fn check(text: &str) -> Result<(), String> {
        <Self as Codec<T>>::parse(text).map(drop)
    }

    fn show(value: &T) -> String {
        value.to_string()
    }
}

/// Like [`Plain`], for a comma-separated list: the file may write a list.
pub(super) struct List;

impl<T: FromStr + Display> Codec<T> for List
where
    T::Err: Display,
{
    fn parse(text: &str) -> Result<T, String> {
        <Plain as Codec<T>>::parse(text)
    }

    fn check(text: &str) -> Result<(), String> {
        <Plain as Codec<T>>::check(text)
    }

    fn read_toml(value: &toml::Value) -> Result<T, String> {
        Self::parse(&toml_strings(value)?.join(","))
    }

    fn show(value: &T) -> String {
        value.to_string()
    }
}

/// A text that must not be blank.
pub(super) struct NonEmpty;

impl Codec<String> for NonEmpty {
    fn parse(text: &str) -> Result<String, String> {
        if text.trim().is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(text.to_owned())
        }
    }

    fn show(value: &String) -> String {
        value.clone()
    }
}

/// A count or a rate greater than zero.
pub(super) struct Positive;

macro_rules! positive_integers {
    ($($int:ty),*) => {$(
        impl Codec<$int> for Positive {
            fn parse(text: &str) -> Result<$int, String> {
                match <Plain as Codec<$int>>::parse(text)? {
                    0 => Err("must be greater than 0".into()),
                    n => Ok(n),
                }
            }

            fn check(text: &str) -> Result<(), String> {
                <Plain as Codec<$int>>::check(text)
            }

            fn show(value: &$int) -> String {
                value.to_string()
            }
        }
    )*};
}
positive_integers!(u32, usize);

impl Codec<f64> for Positive {
    fn parse(text: &str) -> Result<f64, String> {
        let v = <Plain as Codec<f64>>::parse(text)?;
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err("must be a positive number".into())
        }
    }

    fn check(text: &str) -> Result<(), String> {
        <Plain as Codec<f64>>::check(text)
    }

    fn show(value: &f64) -> String {
        value.to_string()
    }
}

/// A duration written in seconds (fractions allowed), greater than zero.
pub(super) struct Secs;

impl Codec<Duration> for Secs {
    fn parse(text: &str) -> Result<Duration, String> {
        let secs = <Plain as Codec<f64>>::parse(text)?;
        if !(secs.is_finite() && secs > 0.0) {
            return Err("must be a positive number of seconds".into());
        }
        Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
    }

    fn check(text: &str) -> Result<(), String> {
        <Plain as Codec<f64>>::check(text)
    }

    fn show(value: &Duration) -> String {
        value.as_secs_f64().to_string()
    }
}

/// An optional number; unset (or empty) leaves the choice to the provider.
pub(super) struct Optional;

impl Codec<Option<f32>> for Optional {
    fn parse(text: &str) -> Result<Option<f32>, String> {
        if text.is_empty() {
            return Ok(None);
        }
        <Plain as Codec<f32>>::parse(text).map(Some)
    }

    fn check(text: &str) -> Result<(), String> {
        Self::parse(text).map(drop)
    }

    fn show(value: &Option<f32>) -> String {
        value.map(|v| v.to_string()).unwrap_or_default()
    }
}

/// A token count where `0` means "the provider's default".
pub(super) struct ZeroIsUnset;

impl Codec<Option<u32>> for ZeroIsUnset {
    fn parse(text: &str) -> Result<Option<u32>, String> {
        let n = <Plain as Codec<u32>>::parse(text)?;
        Ok((n > 0).then_some(n))
    }

    fn check(text: &str) -> Result<(), String> {
        <Plain as Codec<u32>>::check(text)
    }

    fn show(value: &Option<u32>) -> String {
        value.unwrap_or(0).to_string()
    }
}

/// An http(s) URL, kept without its trailing slash.
pub(super) struct BaseUrl;

impl Codec<String> for BaseUrl {
    fn parse(text: &str) -> Result<String, String> {
        Ok(text.trim_end_matches('/').to_owned())
    }

    fn show(value: &String) -> String {
        value.clone()
    }
}

/// A secret: never shown.
pub(super) struct Hidden;

impl Codec<Secret> for Hidden {
    const SECRET: bool = true;

    fn parse(text: &str) -> Result<Secret, String> {
        Ok(Secret::new(text))
    }

    fn show(_: &Secret) -> String {
        String::new()
    }
}

impl Codec<Option<Secret>> for Hidden {
    const SECRET: bool = true;

    fn parse(text: &str) -> Result<Option<Secret>, String> {
        Ok(Some(Secret::new(text)))
    }

    fn show(_: &Option<Secret>) -> String {
        String::new()
    }
}

/// Stop sequences: `|`-separated in a variable, a list in the file.
pub(super) struct Stops;

impl Codec<Vec<String>> for Stops {
    fn parse(text: &str) -> Result<Vec<String>, String> {
        Ok(text
            .split('|')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    }

    fn read_toml(value: &toml::Value) -> Result<Vec<String>, String> {
        toml_strings(value)
    }

    fn show(value: &Vec<String>) -> String {
        value.join("|")
    }
}

/// Allowed origins: comma-separated in a variable, a list in the file.
pub(super) struct Origins;

impl Codec<OriginPolicy> for Origins {
    fn parse(text: &str) -> Result<OriginPolicy, String> {
        OriginPolicy::parse(Some(text)).map_err(|e| e.reason)
    }

    fn read_toml(value: &toml::Value) -> Result<OriginPolicy, String> {
        Self::parse(&toml_strings(value)?.join(","))
    }

    fn show(value: &OriginPolicy) -> String {
        match value {
            OriginPolicy::SameOrigin => String::new(),
            OriginPolicy::List(list) => list.join(","),
        }
    }
}

/// `true`, `false` or `auto` (`None`).
pub(super) struct CookieMode;

impl Codec<Option<bool>> for CookieMode {
    fn parse(text: &str) -> Result<Option<bool>, String> {
        match text {
            "auto" => Ok(None),
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err("expected `true`, `false` or `auto`".into()),
        }
    }

    fn show(value: &Option<bool>) -> String {
        value.map_or_else(|| "auto".into(), |v| v.to_string())
    }
}

/// `text` or `json` (`true`).
pub(super) struct LogFormat;

impl Codec<bool> for LogFormat {
    fn parse(text: &str) -> Result<bool, String> {
        match text {
            "json" => Ok(true),
            "text" => Ok(false),
            _ => Err("expected `text` or `json`".into()),
        }
    }

    fn show(value: &bool) -> String {
        if *value { "json" } else { "text" }.into()
    }
}

/// A database URL, by scheme (see [`DatabaseUrl`]).
pub(super) struct Database;

impl Codec<DatabaseUrl> for Database {
    fn parse(text: &str) -> Result<DatabaseUrl, String> {
        text.parse()
            .map_err(|e: super::database::UrlError| e.to_string())
    }

    fn show(value: &DatabaseUrl) -> String {
        value.to_string()
    }

    fn redact(text: &str) -> String {
        super::database::redact(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_read_what_they_show() {
        let d = Duration::from_millis(1_500);
        assert_eq!(Secs::parse(&Secs::show(&d)), Ok(d));
        assert_eq!(ZeroIsUnset::parse("0"), Ok(None));
        assert_eq!(ZeroIsUnset::show(&None), "0");
        let stops = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(Stops::parse(&Stops::show(&stops)), Ok(stops));
        assert_eq!(
            <Positive as Codec<usize>>::parse("0").map_err(drop),
            Err(())
        );
        assert!(
            <Positive as Codec<usize>>::check("0").is_ok(),
            "meaning is checked later"
        );
        assert!(<Positive as Codec<usize>>::check("lots").is_err());
        assert!(<Positive as Codec<f64>>::parse("inf").is_err());
        assert!(Secs::parse("-1").is_err());
    }

    #[test]
    fn file_values_may_be_numbers_strings_or_lists() {
        let v = toml::Value::Integer(30);
        assert_eq!(Secs::read_toml(&v), Ok(Duration::from_secs(30)));
        let list = toml::Value::Array(vec![toml::Value::String("http://a.example".into())]);
        assert_eq!(
            Origins::read_toml(&list),
            Ok(OriginPolicy::List(vec!["http://a.example".into()]))
        );
        assert!(<Plain as Codec<usize>>::read_toml(&list).is_err());
        assert!(<Hidden as Codec<Secret>>::redact("sk-1").contains("redacted"));
    }
}
