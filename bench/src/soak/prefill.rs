//! Fills the database before the soak starts, so that the soak measures a
//! server in its steady state rather than SQLite's page cache filling up.
//!
//! The store's writer keeps up to 32 MiB of pages in its cache
//! (`cache_size` in `src/server/store/sqlite/mod.rs`); on an empty
//! database that cache grows with every page written until the file
//! outgrows it, which over a 10-minute soak looks exactly like a leak.
//! A production database is larger than that cache; the prefill makes the
//! soak's database so too: `--prefill-messages` messages of
//! `--prefill-chars` characters, each a new conversation with a
//! 50-token reply (validated like any other), from 64 users at once.
//!
//! Over `POST /api/chat`: its stream, and with it the conversation's place
//! in the server's hub, ends with the reply. (A socket would stay subscribed
//! to every conversation it started until it closed: 64 sockets starting
//! 12,000 conversations left the server with 240 MB of heap instead of
//! 48 MB (hub buffers of the followed conversations, kept by the allocator
//! after the sockets closed).)

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::ctx::{get_cookie, Ctx};
use crate::sse;

const USERS: usize = 64;

/// Sends `messages` long messages; returns the errors (by kind, one per failed user).
pub async fn run(
    url: &str,
    messages: usize,
    chars: usize,
    cap: Instant,
) -> anyhow::Result<Vec<String>> {
    if messages == 0 {
        return Ok(Vec::new());
    }
    let padding = "lorem ipsum ".repeat(chars / 12 + 1);
    let text = format!(
        "[[tokens:50]] [[delay:0]] {}",
        &padding[..chars.min(padding.len())]
    );
    let ctx = Arc::new(Ctx::build(url, 0, &text, Duration::from_secs(30), cap)?);
    let started = Instant::now();
    let mut users = JoinSet::new();
    for u in 0..USERS {
        let share = messages / USERS + usize::from(u < messages % USERS);
        let ctx = ctx.clone();
        users.spawn(async move { user(&ctx, u, share).await });
    }
    let mut errors = Vec::new();
    let mut sent = 0;
    while let Some(r) = users.join_next().await {
        match r {
            Ok((n, error)) => {
                sent += n;
                errors.extend(error.map(|e| format!("prefill:{e}")));
            }
            Err(_) => errors.push("prefill:task_panicked".into()),
        }
    }
    eprintln!(
        "# soak: prefill {sent}/{messages} messages of {chars} characters in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(errors)
}

/// One user's share; returns how many were answered and the error that ended it.
async fn user(ctx: &Ctx, u: usize, share: usize) -> (usize, Option<String>) {
    let cookie = match get_cookie(ctx).await {
        Ok(cookie) => cookie,
        Err(e) => return (0, Some(e)),
    };
    for m in 0..share {
        let id = format!("{}-p{u}-m{m}", ctx.run_tag);
        if let Err(e) = sse::exchange(ctx, &cookie, &id, &mut None).await {
            return (m, Some(e));
        }
    }
    (share, None)
}
