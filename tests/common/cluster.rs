//! N real `tether` processes sharing one database and one Redis, with HAProxy
//! in front and one fake model behind: the shape `scripts/cluster.sh` runs,
//! for the cluster tests.
//!
//! Every instance gets the same settings: `DATABASE_URL`, `REDIS_URL`, a short
//! `REPLY_LEASE_SECS`, one `SESSION_SECRET`, `TRUSTED_PROXIES=127.0.0.1` (the
//! proxy) and the limits [`super::TestServer`] uses (every test client is
//! 127.0.0.1). Each keeps its port across [`Cluster::restart`], so the proxy
//! finds it again.
//!
//! The harness waits without blocking the test's runtime, but
//! [`Tether::wait_log`] blocks: tests that use it next to the fake model
//! (which runs on the test's runtime) want
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tether_fake_upstream::{FakeConfig, FakeStats, FakeUpstream};

use super::{haproxy::Haproxy, process::Tether, redis::Redis, WsClient};

/// Seconds of a reply lease in the cluster tests: an instance's death is
/// noticed within about this long.
pub const LEASE_SECS: &str = "2";

/// The session secret every instance signs cookies with.
const SESSION_SECRET: &str = "cluster-test-secret-0123456789abcdef0123456789abcdef";

/// Where the instances keep their data.
pub enum Storage {
    /// One database for all (`postgres://…`): the cluster mode.
    Shared(String),
    /// A SQLite file per instance: no shared state at all, for checking the
    /// harness and the proxy before the shared stores exist.
    SqlitePerInstance,
}

/// A fresh Postgres database for one cluster.
///
/// Stand-in until `tests/common/postgres.rs` (the Postgres store's harness,
/// branch `wip-pg`) is merged; then its body is
/// `super::postgres::fresh_database().await`. Until then it returns
/// `TETHER_TEST_POSTGRES` as it is (a database URL).
pub async fn postgres_url() -> String {
    super::postgres::fresh_database().await
}

/// One instance: its settings, kept for restarts, and the process if running.
struct Instance {
    port: u16,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
    tether: Option<Tether>,
}

/// The running cluster. Dropping it stops every process by its PID: the
/// instances first, then the proxy, Redis and the fake (fields drop in
/// order).
pub struct Cluster {
    instances: Vec<Instance>,
    pub proxy: Haproxy,
    pub redis: Redis,
    pub fake: Arc<FakeUpstream>,
}

impl Cluster {
    /// `n` instances on a fresh Postgres database, with a fake model that
    /// answers in 5 ms steps.
    pub async fn start(n: usize) -> Self {
        let fake = FakeConfig {
            first_token_delay: Duration::from_millis(5),
            token_delay: Duration::from_millis(5),
            ..FakeConfig::default()
        };
        Self::start_with(n, Storage::Shared(postgres_url().await), fake, &[]).await
    }

    /// `n` instances on `storage`, the fake configured by `fake`, and `extra`
    /// settings (they win over the defaults above).
    pub async fn start_with(
        n: usize,
        storage: Storage,
        fake: FakeConfig,
        extra: &[(&str, &str)],
    ) -> Self {
        let fake = Arc::new(FakeUpstream::start(fake).await.expect("fake upstream"));
        let redis = Redis::start().await;
        let mut instances = Vec::with_capacity(n);
        for _ in 0..n {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut env = common_env(&redis);
            if let Storage::Shared(url) = &storage {
                env.push(("DATABASE_URL".into(), url.clone()));
            }
            env.push(("TETHER_DATA_DIR".into(), dir.path().display().to_string()));
            env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            instances.push(Instance {
                port: super::free_port(),
                env,
                _dir: dir,
                tether: None,
            });
        }
        // Locals are dropped when a start fails: every process started so
        // far is stopped by its PID.
        for instance in &mut instances {
            instance.tether = Some(instance.spawn(fake.base_url()).await);
        }
        let addrs: Vec<SocketAddr> = instances
            .iter()
            .map(|i| SocketAddr::from(([127, 0, 0, 1], i.port)))
            .collect();
        let proxy = Haproxy::start(&addrs).await;
        for i in 0..n {
            proxy.wait_server(i, "UP").await;
        }
        Self {
            instances,
            proxy,
            redis,
            fake,
        }
    }

