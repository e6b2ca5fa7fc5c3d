//! Several instances, one live state (cluster mode, `REDIS_URL`).
//!
//! Storage is shared through the database; everything live goes through
//! Redis:
//!
//! * **Records.** The owner of a reply never hands its frames to its own
//!   subscribers. Each record goes through one script ([`scripts::EMIT`])
//!   that checks the reply's lease, appends it to the conversation's Redis
//!   Stream (the exact replay log of the reply in progress) and publishes it
//!   on the conversation's channel. Every instance following the
//!   conversation (the owner's too) hands it to its subscribers
//!   ([`bus`]). So no client, on any instance, sees text that is not in the
//!   log, and the log is what a dead owner's reply is stored from.
//! * **Following.** An instance subscribes only to the channels of
//!   conversations its own clients follow; it reads the log after
//!   subscribing and skips records the log already had (stream ids).
//! * **One reply at a time.** A lease per conversation (`SET NX PX`, value
//!   `<instance>:<run token>`), renewed by its owner ([`upkeep`]), backed by
//!   the database's one-unfinished-reply constraint, with the run token as
//!   the fencing token of every database write.
//! * **Stop anywhere.** A `stop` for a reply running elsewhere sets a stop
//!   key and publishes on the owner's control channel; the owner also
//!   checks the keys when it renews, so a lost message is not a lost stop.
//! * **Instance death.** Each instance writes a heartbeat to the database;
//!   the replies of an instance silent for a lease are finished by another
//!   with exactly the text of the log ([`upkeep`]).

mod bus;
mod log;
pub mod scripts;
mod upkeep;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use redis::{aio::ConnectionManager, AsyncCommands};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use self::bus::{FollowCmd, Out};
use crate::{
    protocol::{Changed, ConversationId, StreamingMessage, UserId},
    server::{
        chat::hub::{ConversationHub, LiveConversation, Record, Relay},
        metrics::{ClusterEvent, Metrics},
        store::{ReplyRun, Store},
    },
};

/// Why the live state could not be used.
#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("live state (Redis) unavailable: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("live state (Redis) is shutting down")]
    Closed,
    #[error("live state (Redis) did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
}

/// How long `/readyz` waits for Redis to answer.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Key and channel names. A conversation's keys share one hash tag, so
/// they stay in one slot if Redis is ever sharded.
mod keys {
    use crate::protocol::{ConversationId, UserId};

    pub const CONVERSATION_CHANNEL: &str = "tether:c:";
    pub const CONTROL_CHANNEL: &str = "tether:ctl:";
    /// Every instance listens here for the users' notices: `<what> <user>`.
    pub const USERS_CHANNEL: &str = "tether:users";

    pub fn channel(c: &ConversationId) -> String {
        format!("{CONVERSATION_CHANNEL}{c}")
    }
    pub fn log(c: &ConversationId) -> String {
        format!("tether:{{{c}}}:log")
    }
    pub fn lease(c: &ConversationId) -> String {
        format!("tether:{{{c}}}:lease")
    }
    /// The lease value a reply's `done` gave back (for a lease time).
    pub fn ended(c: &ConversationId) -> String {
        format!("tether:{{{c}}}:ended")
    }
    pub fn stop(lease: &str) -> String {
        format!("tether:stop:{lease}")
    }
    pub fn control(instance: &str) -> String {
        format!("{CONTROL_CHANNEL}{instance}")
    }
    pub fn rate(user: &UserId) -> String {
        format!("tether:rate:{{{user}}}")
    }
    pub fn sockets(user: &UserId) -> String {
        format!("tether:sockets:{{{user}}}")
    }
}

/// How the cluster is set up.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// This instance's id (its replies' owner in the database).
    pub instance: String,
    /// How long a reply's lease lasts without renewal.
    pub lease: Duration,
}

impl ClusterSettings {
    /// How often leases are renewed, heartbeats written and orphans sought.
    fn tick(&self) -> Duration {
        (self.lease / 5).max(Duration::from_millis(100))
    }

