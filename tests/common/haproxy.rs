//! HAProxy (Debian's, installed by `scripts/setup.sh --services`) in front of
//! Tether instances, run as a child of the test with `-db` (foreground) and
//! stopped by its PID when dropped.
//!
//! Its configuration is `deploy/haproxy.cfg` itself with only the `bind`
//! address and the `server` lines replaced, so the tests check the file
//! operators deploy: round robin, no stickiness, `timeout tunnel` for
//! WebSockets and SSE, `option forwardfor`, health check `GET /readyz` every
//! 300 ms (`fall 3 rise 1`). The tests add one line: an admin socket, to see
//! which servers the health check has up. Ready means its port accepts
//! connections.

use std::{
    fmt::Write as _,
    fs::File,
    net::SocketAddr,
    process::{Child, Command, Stdio},
};

use super::{process, WsClient};

/// The deployed configuration whose shape the tests run.
const DEPLOYED: &str = include_str!("../../deploy/haproxy.cfg");

/// A running HAProxy.
pub struct Haproxy {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Haproxy {
    /// Starts HAProxy balancing over `backends` (`tether-0`, `tether-1`, … in
    /// that order) and waits until its port accepts connections.
    pub async fn start(backends: &[SocketAddr]) -> Self {
        let port = super::free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("haproxy.cfg");
        let mut text = config_for(port, backends);
        // The tests' addition: an admin socket to read the servers' states.
        let socket = dir.path().join("admin.sock");
        text = text.replacen(
            "\nglobal\n",
            &format!(
                "\nglobal\n    stats socket {} level admin\n",
                socket.display()
            ),
            1,
        );
        std::fs::write(&config, text).expect("write haproxy.cfg");
        let log = dir.path().join("haproxy.log");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(File::create(&log).expect("log file"))
            .stderr(File::create(dir.path().join("haproxy.err")).expect("log file"))
            .spawn()
            .expect("spawn haproxy (scripts/setup.sh --services installs it)");
        let mut proxy = Self {
            child: Some(child),
            port,
            dir,
        };
        proxy.wait_listening().await;
        proxy
    }

    async fn wait_listening(&mut self) {
        let addr = format!("127.0.0.1:{}", self.port);
        let errors = self.dir.path().join("haproxy.err");
        let child = &mut self.child;
        super::poll_until("haproxy accepts connections", || {
            let exited = child.as_mut().map(Child::try_wait);
            let addr = addr.clone();
            let errors = errors.clone();
            async move {
                if let Some(Ok(Some(status))) = exited {
                    let text = std::fs::read_to_string(&errors).unwrap_or_default();
                    return Err(format!("exited with {status}:\n{text}"));
                }
                Ok(tokio::net::TcpStream::connect(&addr).await.is_ok())
            }
        })
        .await;
    }

    /// The process id (`None` while stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What HAProxy logged so far (one line per request: `option httplog`,
    /// with the server that took it, e.g. `tether/tether-1`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// The state HAProxy gives server `i` (`tether-i`): `UP`, `DOWN`, `MAINT`,
    /// … (its admin socket's `show stat`).
    pub async fn server_status(&self, i: usize) -> String {
        let stat = self.admin("show stat").await.expect("haproxy admin socket");
        let name = format!("tether-{i}");
        stat.lines()
            .map(|line| line.split(',').collect::<Vec<_>>())
            .find(|cols| cols.len() > 17 && cols[0] == "tether" && cols[1] == name)
            .map(|cols| cols[17].to_owned())
            .unwrap_or_else(|| panic!("no server {name} in show stat:\n{stat}"))
    }

    /// Waits until server `i`'s state starts with `status` (`UP`, `DOWN`):
    /// after a health check saw it (every 300 ms).
    pub async fn wait_server(&self, i: usize, status: &str) {
        let what = format!("haproxy sees tether-{i} {status}");
        super::poll_until(&what, || async move {
            // The admin socket may not be there yet just after the start.
            if self.admin("show stat").await.is_err() {
                return Ok(false);
            }
            Ok(self.server_status(i).await.starts_with(status))
        })
        .await;
    }

    /// One command on the admin socket; its answer.
    async fn admin(&self, command: &str) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = self.dir.path().join("admin.sock");
        let mut stream = tokio::net::UnixStream::connect(&socket).await?;
        stream.write_all(format!("{command}\n").as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    /// A fresh identity cookie, fetched through the proxy.
    pub async fn cookie(&self) -> String {
        process::cookie_at(self.port).await
    }

    /// A socket through the proxy (to whichever instance is next), past its
    /// `hello`.
    pub async fn connect(&self, cookie: &str) -> WsClient {
        process::connect_at(self.port, cookie).await
    }

    /// A new user with one socket through the proxy.
    pub async fn user(&self) -> WsClient {
        let cookie = self.cookie().await;
        self.connect(&cookie).await
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `deploy/haproxy.cfg` listening on `127.0.0.1:port` with `backends` as its
/// servers; every other line as deployed.
pub fn config_for(port: u16, backends: &[SocketAddr]) -> String {
    let mut out = String::new();
    let mut servers_written = false;
    for line in DEPLOYED.lines() {
        let directive = line.trim_start();
        let indent = &line[..line.len() - directive.len()];
        if directive.starts_with("bind ") {
            let _ = writeln!(out, "{indent}bind 127.0.0.1:{port}");
        } else if directive.starts_with("server ") {
            if !servers_written {
                for (i, backend) in backends.iter().enumerate() {
                    let _ = writeln!(out, "{indent}server tether-{i} {backend}");
                }
                servers_written = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(servers_written, "deploy/haproxy.cfg has server lines");
    out
}
