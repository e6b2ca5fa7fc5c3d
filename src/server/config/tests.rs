//! Loading, precedence, and the generated docs kept in step with the table.

use std::path::Path;

use clap::{CommandFactory, Parser};

use super::{file::FileSource, *};

fn load(args: &[&str]) -> Result<Config, ConfigError> {
    let mut argv = vec!["tether"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("arguments parse");
    Config::load_with(&cli, |_| None)
}

/// The defaults with the file `text` applied.
fn with_file(text: &str) -> Result<Config, ConfigError> {
    let file = FileSource::parse(text, Path::new("tether.toml"))?;
    let mut c = Config::defaults();
    c.apply(&file)?;
    if let Some(personas) = file.personas()? {
        c.personas = personas;
    }
    Ok(c)
}

#[test]
fn defaults_are_valid() {
    let c = Config::defaults();
    c.validate().expect("defaults validate");
    assert_eq!(c.origins, OriginPolicy::SameOrigin);
    assert_eq!(c.database.to_string(), "sqlite://data/tether.db");
    assert_eq!(c.persona(None).map(|p| p.id.as_str()), Some("companion"));
}

#[test]
fn flags_override_and_bad_values_name_the_field() {
    let c = load(&[
        "--max-frame-bytes",
        "2048",
        "--openai-base-url",
        "http://x/v1/",
        "--allowed-origins",
        "http://localhost:5173, https://chat.example",
        "--data-dir",
        "/tmp/t",
    ])
    .expect("loads");
    assert_eq!(c.limits.max_frame_bytes, 2048);
    assert_eq!(c.upstream.base_url, "http://x/v1");
    assert_eq!(c.database.to_string(), "sqlite:///tmp/t/tether.db");
    assert!(c.origins.allows("http://localhost:5173", None));
    assert!(!c.origins.allows("http://evil.example", None));

    assert_eq!(
        load(&["--rate-per-sec", "0"]).expect_err("refused").field,
        "RATE_PER_SEC"
    );
    assert_eq!(
        load(&["--allowed-origins", "localhost:5173"])
            .expect_err("refused")
            .field,
        "ALLOWED_ORIGINS"
    );
    assert_eq!(
        load(&["--log-format", "xml"]).expect_err("refused").field,
        "LOG_FORMAT"
    );
    assert!(
        Cli::try_parse_from(["tether", "--max-frame-bytes", "lots"]).is_err(),
        "clap refuses non-numbers, naming the flag"
    );
}

#[test]
fn a_named_database_wins_over_the_data_dir() {
    let c = load(&["--data-dir", "/tmp/t", "--database-url", "sqlite:x.db"]).expect("loads");
    assert_eq!(
        c.database,
        DatabaseUrl::Sqlite {
            path: "x.db".into()
        }
    );
    let err = load(&["--database-url", "mysql://u:pw@db/t"]).expect_err("refused");
    assert_eq!(err.field, "DATABASE_URL");
    assert!(err.reason.contains("mysql") && err.reason.contains("sqlite"));
    assert!(
        !err.to_string().contains("pw@"),
        "the password is redacted: {err}"
    );
}

#[test]
fn leptos_site_addr_is_read_when_listen_addr_is_unset() {
    let cli = Cli::try_parse_from(["tether"]).expect("parses");
    let c = Config::load_with(&cli, |_| Some("0.0.0.0:8000".into())).expect("loads");
    assert_eq!(c.listen_addr.port(), 8000);
    let err = Config::load_with(&cli, |_| Some("nowhere".into())).expect_err("refused");
    assert_eq!(err.field, "LEPTOS_SITE_ADDR");
    let cli = Cli::try_parse_from(["tether", "--listen-addr", "127.0.0.1:9"]).expect("parses");
    let c = Config::load_with(&cli, |_| Some("0.0.0.0:8000".into())).expect("loads");
    assert_eq!(c.listen_addr.port(), 9);
}

#[test]
fn same_origin_compares_origin_with_host() {
    let p = OriginPolicy::SameOrigin;
    assert!(p.allows("http://127.0.0.1:3000", Some("127.0.0.1:3000")));
    assert!(!p.allows("http://evil.example", Some("127.0.0.1:3000")));
    assert!(!p.allows("http://127.0.0.1:3000", None));
}

#[test]
fn secrets_are_never_printed() {
    let mut c = Config::defaults();
    c.upstream.api_key = Secret::new("sk-very-secret");
    c.session_secret = Some(Secret::new("cookie-key-secret"));
    let debug = format!("{c:?}");
    assert!(!debug.contains("sk-very-secret"));
    assert!(!debug.contains("cookie-key-secret"));
    let cli = Cli::try_parse_from(["tether", "--openai-api-key", "sk-flag-secret"]).expect("cli");
    assert!(!format!("{cli:?}").contains("sk-flag-secret"));
}

#[test]
fn validate_applies_the_same_rules_to_a_config_built_in_code() {
    let mut c = Config::defaults();
    c.limits.store_writer_batch = 0;
    assert_eq!(
        c.validate().expect_err("refused").field,
        "STORE_WRITER_BATCH"
    );
    let mut c = Config::defaults();
    c.upstream.model = " ".into();
    assert_eq!(c.validate().expect_err("refused").field, "OPENAI_MODEL");
}

#[test]
fn example_file_parses_and_applies() {
    let c = with_file(include_str!("../../../tether.example.toml")).expect("applies");
    c.validate().expect("valid");
    assert_eq!(c.personas[0].id, "companion");
    assert!(c.personas[0].system_prompt.contains("sweet AI Girlfriend"));
}

#[test]
fn example_file_mentions_every_setting() {
    let example = include_str!("../../../tether.example.toml");
    for info in all_settings() {
        let section = example
            .split(&format!("[{}]", info.section))
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .unwrap_or_default();
        let key = format!("{} = ", info.key);
        assert!(
            section.contains(&key) && section.contains(info.env),
            "tether.example.toml's [{}] shows `{key}` with {}",
            info.section,
            info.env
        );
    }
}

#[test]
fn partial_sections_keep_defaults() {
    let c =
        with_file("[limits]\nmax_frame_bytes = 999\n[upstream]\nmodel = \"m\"\n").expect("applies");
    assert_eq!(c.limits.max_frame_bytes, 999);
    assert_eq!(
        c.limits.max_message_chars, 8_000,
        "untouched limit keeps its default"
    );
    assert_eq!(c.upstream.model, "m");
}

#[test]
fn typos_and_bad_values_are_refused_with_the_key() {
    let err = with_file("[limits]\nmax_frame_byte = 1\n").expect_err("unknown key");
    assert!(err.reason.contains("max_frame_byte"), "{}", err.reason);
    let err = with_file("[limits]\nmax_frame_bytes = \"lots\"\n").expect_err("bad type");
    assert!(err.to_string().contains("max_frame_bytes"), "{err}");
    let err = with_file("[server]\nlisten_addr = \"nowhere\"\n").expect_err("bad address");
    assert_eq!(err.field, "server.listen_addr");
    let err = with_file("[servr]\n").expect_err("unknown table");
    assert!(err.reason.contains("servr"), "{}", err.reason);
    let err = with_file("[[personas]]\nid = \"x\"\n").expect_err("incomplete persona");
    assert_eq!(err.field, "personas");
}

#[test]
fn help_shows_every_default_from_the_table() {
    let help = Cli::command().render_help().to_string();
    for info in all_settings() {
        assert!(
            !info.default_text().is_empty(),
            "{} shows a default",
            info.env
        );
        assert!(help.contains(&format!("--{}", info.flag)), "{}", info.flag);
    }
    assert!(help.contains("[default: 16384]"), "{help}");
    assert!(help.contains("[default: 127.0.0.1:3000]"), "{help}");
}

/// Fails when README.md's settings table and the table in `table.rs`
/// disagree; the message holds the table to paste between the markers.
#[test]
fn readme_table_matches_the_definition() {
    let readme = include_str!("../../../README.md");
    let begin = "<!-- settings:begin";
    let end = "<!-- settings:end -->";
    let start = readme.find(begin).expect("README has the begin marker");
    let body = &readme[start..];
    let body = &body[body.find("-->\n").expect("marker closes") + 4..];
    let body = &body[..body.find(end).expect("README has the end marker")];
    let expected = readme_table();
    assert!(
        body == expected,
        "README.md's settings table is out of date; replace it with:\n\n{expected}"
    );
}
