//! What every instance does each tick (a fifth of the lease): write its
//! heartbeat, renew the leases of its replies (stopping those it lost or
//! that were asked to stop), and finish the replies of dead instances.

use std::sync::Arc;

use redis::AsyncCommands;
use tokio::sync::mpsc;

use super::{
    bus::{self, Out},
    keys, scripts, Cluster,
};
use crate::{
    protocol::{FinishReason, ServerFrame, StreamingMessage, UserId},
    server::{
        chat::hub::Record,
        metrics::LeaseRenewal,
        store::{new_id, OrphanedReply},
    },
};

pub(super) async fn run(
    cluster: Arc<Cluster>,
    mut closed: mpsc::UnboundedReceiver<(UserId, String)>,
) {
    let mut tick = tokio::time::interval(cluster.settings.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some((user, member)) = closed.recv() => {
                uncount(&cluster, &user, &member).await;
                continue;
            }
            () = cluster.stop.cancelled() => return,
        }
        if let Err(err) = cluster.store.heartbeat(&cluster.settings.instance).await {
            tracing::warn!(error = %err, "could not write this instance's heartbeat");
        }
        if let Err(err) = renew(&cluster).await {
            tracing::warn!(error = %err, "could not renew reply leases");
        }
        if let Err(err) = refresh_sockets(&cluster).await {
            tracing::debug!(error = %err, "could not refresh counted streams");
        }
        recover_orphans(&cluster).await;
    }
}

/// Renews every lease of a reply running here; settles a lease another
/// instance holds now ([`Cluster::contest`]); stops a reply whose stop key
/// is set.
async fn renew(cluster: &Cluster) -> Result<(), redis::RedisError> {
    let leased: Vec<_> = cluster
        .hub
        .conversations()
        .into_iter()
        .filter_map(|live| live.lease().map(|lease| (live, lease)))
        .collect();
    if leased.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (live, lease) in &leased {
        pipe.add_command(scripts::by_hash::RENEW.call(2))
            .arg(keys::lease(&live.id))
            .arg(keys::ended(&live.id))
            .arg(lease)
            .arg(cluster.settings.lease_ms());
        pipe.cmd("EXISTS").arg(keys::stop(lease));
    }
    let mut redis = cluster.redis.clone();
    // Renewing and asking are idempotent: after a `NOSCRIPT` (Redis
    // restarted), the scripts are loaded and the round trip made again.
    let results: Vec<i64> = match pipe.query_async(&mut redis).await {
        Err(err) if scripts::by_hash::is_noscript(&err) => {
            scripts::by_hash::reload(&mut redis).await?;
            pipe.query_async(&mut redis).await?
        }
        answer => answer?,
    };
    for ((live, lease), answer) in leased.iter().zip(results.chunks(2)) {
        let (renewed, stop) = (answer.first().copied(), answer.get(1).copied());
        let outcome = match renewed {
            Some(1) => LeaseRenewal::Renewed,
            Some(2) => LeaseRenewal::Retaken,
            // The reply ended (its `done` gave the lease back) meanwhile.
            Some(3) => continue,
            _ => LeaseRenewal::Lost,
        };
        cluster.metrics.lease_renewed(outcome);
        if outcome == LeaseRenewal::Lost {
            tracing::warn!(conversation_id = %live.id, "another instance holds the reply's lease");
            cluster.contest(&live.id, lease).await;
        } else if stop == Some(1) && live.stop_leased(lease) {
            tracing::info!(conversation_id = %live.id, "reply stopped by a stop key");
        }
    }
    Ok(())
}

/// Stops counting a closed stream.
async fn uncount(cluster: &Cluster, user: &UserId, member: &str) {
    let mut redis = cluster.redis.clone();
    let removed: Result<i64, _> = redis.zrem(keys::sockets(user), member).await;
    if let Err(err) = removed {
        // It expires by itself: this instance stops refreshing it.
        tracing::debug!(error = %err, "could not uncount a closed stream");
    }
}

