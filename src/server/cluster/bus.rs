//! The cluster's three message loops: the emitter (this instance's owners'
//! records into Redis, in order), the subscriptions (which channels this
//! instance listens to) and the receiver (records and stops from Redis to
//! the hub).

use std::sync::Arc;

use redis::{aio::ConnectionManager, PushKind, Value};
use tokio::sync::{mpsc, oneshot};

use super::{keys, log, scripts, Cluster, ClusterError, ClusterSettings};
use crate::{
    protocol::{ConversationId, ServerFrame},
    server::{chat::hub::Record, metrics::ClusterEvent},
};

/// A record of a reply this instance owns, on its way to Redis.
#[derive(Debug)]
pub(super) struct Out {
    pub conversation: ConversationId,
    pub lease: String,
    pub record: Record,
}

/// A change of what this instance listens to, applied in order.
#[derive(Debug)]
pub(super) enum FollowCmd {
    Subscribe(ConversationId, oneshot::Sender<Result<(), ClusterError>>),
    Unsubscribe(ConversationId),
}

/// Most records sent in one round trip.
const MAX_BATCH: usize = 512;

/// Sends this instance's records to Redis, everything queued in one
/// pipeline per round trip. A record refused for its lease stops its
/// reply (another instance took it over); a failed round trip makes each
/// reply in it start its log again from its whole text (a `begin`), so
/// the log stays exact once Redis is back.
pub(super) async fn emit(cluster: Arc<Cluster>, mut queue: mpsc::UnboundedReceiver<Out>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let received = tokio::select! {
            n = queue.recv_many(&mut batch, MAX_BATCH) => n,
            () = cluster.stop.cancelled() => {
                // Shutting down: what is queued (the replies' `done`s) still goes.
                while let Ok(out) = queue.try_recv() {
                    batch.push(out);
                }
                if !batch.is_empty() {
                    send(&cluster, &mut batch).await;
                }
                return;
            }
        };
        if received == 0 {
            return;
        }
        send(&cluster, &mut batch).await;
    }
}

/// The script call that carries `out` to Redis: [`scripts::EMIT`] for a
/// record (its kind from what it is), [`scripts::RELEASE`] for a release,
/// each by hash.
pub(super) fn command(settings: &ClusterSettings, out: &Out) -> redis::Cmd {
    let lease_key = keys::lease(&out.conversation);
    let Some(text) = log::encode(&out.record) else {
        let mut cmd = scripts::by_hash::RELEASE.call(1);
        cmd.arg(lease_key).arg(&out.lease);
        return cmd;
    };
    let kind = match &out.record {
        Record::Begin(_) | Record::Restart(_) => "begin",
        Record::Frame(ServerFrame::Delta { .. }) => "delta",
        Record::Frame(ServerFrame::Done { .. }) => "done",
        _ => "frame",
    };
    let mut cmd = scripts::by_hash::EMIT.call(3);
    cmd.arg(lease_key)
        .arg(keys::log(&out.conversation))
        .arg(keys::ended(&out.conversation))
        .arg(&out.lease)
        .arg(keys::channel(&out.conversation))
        .arg(text)
        .arg(settings.log_ttl_ms())
        .arg(kind)
        .arg(settings.lease_ms());
    cmd
}

async fn send(cluster: &Arc<Cluster>, batch: &mut Vec<Out>) {
    let mut pipe = redis::pipe();
    for out in batch.iter() {
        pipe.add_command(command(&cluster.settings, out));
    }
    let mut redis = cluster.redis.clone();
    let mut sent = pipe.query_async::<Vec<Value>>(&mut redis).await;
    if let Err(err) = &sent {
        // Redis lost its scripts (a restart): none of the batch ran (they
        // are all by hash, loaded together), so it is sent again once
        // loaded. Any other failure restarts the logs below.
        let all_failed = err
            .clone()
            .into_server_errors()
            .is_some_and(|failed| failed.len() == batch.len());
        if scripts::by_hash::is_noscript(err) {
            match scripts::by_hash::reload(&mut redis).await {
                Ok(()) if all_failed => {
                    sent = pipe.query_async::<Vec<Value>>(&mut redis).await;
                }
                Ok(()) => {}
                Err(load_err) => {
                    tracing::warn!(error = %load_err, "could not load the Lua scripts")
                }
            }
        }
    }
    match sent {
        Ok(results) => {
            let mut restarted: Vec<&ConversationId> = Vec::new();
            for (out, result) in batch.iter().zip(results) {
                match (&out.record, result) {
                    (Record::Release, _) => {}
                    (_, Value::Nil) => {
                        cluster.metrics.cluster_event(ClusterEvent::Fenced);
                        refused(cluster, out);
                    }
                    // The log is gone: begin it again, once per batch.
                    (_, Value::Int(0)) if !restarted.contains(&&out.conversation) => {
                        restarted.push(&out.conversation);
                        if let Some(live) = cluster.hub.get(&out.conversation) {
                            live.restart_log(&out.lease);
                        }
                    }
                    (_, Value::Int(0)) => {}
                    _ => cluster.metrics.cluster_event(ClusterEvent::Published),
                }
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, records = batch.len(), "could not send live records to Redis");
            cluster.metrics.cluster_event(ClusterEvent::WriteFailed);
            let mut seen: Vec<&ConversationId> = Vec::new();
            for out in batch.iter() {
                if !seen.contains(&&out.conversation) {
                    seen.push(&out.conversation);
                    if let Some(live) = cluster.hub.get(&out.conversation) {
                        live.restart_log(&out.lease);
                    }
                }
            }
        }
    }
    batch.clear();
}

