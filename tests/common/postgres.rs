//! A real PostgreSQL for tests: [`fresh_database`] gives each test an empty
//! database of its own (`CREATE DATABASE`), so tests stay independent and
//! run in parallel.
//!
//! The server is `TETHER_TEST_POSTGRES` when set (a URL whose user may
//! create databases, e.g. `postgres://tether@127.0.0.1:5432/postgres`;
//! `scripts/test.sh` starts one for the whole run). Otherwise the first
//! call starts one for this test binary: `initdb` into a temp dir under
//! `/tmp`, `pg_ctl start` on 127.0.0.1 and a free port, as the `postgres`
//! user when running as root (PostgreSQL refuses root). A watchdog process
//! holds the read end of a pipe this process keeps open; when this process
//! exits, however it exits (even `kill -9`), the pipe closes and the
//! watchdog stops that server by its pidfile (`pg_ctl stop`) and removes
//! the directory. Nothing is stopped by name.
//!
//! The binaries come from `TETHER_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin`, else `PATH`.

use std::{
    os::unix::{fs::MetadataExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
};

/// The environment variable naming an already running server.
pub const SERVER_ENV: &str = "TETHER_TEST_POSTGRES";

/// A new, empty database on the test server; its `postgres://` URL.
pub async fn fresh_database() -> String {
    let admin = tokio::task::spawn_blocking(|| server().admin_url.clone())
        .await
        .expect("the test PostgreSQL starts");
    let name = format!("t_{}", super::uuid().replace('-', ""));
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to the test PostgreSQL at {admin}: {e}"));
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("CREATE DATABASE");
    drop(client);
    connection
        .await
        .expect("connection task")
        .expect("connection closes cleanly");
    with_database(&admin, &name)
}

/// `url` naming database `name` instead of its own (query kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = before_query.split('/').next().unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

/// The test server of this process.
struct Server {
    /// A database that always exists, to create the others from.
    admin_url: String,
    /// Kept open until this process exits: the watchdog's signal.
    _watchdog: Option<Child>,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var(SERVER_ENV) {
        Ok(url) if !url.trim().is_empty() => Server {
            admin_url: url.trim().to_owned(),
            _watchdog: None,
        },
        _ => start(),
    })
}

/// `initdb` and `pg_ctl start` in a new directory, and the watchdog.
fn start() -> Server {
    let dir = tempfile::Builder::new()
        .prefix("tether-pg-")
        .tempdir_in("/tmp")
        .expect("temp dir under /tmp")
        .keep();
    let data = dir.join("data");
    let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if as_root {
        run(Command::new("chmod").arg("755").arg(&dir));
        run(Command::new("chown").arg("postgres:").arg(&dir));
    }
    run(pg(as_root, "initdb")
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "tether", "--no-sync"])
        .args(["--encoding", "UTF8", "--locale", "C"]));
    let port = super::free_port();
    let options = format!(
        "-k {} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=500",
        dir.display()
    );
    // Its own process group: a Ctrl-C of the tests is the watchdog's to act on.
    let watchdog = Command::new("sh")
        .args([
            "-c",
            "cat >/dev/null; $1 -D \"$2/data\" -m immediate -w stop >/dev/null 2>&1; rm -rf \"$2\"",
            "tether-pg-watchdog",
        ])
        .arg(stop_command(as_root))
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("watchdog starts");
    run(pg(as_root, "pg_ctl")
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("server.log"))
        .args(["-o", &options, "-w", "start"])
        .process_group(0));
    Server {
        admin_url: format!("postgres://tether@127.0.0.1:{port}/postgres"),
        _watchdog: Some(watchdog),
    }
}

/// A PostgreSQL program, run as `postgres` when this process is root.
fn pg(as_root: bool, program: &str) -> Command {
    let program = bin_dir().join(program);
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// The watchdog's `pg_ctl` (a shell word list, not quoted).
fn stop_command(as_root: bool) -> String {
    let pg_ctl = bin_dir().join("pg_ctl");
    if as_root {
        format!("runuser -u postgres -- {}", pg_ctl.display())
    } else {
        pg_ctl.display().to_string()
    }
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TETHER_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    // Empty: the programs are looked up on PATH.
    versions.pop().unwrap_or_default()
}

fn run(command: &mut Command) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
