//! The soak's traffic: each worker repeats one kind of cycle until the soak
//! ends, records what completed and every error (then pauses briefly and
//! goes on with a fresh connection). Cycles in flight at the end finish.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::conn::{Conn, Reply};
use super::shared::{Kind, Shared};
use crate::ctx::{get_cookie, Ctx};
use crate::frames::{conversation_frame, send_json};
use crate::sse::{self, EventReader};
use crate::stats::expected_reply;
use crate::ws;

/// A worker pauses this long after an error before its next cycle.
const ERROR_PAUSE: Duration = Duration::from_millis(250);

/// What every worker needs to know about the mix.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Messages per chat conversation; then the chat user leaves and a new one comes.
    pub conversation_messages: usize,
    /// Pause between a chat user's messages.
    pub think: Duration,
    /// Pause between churn cycles.
    pub churn_pause: Duration,
    /// Deltas seen before a resume drops its connection or a stop is sent.
    pub deltas_before_cut: u64,
    /// Message of the resume cycles and the reply it must produce.
    pub resume_text: String,
    pub resume_expected: String,
    /// Message of the stop cycles (a long reply) and the reply it would produce.
    pub stop_text: String,
    pub stop_expected: String,
}

impl Plan {
    pub fn new(resume_tokens: u64, stop_tokens: u64) -> Self {
        let resume_text = format!("[[tokens:{resume_tokens}]] soak resume");
        let stop_text = format!("[[tokens:{stop_tokens}]] soak stop");
        Self {
            conversation_messages: 5,
            think: Duration::from_millis(300),
            churn_pause: Duration::from_millis(100),
            deltas_before_cut: 3,
            resume_expected: expected_reply(&resume_text).unwrap_or_default(),
            resume_text,
            stop_expected: expected_reply(&stop_text).unwrap_or_default(),
            stop_text,
        }
    }
}

/// One worker: who it is and what it shares.
#[derive(Clone)]
pub struct Worker {
    pub ctx: Arc<Ctx>,
    pub shared: Arc<Shared>,
    pub plan: Arc<Plan>,
    pub n: usize,
}

impl Worker {
    fn id(&self, what: &str, cycle: u64, m: usize) -> String {
        format!("{}-{what}{}-c{cycle}-m{m}", self.ctx.run_tag, self.n)
    }

    async fn failed(&self, kind: Kind, error: String) {
        self.shared.error(format!("{}:{error}", kind.name()));
        tokio::time::sleep(ERROR_PAUSE).await;
    }

    /// Chat users over `kind`'s transport, one after the other: each a new
    /// identity with one conversation of `conversation_messages` messages.
    pub async fn chat(self, kind: Kind) {
        let mut cycle = 0;
        while self.shared.running() {
            let result = match kind {
                Kind::ChatWs => self.chat_ws(cycle).await,
                _ => self.chat_sse(cycle).await,
            };
            if let Err(e) = result {
                self.failed(kind, e).await;
            }
            cycle += 1;
        }
    }