/// A record of `out.lease` was refused: another holds the lease now. The
/// database decides whose reply it is ([`Cluster::contest`]).
fn refused(cluster: &Arc<Cluster>, out: &Out) {
    let c = cluster.clone();
    let (conversation, lease) = (out.conversation.clone(), out.lease.clone());
    cluster
        .tasks
        .spawn(async move { c.contest(&conversation, &lease).await });
}

/// Applies subscription changes one at a time, in the order they were asked.
pub(super) async fn subscriptions(
    cluster: Arc<Cluster>,
    mut bus: ConnectionManager,
    mut commands: mpsc::UnboundedReceiver<FollowCmd>,
) {
    if let Err(err) = bus
        .subscribe(keys::control(&cluster.settings.instance))
        .await
    {
        tracing::error!(error = %err, "could not listen for stops from other instances");
    }
    if let Err(err) = bus.subscribe(keys::USERS_CHANNEL).await {
        tracing::error!(error = %err, "could not listen for the users' notices");
    }
    loop {
        let command = tokio::select! {
            command = commands.recv() => command,
            () = cluster.stop.cancelled() => return,
        };
        match command {
            Some(FollowCmd::Subscribe(conversation, done)) => {
                let result = bus.subscribe(keys::channel(&conversation)).await;
                let _ = done.send(result.map_err(ClusterError::from));
            }
            Some(FollowCmd::Unsubscribe(conversation)) => {
                if let Err(err) = bus.unsubscribe(keys::channel(&conversation)).await {
                    tracing::debug!(error = %err, "unsubscribe failed");
                }
            }
            None => return,
        }
    }
}

/// Hands what Redis pushes to the hub: conversation records to their
/// mirrors and subscribers, stops to the replies running here. After a
/// lost connection, every followed conversation is read again and its
/// subscribers resync (what was published meanwhile is not replayed).
pub(super) async fn receive(
    cluster: Arc<Cluster>,
    mut pushes: mpsc::UnboundedReceiver<redis::PushInfo>,
) {
    loop {
        let push = tokio::select! {
            push = pushes.recv() => push,
            () = cluster.stop.cancelled() => return,
        };
        let Some(push) = push else { return };
        match push.kind {
            PushKind::Message => {
                let mut data = push.data.into_iter();
                if let (Some(channel), Some(payload)) = (data.next(), data.next()) {
                    route(&cluster, text(channel), text(payload));
                }
            }
            PushKind::Disconnection => {
                tracing::warn!("live-state connection lost; resyncing followed conversations");
                for live in cluster.hub.conversations() {
                    live.start_loading();
                }
                let c = cluster.clone();
                cluster.tasks.spawn(async move { resync_all(c).await });
            }
            _ => {}
        }
    }
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

fn route(cluster: &Arc<Cluster>, channel: Option<String>, payload: Option<String>) {
    let (Some(channel), Some(payload)) = (channel, payload) else {
        return;
    };
    if let Some(id) = channel.strip_prefix(keys::CONVERSATION_CHANNEL) {
        let conversation = ConversationId::from(id);
        let Some(live) = cluster.hub.get(&conversation) else {
            return;
        };
        let (seq, decoded) = match log::split_published(&payload) {
            Ok(parts) => parts,
            Err(err) => {
                tracing::warn!(error = %err, conversation_id = %conversation, "unreadable live record");
                return;
            }
        };
        cluster.metrics.cluster_event(ClusterEvent::Received);
        if live.receive(seq, decoded.record, decoded.json).is_err() {
            let c = cluster.clone();
            cluster.tasks.spawn(async move {
                if let Err(err) = c.reload(&live, true).await {
                    tracing::warn!(error = %err, "could not reload a live conversation");
                }
            });
        }
    } else if channel == keys::USERS_CHANNEL {
        if let Some(sessions) = super::parse_signed_out(&payload) {
            cluster.hub.sessions().revoke(sessions);
        } else if let Some((user, what)) = super::parse_notice(&payload) {
            cluster.hub.notices().notify(&user, what);
        }
    } else if channel.starts_with(keys::CONTROL_CHANNEL) {
        let Some((conversation, lease)) = payload.split_once(' ') else {
            return;
        };
        if let Some(live) = cluster.hub.get(&ConversationId::from(conversation)) {
            if live.stop_leased(lease) {
                cluster.metrics.cluster_event(ClusterEvent::StopReceived);
                tracing::info!(conversation_id = %conversation, "reply stopped from another instance");
            }
        }
    }
}

/// Reads every followed conversation's log again (after a reconnect),
/// retrying while Redis is still away.
async fn resync_all(cluster: Arc<Cluster>) {
    let mut wait = std::time::Duration::from_millis(100);
    loop {
        let mut failed = false;
        for live in cluster.hub.conversations() {
            if let Err(err) = cluster.reload(&live, true).await {
                tracing::debug!(error = %err, "resync failed; retrying");
                failed = true;
                break;
            }
        }
        if !failed {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cluster.stop.cancelled() => return,
        }
        wait = (wait * 2).min(std::time::Duration::from_secs(2));
    }
}
