//! The machinery behind the one definition of every setting (`table.rs`).
//!
//! [`settings!`] turns a table of rows — doc, field, type, default, codec,
//! file key, variable, flag — into the configuration struct, its
//! `defaults()`, and a `SETTINGS` list that drives everything else: the
//! command line (`cli.rs`), the file (`file.rs`), the overlay of each source
//! onto the defaults ([`overlay`]), `--help` and the README table.
//!
//! Why a `macro_rules!` table and not figment or a derive: the three sources
//! differ in shape (flat flags and variables, a sectioned file, secrets that
//! must not be echoed, values such as `COOKIE_SECURE=auto` that map onto
//! other types), so figment would still need a struct per source plus
//! conversions, and it brings `pear`, `uncased` and a proc-macro stack to
//! build on every clean build. A declarative macro costs nothing to build and
//! keeps each setting in exactly one row.

use super::{codec::Codec, ConfigError};

/// What describes a setting, whatever struct it lives in.
#[derive(Debug)]
pub(super) struct Info {
    /// The file's table (`server`, `upstream`, `limits`).
    pub section: &'static str,
    /// The key in that table.
    pub key: &'static str,
    /// `section.key`, how file errors name the setting.
    pub path: &'static str,
    /// The environment variable, also how other errors name the setting.
    pub env: &'static str,
    /// The long flag, without `--`.
    pub flag: &'static str,
    /// The placeholder in `--help`.
    pub value_name: &'static str,
    /// The doc comment's lines.
    pub doc: &'static [&'static str],
    /// Never shown in `--help` or errors.
    pub secret: bool,
    /// Syntax check, run by clap.
    pub check: fn(&str) -> Result<(), String>,
    /// The default as written, when it does not say it well by itself.
    pub shown: Option<&'static str>,
    /// The default as its codec writes it.
    pub default: fn() -> String,
    /// A value as it may appear in an error.
    pub redact: fn(&str) -> String,
    /// Whether the codec accepts a value (syntax and meaning).
    pub accepts: fn(&str) -> Result<(), String>,
}

impl Info {
    /// The doc comment on one line.
    pub fn help(&self) -> String {
        self.doc
            .iter()
            .map(|line| line.trim())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The default as shown in `--help` and the README.
    pub fn default_text(&self) -> String {
        self.shown.map_or_else(|| (self.default)(), str::to_owned)
    }
}

/// One setting of the struct `S`: its description and how to set it.
pub(super) struct Setting<S> {
    pub info: Info,
    pub apply: fn(&mut S, &Raw<'_>) -> Result<(), String>,
    /// The current value, as its codec writes it.
    pub current: fn(&S) -> String,
}

/// A value as a source holds it.
pub(super) enum Raw<'a> {
    /// From a variable or a flag.
    Text(&'a str),
    /// From the file.
    Toml(&'a toml::Value),
}

impl Raw<'_> {
    /// The value with `C`.
    pub fn read<C: Codec<T>, T>(&self) -> Result<T, String> {
        match self {
            Raw::Text(text) => C::parse(text),
            Raw::Toml(value) => C::read_toml(value),
        }
    }

    fn text(&self) -> String {
        match self {
            Raw::Text(text) => (*text).to_owned(),
            Raw::Toml(value) => super::codec::toml_text(value),
        }
    }
}

/// Where values come from: the file, or the environment and flags.
pub(super) trait Source {
    /// The value this source has for `setting`, if any.
    fn get(&self, setting: &Info) -> Option<Raw<'_>>;

    /// How an error names `setting`: its file key or its variable.
    fn name(&self, setting: &Info) -> &'static str;
}

/// Sets on `target` every setting that `source` has.
pub(super) fn overlay<S>(
    target: &mut S,
    settings: &[Setting<S>],
    source: &dyn Source,
) -> Result<(), ConfigError> {
    for setting in settings {
        let info = &setting.info;
        if let Some(raw) = source.get(info) {
            (setting.apply)(target, &raw).map_err(|reason| ConfigError {
                field: source.name(info),
                value: (info.redact)(&raw.text()),
                reason,
            })?;
        }
    }
    Ok(())
}

/// Checks every setting of `target` with its codec; errors name the variable.
pub(super) fn validate<S>(target: &S, settings: &[Setting<S>]) -> Result<(), ConfigError> {
    for setting in settings {
        let info = &setting.info;
        let text = (setting.current)(target);
        (info.accepts)(&text).map_err(|reason| ConfigError {
            field: info.env,
            value: (info.redact)(&text),
            reason,
        })?;
    }
    Ok(())
}

/// Defines a configuration struct from its table of settings; see `table.rs`.
macro_rules! settings {
    (@key $field:ident) => { stringify!($field) };
    (@key $field:ident $key:literal) => { $key };
    (@shown) => { None };
    (@shown $shown:literal) => { Some($shown) };
    (
        $(#[$meta:meta])*
        pub struct $name:ident in $section:literal {
            $(
                $(#[doc = $doc:literal])+
                $field:ident: $ty:ty = $default:expr, $codec:ty,
                    $(key $key:literal,)? env $env:literal, flag $flag:literal,
                    value $value_name:literal $(, shown $shown:literal)?;
            )+
        }
        $(
            also {
                $( $(#[doc = $xdoc:literal])+ $xfield:ident: $xty:ty = $xdefault:expr; )+
            }
        )?
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
            $($( $(#[doc = $xdoc])+ pub $xfield: $xty, )+)?
        }

        impl $name {
            /// Every setting of this struct, in the order of the table.
            pub(super) const SETTINGS: &'static [$crate::server::config::define::Setting<$name>] = &[$(
                $crate::server::config::define::Setting {
                    info: $crate::server::config::define::Info {
                        section: $section,
                        key: settings!(@key $field $($key)?),
                        path: concat!($section, ".", settings!(@key $field $($key)?)),
                        env: $env,
                        flag: $flag,
                        value_name: $value_name,
                        doc: &[$($doc),+],
                        secret: <$codec as $crate::server::config::codec::Codec<$ty>>::SECRET,
                        check: <$codec as $crate::server::config::codec::Codec<$ty>>::check,
                        shown: settings!(@shown $($shown)?),
                        default: || <$codec as $crate::server::config::codec::Codec<$ty>>::show(&$name::defaults().$field),
                        redact: <$codec as $crate::server::config::codec::Codec<$ty>>::redact,
                        accepts: |text| {
                            <$codec as $crate::server::config::codec::Codec<$ty>>::parse(text).map(drop)
                        },
                    },
                    apply: |target: &mut $name, raw: &$crate::server::config::define::Raw<'_>| {
                        target.$field = raw.read::<$codec, $ty>()?;
                        Ok(())
                    },
                    current: |target: &$name| {
                        <$codec as $crate::server::config::codec::Codec<$ty>>::show(&target.$field)
                    },
                },
            )+];

            /// The built-in defaults: what runs with nothing configured.
            pub fn defaults() -> Self {
                Self {
                    $( $field: $default, )+
                    $($( $xfield: $xdefault, )+)?
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::defaults()
            }
        }
    };
}

pub(super) use settings;
