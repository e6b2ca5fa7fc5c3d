//! The real `tether` binary as a child process (for kill -9, signals, and
//! settings given as environment variables), logging JSON lines.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use tether::protocol::ServerFrame;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};

use super::{WsClient, STEP};

/// The API key every spawned server gets; no log line may contain it.
pub const API_KEY: &str = "sk-test-never-logged";

/// The `tether` binary running on a free port.
pub struct Tether {
    child: Option<Child>,
    pub port: u16,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    pub log: Vec<String>,
}

impl Tether {
    /// Starts the binary with its data in `dir` and waits until it listens.
    pub fn spawn_in(dir: &Path, upstream: &str, env: &[(&str, &str)]) -> Self {
        let dir = dir.display().to_string();
        let mut all = vec![("TETHER_DATA_DIR", dir.as_str())];
        all.extend_from_slice(env);
        Self::spawn(upstream, &all)
    }

    /// Starts the binary (`env` says where its data is) on a free port
    /// (`free_port`: one no outgoing connection can take meanwhile) and
    /// waits until it serves.
    pub fn spawn(upstream: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn_on(super::free_port(), upstream, env)
    }

    /// Starts the binary on `port` (e.g. again on the port a load balancer
    /// knows it by) and waits until it serves.
    pub fn spawn_on(port: u16, upstream: &str, env: &[(&str, &str)]) -> Self {
        Self::try_spawn_on(port, upstream, env).unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// Starts the binary on `port` and waits until `GET /healthz` answers;
    /// `Err` (what it logged) when it exits first, e.g. because the port is
    /// taken (it says so on stderr, which the test's output shows).
    pub fn try_spawn_on(port: u16, upstream: &str, env: &[(&str, &str)]) -> Result<Self, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("OPENAI_BASE_URL", upstream)
            .env("OPENAI_MODEL", "fake")
            .env("OPENAI_API_KEY", API_KEY)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("RATE_BURST", "1000")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tether");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut tether = Self {
            child: Some(child),
            port,
            lines,
            log: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !healthz_answers(port) {
            if let Some(Ok(Some(status))) = tether.child.as_mut().map(Child::try_wait) {
                return Err(format!(
                    "tether on port {port} exited ({status}) before it served; the log:\n{}",
                    tether.read_log().join("\n")
                ));
            }
            assert!(
                Instant::now() < deadline,
                "tether on port {port} did not serve within 30 s; the log:\n{}",
                tether.read_log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(tether)
    }

    /// Reads the log until a line matches (at most 30 s); returns it.
    pub fn wait_log(&mut self, pred: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.log.iter().find(|l| pred(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no such log line; the log:\n{}", self.log.join("\n")));
            self.log.push(line.clone());
            if pred(&line) {
                return line;
            }
        }
    }

    /// Every line logged until now.
    pub fn read_log(&mut self) -> &[String] {
        self.log.extend(self.lines.try_iter());
        &self.log
    }

    fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    /// Sends SIGTERM (the process then drains and exits).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM");
    }

    /// Waits until the process exits (without blocking the test's runtime).
    pub async fn exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("wait")
    }

    /// `kill -9`, and the exit: by that signal, nothing drained.
    pub async fn kill_9(&mut self) {
        if let Some(child) = self.child.as_mut() {
            child.kill().expect("kill -9");
        }
        let status = self.exit().await;
        assert_eq!(status.code(), None, "killed by a signal, nothing drained");
    }

    /// Stops with SIGTERM and waits for exit 0.
    pub async fn stop(mut self) {
        self.terminate();
        assert_eq!(self.exit().await.code(), Some(0), "clean exit");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET path`: the status and body, or why no answer came.
    pub async fn try_get(&self, path: &str) -> Result<(u16, String), String> {
        let response = reqwest::Client::builder()
            .timeout(STEP)
            .build()
            .expect("client")
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e} ({e:?})"))?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.map_err(|e| e.to_string())?))
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        self.try_get(path)
            .await
            .unwrap_or_else(|why| panic!("{why}"))
    }

    /// A series' value in `/metrics`.
    pub async fn metric(&self, series: &str) -> f64 {
        super::metric_at(format!("127.0.0.1:{}", self.port), series).await
    }

    /// A fresh identity cookie, as a browser gets one.
    pub async fn cookie(&self) -> String {
        cookie_at(self.port).await
    }

    /// A socket with this cookie, past its `hello`.
    pub async fn connect(&self, cookie: &str) -> WsClient {
        connect_at(self.port, cookie).await
    }

    /// A new user with one open socket.
    pub async fn user(&self) -> WsClient {
        let cookie = self.cookie().await;
        self.connect(&cookie).await
    }
}

impl Drop for Tether {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether `GET /healthz` on `127.0.0.1:port` answers `200` (within 2 s).
fn healthz_answers(port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut status = [0u8; 12];
    stream.write_all(request).is_ok()
        && stream.read_exact(&mut status).is_ok()
        && &status == b"HTTP/1.1 200"
}

/// A fresh identity cookie from whatever serves `127.0.0.1:port` (Tether, or
/// a proxy in front of it), as a browser gets one: by loading the page.
pub async fn cookie_at(port: u16) -> String {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .expect("GET /");
    response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_owned()
}

/// A socket to `127.0.0.1:port` with this cookie and that origin, past its
/// `hello`.
pub async fn connect_at(port: u16, cookie: &str) -> WsClient {
    let mut client = open_at(port, cookie).await;
    assert!(matches!(client.next().await, ServerFrame::Hello { .. }));
    client
}

/// A socket to `127.0.0.1:port` with this cookie and that origin, before
/// its first frame (a refused one gets an `error` instead of `hello`).
pub async fn open_at(port: u16, cookie: &str) -> WsClient {
    let mut request = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .expect("request");
    let origin = format!("http://127.0.0.1:{port}");
    let headers = request.headers_mut();
    headers.insert("origin", HeaderValue::from_str(&origin).expect("origin"));
    headers.insert("cookie", HeaderValue::from_str(cookie).expect("cookie"));
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    WsClient {
        ws,
        cookie: cookie.to_owned(),
        step: STEP,
    }
}