    async fn chat_ws(&self, cycle: u64) -> Result<(), String> {
        let ctx = &*self.ctx;
        let cookie = get_cookie(ctx).await?;
        let mut socket = ws::connect(ctx, &cookie, ctx.step_deadline(Instant::now())).await?;
        let mut conversation = None;
        for m in 0..self.plan.conversation_messages {
            if !self.shared.running() {
                break;
            }
            let id = self.id("cw", cycle, m);
            let s = ws::exchange(ctx, &mut socket, &id, &mut conversation).await?;
            self.shared.chat(Kind::ChatWs, s.ttft_ms, s.total_ms);
            tokio::time::sleep(self.plan.think).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), socket.close(None)).await;
        Ok(())
    }

    async fn chat_sse(&self, cycle: u64) -> Result<(), String> {
        let ctx = &*self.ctx;
        let cookie = get_cookie(ctx).await?;
        let mut conversation = None;
        for m in 0..self.plan.conversation_messages {
            if !self.shared.running() {
                break;
            }
            let id = self.id("cs", cycle, m);
            let s = sse::exchange(ctx, &cookie, &id, &mut conversation).await?;
            self.shared.chat(Kind::ChatSse, s.ttft_ms, s.total_ms);
            tokio::time::sleep(self.plan.think).await;
        }
        Ok(())
    }

    /// Open a socket, get `hello`, close it (every other one without a close frame).
    pub async fn churn(self) {
        let mut cookie = None;
        let mut cycle = 0u64;
        while self.shared.running() {
            if let Err(e) = self.churn_once(&mut cookie, cycle).await {
                self.failed(Kind::Churn, e).await;
            }
            cycle += 1;
            tokio::time::sleep(self.plan.churn_pause).await;
        }
    }

    async fn churn_once(&self, cookie: &mut Option<String>, cycle: u64) -> Result<(), String> {
        let ctx = &*self.ctx;
        if cookie.is_none() {
            *cookie = Some(get_cookie(ctx).await?);
        }
        let cookie = cookie.as_deref().unwrap_or_default();
        let mut socket = ws::connect(ctx, cookie, ctx.step_deadline(Instant::now())).await?;
        if cycle.is_multiple_of(2) {
            let _ = tokio::time::timeout(Duration::from_secs(5), socket.close(None)).await;
        }
        drop(socket);
        self.shared.completed(Kind::Churn);
        Ok(())
    }

    /// Resume cycles, alternating transports: start a reply, drop the
    /// connection after a few deltas, reconnect and see the reply finish.
    pub async fn resume(self) {
        self.alternate([Kind::ResumeWs, Kind::ResumeSse]).await;
    }

    /// Stop cycles, alternating transports: start a long reply, `stop` it
    /// after a few deltas, and see it end `stopped`.
    pub async fn stop(self) {
        self.alternate([Kind::StopWs, Kind::StopSse]).await;
    }

    /// Resume or stop cycles, the WebSocket and the SSE kind in turn, until
    /// the run ends. One identity for all of them.
    async fn alternate(&self, kinds: [Kind; 2]) {
        let mut cookie = None;
        let mut cycle = 0u64;
        while self.shared.running() {
            let kind = kinds[(cycle % 2) as usize];
            let once = match kind {
                Kind::StopWs | Kind::StopSse => self.stop_once(kind, &mut cookie, cycle).await,
                _ => self.resume_once(kind, &mut cookie, cycle).await,
            };
            match once {
                Ok(()) => self.shared.completed(kind),
                Err(e) => self.failed(kind, e).await,
            }
            cycle += 1;
        }
    }

    /// What a resume and a stop cycle begin with: the identity (fetched
    /// once), a reply to `text` started on `kind`'s transport, and its first
    /// `deltas_before_cut` deltas read.
    async fn started(
        &self,
        kind: Kind,
        cookie: &mut Option<String>,
        id: &str,
        text: &str,
    ) -> Result<Started, String> {
        if cookie.is_none() {
            *cookie = Some(get_cookie(&self.ctx).await?);
        }
        let cookie = cookie.clone().unwrap_or_default();
        let deadline = self.ctx.step_deadline(Instant::now());
        let mut conn = self.start(kind, &cookie, id, text, deadline).await?;
        let mut reply = Reply::default();
        reply
            .until_deltas(&mut conn, self.plan.deltas_before_cut, id, deadline)
            .await?;
        Ok(Started {
            cookie,
            deadline,
            conn,
            reply,
        })
    }

    async fn resume_once(
        &self,
        kind: Kind,
        cookie: &mut Option<String>,
        cycle: u64,
    ) -> Result<(), String> {
        let ctx = &*self.ctx;
        let id = self.id("r", cycle, 0);
        let Started {
            cookie,
            deadline,
            conn,
            mut reply,
        } = self
            .started(kind, cookie, &id, &self.plan.resume_text)
            .await?;
        let cookie = cookie.as_str();
        drop(conn); // no close frame, no end of body: the connection just goes
        let conversation = reply.conversation.clone().unwrap_or_default();
        let mut conn = match kind {
            Kind::ResumeWs => {
                let mut socket = ws::connect(ctx, cookie, deadline).await?;
                let subscribe = conversation_frame("subscribe", &conversation);
                ws::send_text(&mut socket, subscribe, deadline).await?;
                Conn::Ws(Box::new(socket))
            }
            _ => {
                let last = format!("{}:{}", reply.message_id, reply.next_index - 1);
                Conn::Sse(self.events(cookie, &conversation, &last, deadline).await?)
            }
        };
        let snapshot = conn.frame(deadline).await?;
        if reply.on_snapshot(snapshot, &self.plan.resume_expected)? {
            reply.until_done(&mut conn, &id, deadline).await?;
            reply.check_complete(&self.plan.resume_expected)?;
        }
        conn.finish(deadline).await
    }

    /// `GET /api/conversations/{id}/events` with `Last-Event-ID`.
    async fn events(
        &self,
        cookie: &str,
        conversation: &str,
        last_event_id: &str,
        deadline: Instant,
    ) -> Result<EventReader, String> {
        let ctx = &*self.ctx;
        let url = format!("{}/api/conversations/{conversation}/events", ctx.origin);
        let fut = ctx
            .http
            .get(url)
            .header("Origin", &ctx.origin)
            .header("Cookie", cookie)
            .header("Last-Event-ID", last_event_id)
            .send();
        let resp = match tokio::time::timeout_at(deadline, fut).await {
            Err(_) => return Err("timeout:events".into()),
            Ok(Err(_)) => return Err("connect:events".into()),
            Ok(Ok(r)) => r,
        };
        if resp.status() != 200 {
            return Err(sse::refusal(resp, deadline).await);
        }
        Ok(EventReader::new(resp))
    }

    /// Sends `text` as a new conversation over `kind`'s transport.
    async fn start(
        &self,
        kind: Kind,
        cookie: &str,
        id: &str,
        text: &str,
        deadline: Instant,
    ) -> Result<Conn, String> {
        let ctx = &*self.ctx;
        let body = send_json(id, None, text);
        match kind {
            Kind::ResumeWs | Kind::StopWs => {
                let mut socket = ws::connect(ctx, cookie, deadline).await?;
                ws::send_text(&mut socket, body, deadline).await?;
                Ok(Conn::Ws(Box::new(socket)))
            }
            _ => {
                let resp = sse::post_json(ctx, cookie, "/api/chat", body, deadline).await?;
                Ok(Conn::Sse(EventReader::new(resp)))
            }
        }
    }

    async fn stop_once(
        &self,
        kind: Kind,
        cookie: &mut Option<String>,
        cycle: u64,
    ) -> Result<(), String> {
        let ctx = &*self.ctx;
        let id = self.id("s", cycle, 0);
        let Started {
            cookie,
            deadline,
            mut conn,
            mut reply,
        } = self
            .started(kind, cookie, &id, &self.plan.stop_text)
            .await?;
        let cookie = cookie.as_str();
        let seen = self.plan.deltas_before_cut;
        let stop = conversation_frame("stop", reply.conversation.as_deref().unwrap_or_default());
        match &mut conn {
            Conn::Ws(socket) => ws::send_text(socket, stop, deadline).await?,
            Conn::Sse(_) => {
                let resp = sse::post_json(ctx, cookie, "/api/frame", stop, deadline).await?;
                if resp.status() != 204 {
                    return Err(format!("stop:status_{}", resp.status().as_u16()));
                }
            }
        }
        reply.until_done(&mut conn, &id, deadline).await?;
        reply.check_stopped(&self.plan.stop_expected, seen)?;
        conn.finish(deadline).await
    }
}

/// A reply started by a resume or stop cycle, cut after its first deltas.
struct Started {
    cookie: String,
    deadline: Instant,
    conn: Conn,
    reply: Reply,
}
