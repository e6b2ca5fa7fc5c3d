//! One followed conversation as an SSE event stream, until its reply's `done`.
//!
//! The events come from the per-conversation hub, byte for byte what a
//! subscribed socket receives; the [`EventFacts`] they carry name each SSE
//! event and give its id, so nothing is parsed again here.

use std::{convert::Infallible, sync::Arc};

use axum::{
    http::HeaderValue,
    response::{
        sse::{Event as SseEvent, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use futures::{stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::{
    protocol::{ConversationId, MessageId, ServerFrame, UserId},
    server::{
        access::admission::StreamPermit,
        accounts::live::{self, Watch},
        chat::{
            hub::{Event, EventFacts, EventRx},
            ChatService, Subscription,
        },
    },
};

/// Follows one conversation's events until a reply's `done`.
///
/// Dropping it ends the subscription (the reply itself runs on) and frees
/// the stream's permit.
pub(super) struct Follow {
    chat: Arc<ChatService>,
    user: UserId,
    conversation_id: ConversationId,
    events: Option<EventRx>,
    shutdown: CancellationToken,
    /// Deltas of this message up to this index are skipped (`Last-Event-ID`).
    seen: Option<(MessageId, u64)>,
    /// Shutting down: only the events already queued are still sent.
    draining: bool,
    ended: bool,
    session: Option<Watch>,
    _permit: StreamPermit,
}

/// Where a follow starts.
pub(super) struct FollowFrom {
    pub user: UserId,
    pub subscription: Subscription,
    /// Whether a reply may still come: `false` after a snapshot without a
    /// streaming reply, and the stream ends after its first frames.
    pub reply_running: bool,
    pub seen: Option<(MessageId, u64)>,
    /// Its session's watch: the stream ends when it is signed out.
    pub session: Option<Watch>,
}

impl Follow {
    pub(super) fn new(
        chat: Arc<ChatService>,
        shutdown: CancellationToken,
        from: FollowFrom,
        permit: StreamPermit,
    ) -> Self {
        let ended = !from.reply_running;
        Self {
            chat,
            user: from.user,
            conversation_id: from.subscription.conversation_id,
            events: Some(from.subscription.events),
            shutdown,
            seen: from.seen,
            draining: false,
            ended,
            session: from.session,
            _permit: permit,
        }
    }

    /// The next event to send; `None` ends the response.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if self.ended {
                return None;
            }
            let events = self.events.as_mut()?;
            let received = if self.draining {
                Ok(events.try_recv().ok()?)
            } else {
                tokio::select! {
                    received = events.recv() => received,
                    () = live::signed_out(self.session.as_ref()) => {
                        tracing::info!("ending an event stream whose session was signed out");
                        return None;
                    }
                    () = self.shutdown.cancelled() => {
                        // Replies were finished before streams are closed:
                        // deliver what is queued (their `done`s), then end.
                        self.draining = true;
                        continue;
                    }
                }
            };
            let event = match received {
                Ok(event) if event.is_resync() => return Some(self.resync().await),
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => return Some(self.resync().await),
                Err(RecvError::Closed) => return None,
            };
            if already_seen(self.seen.as_ref(), event.facts()) {
                continue;
            }
            if event.facts().ends_reply() {
                self.ended = true;
            }
            return Some(sse_event(&event));
        }
    }

    /// Fell too far behind: start over from a fresh snapshot, as a socket does.
    async fn resync(&mut self) -> SseEvent {
        tracing::info!(conversation_id = %self.conversation_id, "SSE subscriber lagged, resyncing");
        self.events = None;
        self.chat.unsubscribed(&self.conversation_id);
        match self.chat.subscribe(&self.user, &self.conversation_id).await {
            Ok((snapshot, subscription)) => {
                self.events = Some(subscription.events);
                self.ended = !is_streaming(&snapshot);
                sse_event(&Event::new(&snapshot))
            }
            Err(err) => {
                self.ended = true;
                let frame = err.to_frame(None, Some(self.conversation_id.clone()));
                sse_event(&Event::new(&frame))
            }
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        if self.events.take().is_some() {
            self.chat.unsubscribed(&self.conversation_id);
        }
    }
}

/// The SSE response: the first frames, then the followed conversation's events.
pub(super) fn respond(first: &[&ServerFrame], follow: Follow) -> Response {
    let first: Vec<SseEvent> = first.iter().map(|f| sse_event(&Event::new(f))).collect();
    let live = stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((event, follow))
    });
    let events = stream::iter(first).chain(live).map(Ok::<_, Infallible>);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Reverse proxies (nginx) must pass events on as they come.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One frame as an SSE event: named after its `type`, with its JSON as data.
fn sse_event(event: &Event) -> SseEvent {
    let facts = event.facts();
    let sse = SseEvent::default()
        .event(facts.frame_type)
        .data(event.json().as_str());
    // Ids are built from server-made ids; the check only keeps `id` from panicking.
    match facts.stable_id() {
        Some(id) if !id.contains(['\n', '\r', '\0']) => sse.id(id),
        _ => sse,
    }
}

/// A `delta` of the `Last-Event-ID` message at or before its index.
pub(super) fn already_seen(seen: Option<&(MessageId, u64)>, facts: &EventFacts) -> bool {
    match (&facts.subject, facts.index, seen) {
        (Some(message_id), Some(index), Some((seen_id, seen_index))) => {
            message_id == seen_id.as_str() && index <= *seen_index
        }
        _ => false,
    }
}

/// Whether the `Last-Event-ID` delta `seen` is one the client can hold
/// together with `snapshot`: of another message, or of the streaming one
/// below its `next_index`. An id at or past it names text the server no
/// longer has (seen before a crash and lost with it; the reply was then
/// continued from its last checkpoint, its deltas numbered from there), and
/// is ignored: the snapshot is where the client starts again.
pub(super) fn behind_snapshot(snapshot: &ServerFrame, seen: &(MessageId, u64)) -> bool {
    match snapshot {
        ServerFrame::Snapshot {
            streaming: Some(streaming),
            ..
        } if streaming.message.id == seen.0 => seen.1 < streaming.next_index,
        _ => true,
    }
}

pub(super) fn is_streaming(snapshot: &ServerFrame) -> bool {
    matches!(
        snapshot,
        ServerFrame::Snapshot {
            streaming: Some(_),
            ..
        }
    )
}
