//! A throw-away `redis-server` (Debian's, installed by `scripts/setup.sh
//! --services`) on 127.0.0.1 and a free port: no persistence, its own temp
//! dir, run in the foreground as a child of the test and stopped by its PID
//! when dropped. Ready means it answers `PING`.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A running `redis-server`.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts a server on a free port and waits until it answers `PING`.
    pub async fn start() -> Self {
        let mut redis = Self {
            child: None,
            port: super::free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        redis.launch().await;
        redis
    }

    /// The process id (`None` while stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: everything in it is lost, as in a crash)
    /// and starts an empty one on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }

    /// Kills the server and waits for its exit (it stays down until
    /// [`Redis::restart`]).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    async fn launch(&mut self) {
        let port = self.port.to_string();
        let dir = self.dir.path().display().to_string();
        let log = self.log_path().display().to_string();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--dir", &dir, "--logfile", &log])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn redis-server (scripts/setup.sh --services installs it)");
        // Kept in `self` while waiting: a failed start still stops it on drop.
        self.child = Some(child);
        let addr = format!("127.0.0.1:{port}");
        let child = &mut self.child;
        super::poll_until("redis-server answers PING", || {
            let exited = child.as_mut().map(Child::try_wait);
            let addr = addr.clone();
            let log = log.clone();
            async move {
                if let Some(Ok(Some(status))) = exited {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    return Err(format!("exited with {status}; its log:\n{text}"));
                }
                Ok(pong(&addr).await)
            }
        })
        .await;
    }
}

/// Whether a server at `addr` answers `PING` with `+PONG`.
async fn pong(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).await.is_ok() && &reply == b"+PONG\r\n"
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