    /// An instance silent this long is dead: its replies are recovered
    /// within one lease of its last heartbeat.
    fn stale_after(&self) -> Duration {
        self.lease.saturating_sub(self.tick())
    }

    fn lease_ms(&self) -> u64 {
        self.lease.as_millis() as u64
    }

    /// How long a conversation's log outlives its last record.
    fn log_ttl_ms(&self) -> u64 {
        self.lease_ms().max(1000) * 60
    }

    /// How long a counted stream stays counted without its instance's refresh.
    fn socket_expiry_ms(&self) -> u64 {
        self.lease_ms() * 3
    }

    /// The lease value of `run`.
    pub fn lease_value(run: &ReplyRun) -> String {
        format!("{}:{}", run.instance, run.token)
    }
}

/// The relay the hub hands its owners' records to: a queue into the
/// emitter task (in order), and the follow queue.
#[derive(Debug)]
struct ClusterRelay {
    out: mpsc::UnboundedSender<Out>,
    follows: mpsc::UnboundedSender<FollowCmd>,
}

impl Relay for ClusterRelay {
    fn emit(&self, conversation: &ConversationId, lease: &str, record: Record) {
        // Fails only when the emitter is gone (shutting down).
        let _ = self.out.send(Out {
            conversation: conversation.clone(),
            lease: lease.to_owned(),
            record,
        });
    }

    fn unfollow(&self, conversation: &ConversationId) {
        let _ = self
            .follows
            .send(FollowCmd::Unsubscribe(conversation.clone()));
    }
}

/// The connections and queues of a cluster before its hub exists.
pub struct Connecting {
    settings: ClusterSettings,
    redis: ConnectionManager,
    bus: ConnectionManager,
    pushes: mpsc::UnboundedReceiver<redis::PushInfo>,
    relay: Arc<ClusterRelay>,
    out: mpsc::UnboundedReceiver<Out>,
    follows: mpsc::UnboundedReceiver<FollowCmd>,
}

impl std::fmt::Debug for Connecting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connecting")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Connects to Redis (`url`): one connection for commands, one for
/// subscriptions (RESP3 pushes, resubscribed after a reconnect).
pub async fn connect(url: &str, settings: ClusterSettings) -> Result<Connecting, ClusterError> {
    let url = with_resp3(url);
    let client = redis::Client::open(url.as_str())?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let mut redis = client
        .get_connection_manager_with_config(config.clone())
        .await?;
    scripts::by_hash::load(&mut redis).await?;
    let (push_tx, pushes) = mpsc::unbounded_channel();
    let bus = client
        .get_connection_manager_with_config(
            config
                .set_push_sender(push_tx)
                .set_automatic_resubscription(),
        )
        .await?;
    let (out_tx, out) = mpsc::unbounded_channel();
    let (follow_tx, follows) = mpsc::unbounded_channel();
    Ok(Connecting {
        settings,
        redis,
        bus,
        pushes,
        relay: Arc::new(ClusterRelay {
            out: out_tx,
            follows: follow_tx,
        }),
        out,
        follows,
    })
}

/// `url` asking for RESP3 (pushes on the subscription connection).
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}protocol=resp3")
}

impl Connecting {
    /// The relay to build the hub with.
    pub fn relay(&self) -> Arc<dyn Relay> {
        self.relay.clone()
    }

