//! The real `tether` binary as a child process (for kill -9, signals and
//! settings given as environment variables).

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

/// A `tether` process and what it logged until it listened.
pub struct Spawned {
    pub child: std::process::Child,
    pub lines_rx: std::sync::mpsc::Receiver<String>,
    pub log: Vec<String>,
    pub port: u16,
}

/// Starts the real binary on a free port with its data in `dir`, and waits
/// until it logs that it listens.
pub fn spawn_tether(dir: &std::path::Path, upstream: &str, env: &[(&str, &str)]) -> Spawned {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("TETHER_DATA_DIR", dir)
        .env("OPENAI_BASE_URL", upstream)
        .env("OPENAI_MODEL", "fake")
        .env("OPENAI_API_KEY", "sk-test-never-logged")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tether");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut log = Vec::new();
    loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("tether starts");
        let ready = line.contains("tether listening");
        log.push(line);
        if ready {
            break;
        }
    }
    Spawned {
        child,
        lines_rx,
        log,
        port,
    }
}
