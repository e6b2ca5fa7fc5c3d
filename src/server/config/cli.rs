//! The command line: every setting of the table as a flag that can also
//! come from its environment variable (clap reads both; a flag beats the
//! variable). `--help` shows each default, taken from the table.

use std::{collections::BTreeMap, fmt, path::PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches, Parser};

use super::define::{Info, Raw, Source};

/// Tether: a real-time AI companion chat server.
///
/// Settings come from defaults, then `tether.toml` (or --config), then
/// environment variables, then flags; each later source wins.
#[derive(Debug, Default, Parser)]
#[command(name = "tether", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file (./tether.toml when it exists).
    #[arg(long, env = "TETHER_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Print the resolved configuration (secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Every setting given by flag or variable.
    #[command(flatten)]
    pub settings: SettingArgs,
}

/// The settings given by flag or environment variable, by variable name.
#[derive(Clone, Default)]
pub struct SettingArgs {
    values: BTreeMap<&'static str, String>,
}

impl fmt::Debug for SettingArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |env: &str| super::all_settings().any(|i| i.env == env && i.secret);
        f.debug_map()
            .entries(self.values.iter().map(|(env, value)| {
                let shown = if secret(env) { "<redacted>" } else { value };
                (env, shown)
            }))
            .finish()
    }
}

impl SettingArgs {
    /// These values as a configuration source; `site_addr` is
    /// `LEPTOS_SITE_ADDR`, used when `LISTEN_ADDR` is not given.
    pub(super) fn source(&self, site_addr: Option<String>) -> Flags<'_> {
        Flags {
            values: &self.values,
            site_addr: site_addr.filter(|v| !v.is_empty()),
        }
    }
}

/// The flag (or variable) of one setting.
fn arg(info: &'static Info) -> Arg {
    let check = info.check;
    Arg::new(info.env)
        .long(info.flag)
        .env(info.env)
        .value_name(info.value_name)
        .hide_env_values(info.secret)
        .action(ArgAction::Set)
        .value_parser(move |text: &str| check(text).map(|()| text.to_owned()))
        .help(format!(
            "{} [default: {}]",
            info.help(),
            info.default_text()
        ))
}

impl Args for SettingArgs {
    fn augment_args(cmd: Command) -> Command {
        cmd.args(super::all_settings().map(arg))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for SettingArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for info in super::all_settings() {
            let value = matches
                .try_get_one::<String>(info.env)
                .map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, e))?;
            if let Some(value) = value {
                self.values.insert(info.env, value.clone());
            }
        }
        Ok(())
    }
}

/// Flags and variables as a [`Source`].
pub(super) struct Flags<'a> {
    values: &'a BTreeMap<&'static str, String>,
    site_addr: Option<String>,
}

/// The setting that `LEPTOS_SITE_ADDR` stands in for.
const LISTEN_ADDR: &str = "LISTEN_ADDR";

impl Source for Flags<'_> {
    fn get(&self, info: &Info) -> Option<Raw<'_>> {
        match self.values.get(info.env) {
            Some(value) => Some(Raw::Text(value)),
            None if info.env == LISTEN_ADDR => self.site_addr.as_deref().map(Raw::Text),
            None => None,
        }
    }

    fn name(&self, info: &Info) -> &'static str {
        if info.env == LISTEN_ADDR && !self.values.contains_key(LISTEN_ADDR) {
            "LEPTOS_SITE_ADDR"
        } else {
            info.env
        }
    }
}