    /// Starts the cluster's tasks on `hub` (built with [`Connecting::relay`]).
    pub fn start(
        self,
        hub: Arc<ConversationHub>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Arc<Cluster> {
        let (closed_tx, closed) = mpsc::unbounded_channel();
        let cluster = Arc::new(Cluster {
            settings: self.settings,
            redis: self.redis,
            follows: self.relay.follows.clone(),
            hub,
            store,
            metrics,
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
            sockets: Mutex::new(HashMap::new()),
            closed_sockets: closed_tx,
        });
        let c = cluster.clone();
        cluster.tasks.spawn(bus::emit(c, self.out));
        let c = cluster.clone();
        cluster
            .tasks
            .spawn(bus::subscriptions(c, self.bus, self.follows));
        let c = cluster.clone();
        cluster.tasks.spawn(bus::receive(c, self.pushes));
        let c = cluster.clone();
        cluster.tasks.spawn(upkeep::run(c, closed));
        cluster
    }
}

/// This instance's handle on the cluster.
pub struct Cluster {
    settings: ClusterSettings,
    redis: ConnectionManager,
    follows: mpsc::UnboundedSender<FollowCmd>,
    hub: Arc<ConversationHub>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
    stop: CancellationToken,
    /// This instance's streams counted over the cluster: member → user.
    sockets: Mutex<HashMap<String, UserId>>,
    /// Streams closed, to uncount (by the upkeep task).
    closed_sockets: mpsc::UnboundedSender<(UserId, String)>,
}

/// One stream counted in its user's streams over every instance; uncounted
/// when dropped. Its instance refreshes it each tick, so the streams of a
/// dead instance stop counting after three leases.
#[derive(Debug)]
pub struct CountedSocket {
    cluster: Weak<Cluster>,
    user: UserId,
    member: String,
}

impl Drop for CountedSocket {
    fn drop(&mut self) {
        if let Some(cluster) = self.cluster.upgrade() {
            cluster.lock_sockets().remove(&self.member);
            let _ = cluster
                .closed_sockets
                .send((self.user.clone(), std::mem::take(&mut self.member)));
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    pub fn instance(&self) -> &str {
        &self.settings.instance
    }

    /// Makes sure this instance receives `live`'s records and its mirror
    /// holds the reply in progress (once per live conversation).
    pub async fn follow(&self, live: &Arc<LiveConversation>) -> Result<(), ClusterError> {
        live.follow_once(|| async {
            let (done, subscribed) = oneshot::channel();
            self.follows
                .send(FollowCmd::Subscribe(live.id.clone(), done))
                .map_err(|_| ClusterError::Closed)?;
            subscribed.await.map_err(|_| ClusterError::Closed)??;
            self.reload(live, false).await
        })
        .await
    }

    /// Reads the conversation's log into `live`'s mirror, then applies what
    /// arrived meanwhile (again while records were missed).
    async fn reload(&self, live: &LiveConversation, resync: bool) -> Result<(), ClusterError> {
        for _ in 0..8 {
            let (streaming, at) = self.read_log(&live.id).await?;
            if live.reload(streaming, at, resync).is_ok() {
                if resync {
                    self.metrics.cluster_event(ClusterEvent::Resync);
                }
                return Ok(());
            }
        }
        tracing::warn!(conversation_id = %live.id, "the live log kept changing while read; subscribers will resync");
        Ok(())
    }

    /// The reply in progress according to the conversation's log, and the
    /// log's last position.
    async fn read_log(
        &self,
        conversation: &ConversationId,
    ) -> Result<(Option<StreamingMessage>, u128), ClusterError> {
        let mut redis = self.redis.clone();
        let reply: redis::streams::StreamRangeReply =
            redis.xrange_all(keys::log(conversation)).await?;
        let entries: Vec<(String, String)> = reply
            .ids
            .into_iter()
            .filter_map(|entry| {
                let text: String = entry.get("r")?;
                Some((entry.id, text))
            })
            .collect();
        Ok(log::replay(
            entries
                .iter()
                .map(|(id, text)| (id.as_str(), text.as_str())),
        ))
    }

    /// The reply in progress, read from the log without following it (the
    /// server-rendered page).
    pub async fn peek(
        &self,
        conversation: &ConversationId,
    ) -> Result<Option<StreamingMessage>, ClusterError> {
        Ok(self.read_log(conversation).await?.0)
    }

    /// Takes the conversation's reply lease for `run`; `false` when another
    /// run holds it.
    pub async fn acquire(
        &self,
        conversation: &ConversationId,
        run: &ReplyRun,
    ) -> Result<Option<String>, ClusterError> {
        let value = ClusterSettings::lease_value(run);
        let mut redis = self.redis.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(keys::lease(conversation))
            .arg(&value)
            .arg("NX")
            .arg("PX")
            .arg(self.settings.lease_ms())
            .query_async(&mut redis)
            .await?;
        Ok(taken.map(|_| value))
    }

    /// Settles who runs the conversation's reply after a record of `lease`
    /// was refused. The database's run token is the truth: a checkpoint of
    /// the text so far under this run's token either goes through (the
    /// reply is still this instance's: another instance held the lease only
    /// for a moment, e.g. a refused send after Redis lost the lease; the
    /// lease is taken back and the log begun again from the whole text) or
    /// is fenced (another instance finished the reply: it stops here).
    pub(super) async fn contest(&self, conversation: &ConversationId, lease: &str) {
        let Some(live) = self.hub.get(conversation) else {
            return;
        };
        let (Some((message_id, text)), Some((_, token))) =
            (live.running(lease), lease.split_once(':'))
        else {
            return;
        };
        match self
            .store
            .checkpoint_assistant(&message_id, token, &text)
            .await
        {
            Ok(()) => {
                let mut redis = self.redis.clone();
                let taken: Result<(), _> = redis
                    .pset_ex(keys::lease(conversation), lease, self.settings.lease_ms())
                    .await;
                match taken {
                    Ok(()) => live.restart_log(lease),
                    Err(err) => {
                        tracing::warn!(error = %err, "could not take the reply's lease back")
                    }
                }
            }
            Err(err) => {
                if live.stop_leased(lease) {
                    tracing::warn!(conversation_id = %conversation, error = %err, "the reply is another instance's now; stopping it here");
                }
            }
        }
    }

    /// Publishes a user's notice to every instance (this one included),
    /// without waiting; lost while Redis is away (the next reconnect of a
    /// tab refetches everything).
    pub fn notify_user(&self, user: &UserId, what: Changed) {
        let payload = format!("{} {user}", changed_name(what));
        self.publish_to_users(payload, |err| {
            tracing::warn!(error = %err, "could not publish a user's notice");
        });
    }

    /// Publishes signed-out sessions to every instance (this one
    /// included), which close their streams. Lost while Redis is away:
    /// then only this instance's streams close, and the others' sessions
    /// are refused at their next request (sessions live in the database).
    pub fn sign_out_sessions(&self, public_ids: &[String]) {
        let payload = format!("{SIGNED_OUT} {}", public_ids.join(" "));
        let (here, ids) = (self.hub.clone(), public_ids.to_vec());
        self.publish_to_users(payload, move |err| {
            tracing::warn!(error = %err, "could not publish signed-out sessions; closing this instance's streams only");
            here.sessions().revoke(ids.iter().map(String::as_str));
        });
    }

    /// Publishes `payload` on [`keys::USERS_CHANNEL`] without waiting;
    /// `failed` runs when Redis refuses it.
    fn publish_to_users(
        &self,
        payload: String,
        failed: impl FnOnce(&redis::RedisError) + Send + 'static,
    ) {
        let mut redis = self.redis.clone();
        self.tasks.spawn(async move {
            let published: Result<(), _> = redis::cmd("PUBLISH")
                .arg(keys::USERS_CHANNEL)
                .arg(payload)
                .query_async(&mut redis)
                .await;
            if let Err(err) = published {
                failed(&err);
            }
        });
    }

    /// Stops the conversation's reply wherever it runs; `false` if none runs.
    pub async fn stop_remote(&self, conversation: &ConversationId) -> Result<bool, ClusterError> {
        let mut redis = self.redis.clone();
        let lease: Option<String> = redis.get(keys::lease(conversation)).await?;
        let Some(lease) = lease else {
            return Ok(false);
        };
        let Some((instance, _)) = lease.split_once(':') else {
            return Ok(false);
        };
        redis::pipe()
            .cmd("SET")
            .arg(keys::stop(&lease))
            .arg(1)
            .arg("PX")
            .arg(self.settings.lease_ms() * 3)
            .ignore()
            .cmd("PUBLISH")
            .arg(keys::control(instance))
            .arg(format!("{conversation} {lease}"))
            .ignore()
            .query_async::<()>(&mut redis)
            .await?;
        self.metrics.cluster_event(ClusterEvent::StopSent);
        Ok(true)
    }

    /// Takes one of the user's tokens from the bucket every instance shares;
    /// `Err(wait)` when there is none.
    pub async fn take_token(
        &self,
        user: &UserId,
        burst: u32,
        per_sec: f64,
    ) -> Result<Result<(), Duration>, ClusterError> {
        let mut redis = self.redis.clone();
        let wait: u64 = redis::Script::new(scripts::TAKE_TOKEN)
            .key(keys::rate(user))
            .arg(burst)
            .arg(per_sec)
            .invoke_async(&mut redis)
            .await?;
        Ok(if wait == 0 {
            Ok(())
        } else {
            Err(Duration::from_millis(wait))
        })
    }

    fn lock_sockets(&self) -> std::sync::MutexGuard<'_, HashMap<String, UserId>> {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more stream of `user` over every instance, if it has
    /// fewer than `max`; `None` at the cap.
    pub async fn admit_socket(
        self: &Arc<Self>,
        user: &UserId,
        max: usize,
    ) -> Result<Option<CountedSocket>, ClusterError> {
        let member = format!(
            "{}:{}",
            self.settings.instance,
            crate::server::store::new_id()
        );
        let mut redis = self.redis.clone();
        let admitted: i64 = redis::Script::new(scripts::ADMIT_SOCKET)
            .key(keys::sockets(user))
            .arg(&member)
            .arg(max)
            .arg(self.settings.socket_expiry_ms())
            .invoke_async(&mut redis)
            .await?;
        if admitted == 0 {
            return Ok(None);
        }
        self.lock_sockets().insert(member.clone(), user.clone());
        Ok(Some(CountedSocket {
            cluster: Arc::downgrade(self),
            user: user.clone(),
            member,
        }))
    }

    /// Whether Redis answers (readiness).
    pub async fn ping(&self) -> Result<(), ClusterError> {
        let mut redis = self.redis.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut redis);
        // A readiness check answers in time even while Redis is away (a
        // load balancer's check gives up after a few seconds).
        match tokio::time::timeout(PING_TIMEOUT, ping).await {
            Ok(answer) => answer.map(drop).map_err(ClusterError::from),
            Err(_) => Err(ClusterError::Timeout(PING_TIMEOUT)),
        }
    }

    /// Stops the cluster's tasks (after the replies are drained).
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(3), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("cluster tasks did not stop in time");
        }
    }
}

/// A [`keys::USERS_CHANNEL`] message naming signed-out sessions
/// (`signed-out <public id> …`).
const SIGNED_OUT: &str = "signed-out";

/// The signed-out sessions a [`keys::USERS_CHANNEL`] message names, if it is one.
pub(super) fn parse_signed_out(payload: &str) -> Option<impl Iterator<Item = &str>> {
    let rest = payload.strip_prefix(SIGNED_OUT)?.strip_prefix(' ')?;
    Some(rest.split(' ').filter(|id| !id.is_empty()))
}

/// A notice's name on [`keys::USERS_CHANNEL`].
fn changed_name(what: Changed) -> &'static str {
    match what {
        Changed::Companions => "companions",
        Changed::Conversations => "conversations",
    }
}

/// The notice a [`keys::USERS_CHANNEL`] message carries.
pub(super) fn parse_notice(payload: &str) -> Option<(UserId, Changed)> {
    let (what, user) = payload.split_once(' ')?;
    let what = match what {
        "companions" => Changed::Companions,
        "conversations" => Changed::Conversations,
        _ => return None,
    };
    Some((UserId::from(user), what))
}
