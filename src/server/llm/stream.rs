//! The chunk reader: the upstream's SSE body turned into [`LlmEvent`]s in
//! the task that polls it. Each chunk of the HTTP body goes through
//! [`EventStream`] and a lenient chunk type (llama.cpp, vLLM and Ollama
//! leave out fields OpenAI sends).

use std::{
    borrow::Cow,
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures::Stream;

use super::{
    request::{provider_message, request_error},
    LlmError, LlmEvent,
};
use crate::{
    event_stream::EventStream,
    protocol::{FinishReason, Usage},
};

/// One `data:` payload of the stream, as lenient as providers need: every
/// field may be missing or `null`, unknown fields are ignored, text is
/// borrowed from the event unless it has escapes.
#[derive(serde::Deserialize)]
struct WireChunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<WireChoice<'a>>>,
    #[serde(default)]
    usage: Option<Usage>,
    /// Some providers report a failure mid-stream as an `error` object.
    #[serde(default, borrow)]
    error: Option<WireError<'a>>,
}

#[derive(serde::Deserialize)]
struct WireChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<WireDelta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct WireDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct WireError<'a> {
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}

/// Turns the upstream's SSE body into [`LlmEvent`]s, in the task that polls
/// it. Ends at `data: [DONE]`, at the end of the body, or after an error.
pub(super) struct ChunkStream<B> {
    body: B,
    events: EventStream,
    ready: VecDeque<Result<LlmEvent, LlmError>>,
    ended: bool,
}

impl<B> ChunkStream<B> {
    pub(super) fn new(body: B) -> Self {
        Self {
            body,
            events: EventStream::default(),
            ready: VecDeque::new(),
            ended: false,
        }
    }

    /// Reads every event the bytes so far complete.
    fn read_events(&mut self) {
        while let Some(data) = self.events.next_event() {
            if data.trim() == "[DONE]" {
                self.ended = true;
                return;
            }
            if let Err(err) = chunk_events(&data, &mut self.ready) {
                self.ready.push_back(Err(err));
                self.ended = true;
                return;
            }
        }
    }
}

/// The events of one chunk, in order: text, then why it ends, then usage.
fn chunk_events(
    data: &str,
    out: &mut VecDeque<Result<LlmEvent, LlmError>>,
) -> Result<(), LlmError> {
    let chunk: WireChunk<'_> = serde_json::from_str(data)
        .map_err(|e| LlmError::Upstream(format!("unreadable stream chunk: {e}")))?;
    if let Some(error) = chunk.error {
        let message = error.message.as_deref().unwrap_or("no details");
        return Err(LlmError::Upstream(provider_message(message)));
    }
    for choice in chunk.choices.into_iter().flatten() {
        if let Some(text) = choice.delta.and_then(|d| d.content) {
            if !text.is_empty() {
                out.push_back(Ok(LlmEvent::Text(text.into_owned())));
            }
        }
        if let Some(reason) = choice.finish_reason {
            out.push_back(Ok(LlmEvent::Finished(match reason.as_ref() {
                "length" => FinishReason::Length,
                _ => FinishReason::Stop,
            })));
        }
    }
    if let Some(usage) = chunk.usage {
        out.push_back(Ok(LlmEvent::Usage(usage)));
    }
    Ok(())
}

impl<B> Stream for ChunkStream<B>
where
    B: Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    type Item = Result<LlmEvent, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.ready.pop_front() {
                return Poll::Ready(Some(event));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.body).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    this.events.extend(&bytes);
                    this.read_events();
                }
                Poll::Ready(Some(Err(err))) => {
                    this.ready.push_back(Err(request_error(err)));
                    this.ended = true;
                }
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `body` through a [`ChunkStream`], cut into pieces of `cut` bytes.
    fn read_stream(body: &str, cut: usize) -> Vec<Result<LlmEvent, LlmError>> {
        let pieces: Vec<reqwest::Result<Bytes>> = body
            .as_bytes()
            .chunks(cut)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream = ChunkStream::new(futures::stream::iter(pieces));
        futures::executor::block_on(futures::StreamExt::collect(stream))
    }

    #[test]
    fn chunks_from_lenient_providers_become_events_at_any_cut() {
        // OpenAI's shape, then llama.cpp's (no id/created, `null`s), CRLF
        // lines, a keep-alive comment, usage in its own chunk, and bytes
        // after `[DONE]` that must not be read.
        let body = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"Hé \\\"you\\\"\"}}]}\r\n\r\n\
                    : ping\n\n\
                    data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":null}\n\n\
                    data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n\
                    data: [DONE]\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n";
        let expected = vec![
            Ok(LlmEvent::Text("Hé \"you\"".into())),
            Ok(LlmEvent::Finished(FinishReason::Length)),
            Ok(LlmEvent::Usage(Usage {
                prompt_tokens: 3,
                completion_tokens: 2,
            })),
        ];
        for cut in 1..=body.len() {
            assert_eq!(read_stream(body, cut), expected, "cut every {cut} bytes");
        }
    }

    #[test]
    fn an_error_in_the_stream_ends_it_with_the_providers_message() {
        let body = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n\
                    data: {\"error\":{\"message\":\"model overloaded\",\"type\":\"server_error\"}}\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n";
        assert_eq!(
            read_stream(body, 7),
            vec![
                Ok(LlmEvent::Text("a".into())),
                Err(LlmError::Upstream("model overloaded".into())),
            ]
        );
        let garbage = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: not json\n\n";
        let events = read_stream(garbage, 100);
        assert_eq!(events[0], Ok(LlmEvent::Text("a".into())));
        assert!(
            matches!(&events[1], Err(LlmError::Upstream(m)) if m.starts_with("unreadable stream chunk")),
            "{events:?}"
        );
        assert_eq!(events.len(), 2);
    }
}
