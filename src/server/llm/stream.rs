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

use super::{events::provider_message, LlmError, LlmEvent};
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
                // U+0000 is no text anyone reads, and PostgreSQL refuses it
                // in text columns: the reply's text would not be stored.
                let text = if text.contains('\0') {
                    text.replace('\0', "\u{FFFD}")
                } else {
                    text.into_owned()
                };
                out.push_back(Ok(LlmEvent::Text(text)));
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

/// Over any body of byte chunks whose errors are [`LlmError`]s (reqwest's
/// body in the product; plain bytes in the tests and the fuzz targets).
impl<B, E> Stream for ChunkStream<B>
where
    B: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<LlmError>,
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
                    this.ready.push_back(Err(err.into()));
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
    fn a_nul_character_from_the_model_becomes_a_replacement_character() {
        let body =
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\\u0000b\"}}]}\n\ndata: [DONE]\n\n";
        assert_eq!(
            read_stream(body, body.len()),
            vec![Ok(LlmEvent::Text("a\u{FFFD}b".into()))]
        );
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

/// The chunk reader's property, shared by its proptests and the fuzz target
/// `chunk_reader` (`fuzz/`): any bytes, cut anywhere, read the same; an
/// error ends the stream; no empty text. Never a panic.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod properties {
    use std::{
        pin::Pin,
        task::{Context, Poll, Waker},
    };

    use bytes::Bytes;
    use futures::Stream;

    use super::{ChunkStream, LlmError, LlmEvent};
    use crate::event_stream::properties::pieces;

    /// What a [`ChunkStream`] reads from `body` cut at `cuts` (byte offsets
    /// in `0..=body.len()`, any order, repeats give empty chunks).
    pub fn read(body: &[u8], cuts: &[usize]) -> Vec<Result<LlmEvent, LlmError>> {
        let chunks: Vec<Result<Bytes, std::convert::Infallible>> = pieces(body, cuts)
            .into_iter()
            .map(|piece| Ok(Bytes::copy_from_slice(piece)))
            .collect();
        let mut stream = ChunkStream::new(futures::stream::iter(chunks));
        // The body is always ready: the reader never waits, no executor needed.
        let mut cx = Context::from_waker(Waker::noop());
        let mut events = Vec::new();
        while let Poll::Ready(Some(event)) = Pin::new(&mut stream).poll_next(&mut cx) {
            events.push(event);
        }
        events
    }

    /// Reads `body` whole and cut at `cuts`: the same events, an error only
    /// last, no empty text. Returns them.
    pub fn reads_the_same_at_any_split(
        body: &[u8],
        cuts: &[usize],
    ) -> Result<Vec<Result<LlmEvent, LlmError>>, String> {
        let whole = read(body, &[]);
        let first_error = whole.iter().position(Result::is_err);
        fail_unless!(
            first_error.is_none_or(|i| i + 1 == whole.len()),
            "an error that does not end the stream: {whole:?}"
        );
        fail_unless!(
            !whole
                .iter()
                .any(|e| matches!(e, Ok(LlmEvent::Text(t)) if t.is_empty())),
            "empty text: {whole:?}"
        );
        let cut = read(body, cuts);
        fail_unless!(cut == whole, "cut at {cuts:?}: {cut:?}, whole: {whole:?}");
        Ok(whole)
    }
}

/// Property tests (`PROPTEST_CASES` cases each, 256 by default).
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::{properties::reads_the_same_at_any_split, *};

    /// Byte offsets in `0..=len` from proptest's indices.
    fn offsets(cuts: &[prop::sample::Index], len: usize) -> Vec<usize> {
        cuts.iter().map(|c| c.index(len + 1)).collect()
    }

    /// One chunk of a well-formed stream, and the events it gives.
    fn chunk() -> impl Strategy<Value = (String, Vec<LlmEvent>)> {
        let reason = prop_oneof![
            Just(None),
            Just(Some("stop".to_owned())),
            Just(Some("length".to_owned())),
            "[a-z_]{0,12}".prop_map(Some),
        ];
        let usage = prop::option::of((any::<u32>(), any::<u32>()));
        prop_oneof![
            4 => ("(?s).{0,20}", reason, usage).prop_map(|(text, reason, usage)| {
                let mut events = Vec::new();
                if !text.is_empty() {
                    // U+0000 arrives as U+FFFD (it cannot be stored).
                    events.push(LlmEvent::Text(text.replace('\0', "\u{FFFD}")));
                }
                if let Some(reason) = &reason {
                    let reason = if reason == "length" { FinishReason::Length } else { FinishReason::Stop };
                    events.push(LlmEvent::Finished(reason));
                }
                let usage = usage.map(|(prompt_tokens, completion_tokens)| {
                    events.push(LlmEvent::Usage(Usage { prompt_tokens, completion_tokens }));
                    json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens})
                });
                let chunk = json!({
                    "id": "c", "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": reason}],
                    "usage": usage,
                });
                (format!("data: {chunk}\n\n"), events)
            }),
            // Keep-alives, other fields, a choice without delta, no choices.
            1 => prop::sample::select(vec![
                ": keep-alive\n\n",
                "event: ping\r\nid: 1\r\n\r\n",
                "data: {\"choices\":[{\"delta\":{}}]}\r\n\r\n",
                "data: {\"choices\":null,\"usage\":null}\n\n",
            ])
            .prop_map(|s| (s.to_owned(), Vec::new())),
        ]
    }

    /// Pieces of almost-streams for the reader to choke on.
    fn junk() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..12),
            prop::sample::select(vec![
                &b"data: "[..],
                b"data:",
                b"\n",
                b"\r\n",
                b"\n\n",
                b":",
                b"[DONE]",
                b"{",
                b"}",
                b"[",
                b"]",
                b"\"",
                b",",
                b"null",
                b"\"choices\":",
                b"\"delta\":",
                b"\"content\":",
                b"\"finish_reason\":",
                b"\"usage\":",
                b"\"error\":",
                b"\"message\":",
                b"\"prompt_tokens\":",
                b"-1",
                b"4294967296",
                b"1.5",
                b"\"\\ud800\"",
                b"\"\xff\"",
                "\"é\"".as_bytes(),
                b"{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}",
                b"{\"error\":{\"message\":\"x\"}}",
            ])
            .prop_map(<[u8]>::to_vec),
        ]
    }

    proptest! {
        #[test]
        fn prop_valid_streams_read_the_same_at_any_split(
            chunks in prop::collection::vec(chunk(), 0..8),
            done in any::<bool>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let (mut body, mut want) = (String::new(), Vec::new());
            for (text, events) in chunks {
                body.push_str(&text);
                want.extend(events.into_iter().map(Ok));
            }
            if done {
                // Nothing after `[DONE]` is read.
                body.push_str("data: [DONE]\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\nnot json");
            }
            let got = reads_the_same_at_any_split(body.as_bytes(), &offsets(&cuts, body.len()))
                .map_err(TestCaseError::fail)?;
            prop_assert_eq!(got, want);
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic_and_read_the_same_at_any_split(
            parts in prop::collection::vec(junk(), 0..40),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let body = parts.concat();
            reads_the_same_at_any_split(&body, &offsets(&cuts, body.len()))
                .map_err(TestCaseError::fail)?;
        }
    }
}