/// Keeps this instance's open streams counted.
async fn refresh_sockets(cluster: &Cluster) -> Result<(), redis::RedisError> {
    let open: Vec<(String, UserId)> = cluster
        .lock_sockets()
        .iter()
        .map(|(member, user)| (member.clone(), user.clone()))
        .collect();
    if open.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (member, user) in &open {
        pipe.add_command(scripts::by_hash::REFRESH_SOCKET.call(1))
            .arg(keys::sockets(user))
            .arg(member)
            .arg(cluster.settings.socket_expiry_ms())
            .ignore();
    }
    let mut redis = cluster.redis.clone();
    match pipe.query_async::<()>(&mut redis).await {
        Err(err) if scripts::by_hash::is_noscript(&err) => {
            scripts::by_hash::reload(&mut redis).await?;
            pipe.query_async::<()>(&mut redis).await
        }
        answer => answer,
    }
}

/// Finishes the replies of instances silent for a lease.
async fn recover_orphans(cluster: &Cluster) {
    let orphans = match cluster
        .store
        .orphaned_replies(cluster.settings.stale_after())
        .await
    {
        Ok(orphans) => orphans,
        Err(err) => {
            tracing::debug!(error = %err, "could not look for orphaned replies");
            return;
        }
    };
    for orphan in orphans {
        if let Err(err) = recover(cluster, &orphan).await {
            tracing::warn!(error = %err, message_id = %orphan.message_id, "could not recover a reply");
        }
    }
}

/// Takes over an orphan's lease, stores the text its log holds (exactly
/// what any client saw) as `error`, and announces its `done`.
async fn recover(cluster: &Cluster, orphan: &OrphanedReply) -> Result<(), RecoverError> {
    let lease = format!("{}:recover-{}", cluster.settings.instance, new_id());
    let mut redis = cluster.redis.clone();
    let taken: i64 = redis::Script::new(scripts::TAKE_OVER)
        .key(keys::lease(&orphan.conversation_id))
        .arg(format!(":{}", orphan.run))
        .arg(&lease)
        .arg(cluster.settings.lease_ms())
        .invoke_async(&mut redis)
        .await?;
    if taken == 0 {
        // A live instance holds the conversation: not an orphan after all.
        return Ok(());
    }
    let (streaming, _) = cluster.read_log(&orphan.conversation_id).await?;
    let content = match streaming {
        Some(StreamingMessage { message, .. }) if message.id == orphan.message_id => {
            message.content
        }
        // The log is gone (Redis lost it): the last checkpoint is all there is.
        _ => orphan.content.clone(),
    };
    let recovered = cluster
        .store
        .recover_reply(&orphan.message_id, &orphan.run, &content)
        .await?;
    let mut announce = Vec::with_capacity(2);
    if recovered {
        tracing::warn!(
            conversation_id = %orphan.conversation_id,
            message_id = %orphan.message_id,
            chars = content.len(),
            "finished the reply of an instance that stopped"
        );
        cluster.metrics.reply_recovered();
        let done = ServerFrame::Done {
            conversation_id: orphan.conversation_id.clone(),
            message_id: orphan.message_id.clone(),
            finish_reason: FinishReason::Error,
            usage: None,
            ttft_ms: None,
            total_ms: 0.0,
            model: None,
        };
        announce.push(Record::Frame(done));
    }
    announce.push(Record::Release);
    let mut pipe = redis::pipe();
    for record in announce {
        let out = Out {
            conversation: orphan.conversation_id.clone(),
            lease: lease.clone(),
            record,
        };
        pipe.add_command(bus::command(&cluster.settings, &out))
            .ignore();
    }
    pipe.query_async::<()>(&mut redis).await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum RecoverError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Cluster(#[from] super::ClusterError),
    #[error(transparent)]
    Store(#[from] crate::server::store::StoreError),
}