    /// How many instances there are (running or not).
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// The fake model's counters (requests, aborted, completed).
    pub fn stats(&self) -> &FakeStats {
        &self.fake.stats
    }

    /// Instance `i` (panics if it is not running).
    pub fn instance(&self, i: usize) -> &Tether {
        self.instances[i].tether.as_ref().expect("instance running")
    }

    /// Instance `i`, e.g. to read its log (panics if it is not running).
    pub fn instance_mut(&mut self, i: usize) -> &mut Tether {
        self.instances[i].tether.as_mut().expect("instance running")
    }

    /// `http://127.0.0.1:PORT{path}` of instance `i`.
    pub fn instance_url(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.instances[i].port)
    }

    /// `http://127.0.0.1:PORT{path}` of the proxy.
    pub fn proxy_url(&self, path: &str) -> String {
        self.proxy.url(path)
    }

    /// A socket to instance `i` directly, past its `hello`.
    pub async fn connect(&self, i: usize, cookie: &str) -> WsClient {
        self.instance(i).connect(cookie).await
    }

    /// A socket to instance `i` directly, before its first frame.
    pub async fn connect_raw(&self, i: usize, cookie: &str) -> WsClient {
        super::process::open_at(self.instances[i].port, cookie).await
    }

    /// `kill -9` of instance `i` (nothing drained, as in a crash).
    pub async fn kill_9(&mut self, i: usize) {
        let mut tether = self.instances[i].tether.take().expect("instance running");
        tether.kill_9().await;
    }

    /// SIGTERM to instance `i`; waits for its clean exit (it drains first).
    pub async fn stop(&mut self, i: usize) {
        let tether = self.instances[i].tether.take().expect("instance running");
        tether.stop().await;
    }

    /// Starts instance `i` (again) on its port with its settings; waits until
    /// it listens and the proxy sends it requests again. Stops it first if it
    /// is running.
    pub async fn restart(&mut self, i: usize) {
        drop(self.instances[i].tether.take());
        let tether = self.instances[i].spawn(self.fake.base_url()).await;
        self.instances[i].tether = Some(tether);
        self.proxy.wait_server(i, "UP").await;
    }
}

impl Instance {
    /// Starts this instance's process (again) on its port and waits until
    /// it serves.
    async fn spawn(&self, upstream: String) -> Tether {
        let (port, env) = (self.port, self.env.clone());
        // Spawning waits on the process (blocking): off the runtime, so the
        // fake model keeps answering its start-up checks meanwhile.
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
            Tether::spawn_on(port, &upstream, &env)
        })
        .await
        .expect("instance starts")
    }
}

/// The settings every instance shares.
fn common_env(redis: &Redis) -> Vec<(String, String)> {
    [
        ("REDIS_URL", redis.url().as_str()),
        ("REPLY_LEASE_SECS", LEASE_SECS),
        ("SESSION_SECRET", SESSION_SECRET),
        ("TRUSTED_PROXIES", "127.0.0.1"),
        // As TestServer: every client of a test is 127.0.0.1.
        ("RATE_BURST", "1000"),
        ("RATE_PER_SEC", "1000"),
        ("IDENTITY_BURST", "100000"),
        ("ADDR_RATE_BURST", "100000"),
        ("ADDR_RATE_PER_SEC", "100000"),
        ("MAX_STREAMS_PER_ADDR", "100000"),
        ("UPSTREAM_TIMEOUT_SECS", "5"),
        ("SHUTDOWN_GRACE_SECS", "5"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
