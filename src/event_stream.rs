//! Splits a Server-Sent Events byte stream into the `data` of each event.
//!
//! Pure and compiled on both sides, so it is tested natively. The browser's
//! HTTP fallback ([`crate::client::fallback`]) feeds it the chunks of a fetch
//! body; the server's model client (`server::llm`) feeds it the chunks of the
//! upstream's streaming response. Either may cut an event, a line or a UTF-8
//! character anywhere. Lines end in `\n` or `\r\n`; `event`, `id` and
//! `retry` fields are ignored (neither reader needs them), comments and
//! events without data are skipped.

/// Bytes received so far that do not yet end an event.
#[derive(Debug, Default)]
pub struct EventStream {
    buf: Vec<u8>,
    /// Start of the first line not read yet.
    line_start: usize,
    /// The `data` lines of the event being read, joined by `\n`.
    data: Option<String>,
}

impl EventStream {
    /// Adds a chunk; returns the data of every event it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.extend(chunk);
        std::iter::from_fn(|| self.next_event()).collect()
    }

    /// Adds a chunk without reading it; [`Self::next_event`] reads.
    pub fn extend(&mut self, chunk: &[u8]) {
        if self.line_start > 0 {
            self.buf.drain(..self.line_start);
            self.line_start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The data of the next complete event, if one has fully arrived.
    pub fn next_event(&mut self) -> Option<String> {
        while let Some(len) = self.buf[self.line_start..].iter().position(|&b| b == b'\n') {
            let start = self.line_start;
            self.line_start += len + 1;
            let mut line = &self.buf[start..start + len];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    return Some(data);
                }
                continue;
            }
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => (&line[..colon], &line[colon + 1..]),
                None => (line, &[][..]),
            };
            if field != b"data" {
                continue; // a comment (empty field), `event`, `id`, `retry`
            }
            let value = value.strip_prefix(b" ").unwrap_or(value);
            // Lines are cut at `\n`, never inside a UTF-8 character.
            let value = String::from_utf8_lossy(value);
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(&value);
                }
                None => self.data = Some(value.into_owned()),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_cut_anywhere_come_out_whole_and_in_order() {
        let stream = "event: accepted\nid: m:accepted\ndata: {\"a\":\"é\"}\n\n\
                      : keep-alive\n\n\
                      event: delta\r\ndata: {\"b\":1}\r\n\r\n\
                      data: one\ndata:two\n\n\
                      data\n\n";
        let bytes = stream.as_bytes();
        for cut in 1..bytes.len() {
            let mut parser = EventStream::default();
            let mut got = parser.push(&bytes[..cut]);
            got.extend(parser.push(&bytes[cut..]));
            assert_eq!(
                got,
                ["{\"a\":\"é\"}", "{\"b\":1}", "one\ntwo", ""],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn an_unfinished_event_waits_for_its_end() {
        let mut parser = EventStream::default();
        assert!(parser.push(b"data: {\"x\":").is_empty());
        assert!(parser.push(b"1}\n").is_empty());
        assert_eq!(parser.push(b"\n"), ["{\"x\":1}"]);
    }

    #[test]
    fn read_bytes_are_dropped() {
        let mut parser = EventStream::default();
        for _ in 0..1000 {
            assert_eq!(parser.push(b"data: x\n\n"), ["x"]);
        }
        parser.extend(b"");
        assert!(parser.buf.is_empty(), "{} bytes kept", parser.buf.len());
    }
}

/// The splitter's property, shared by its proptests and the fuzz target
/// `event_stream` (`fuzz/`): however a byte stream is cut into chunks, the
/// same events come out.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod properties {
    use super::EventStream;

    /// `bytes` cut at `cuts` (byte offsets in `0..=bytes.len()`, any order,
    /// repeats give empty pieces).
    pub fn pieces<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut at: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
        at.push(bytes.len());
        at.sort_unstable();
        let mut from = 0;
        at.into_iter()
            .map(|to| {
                let piece = &bytes[from..to];
                from = to;
                piece
            })
            .collect()
    }

    /// The events of `bytes` fed cut at `cuts`.
    pub fn feed(bytes: &[u8], cuts: &[usize]) -> Vec<String> {
        let mut parser = EventStream::default();
        pieces(bytes, cuts)
            .into_iter()
            .flat_map(|piece| parser.push(piece))
            .collect()
    }

    /// Reads `bytes` whole, cut at `cuts` and byte by byte; the events of
    /// all three must agree. Returns them.
    pub fn same_events_at_any_split(bytes: &[u8], cuts: &[usize]) -> Result<Vec<String>, String> {
        let whole = feed(bytes, &[]);
        let cut = feed(bytes, cuts);
        fail_unless!(cut == whole, "cut at {cuts:?}: {cut:?}, whole: {whole:?}");
        let mut parser = EventStream::default();
        let byte_by_byte: Vec<String> = bytes
            .iter()
            .flat_map(|b| parser.push(std::slice::from_ref(b)))
            .collect();
        fail_unless!(
            byte_by_byte == whole,
            "byte by byte: {byte_by_byte:?}, whole: {whole:?}"
        );
        Ok(whole)
    }
}

/// Property tests (`PROPTEST_CASES` cases each, 256 by default).
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::properties::same_events_at_any_split;

    /// One line of an event, and the data it adds (if any).
    fn line() -> impl Strategy<Value = (String, Option<String>)> {
        let value = "[^\r\n]{0,20}";
        prop_oneof![
            // `data: value` (one optional space is dropped) or bare `data`.
            value.prop_map(|v| (format!("data: {v}"), Some(v.clone()))),
            "[^\r\n ][^\r\n]{0,20}".prop_map(|v| (format!("data:{v}"), Some(v))),
            Just(("data".to_owned(), Some(String::new()))),
            Just(("data:".to_owned(), Some(String::new()))),
            // Fields neither reader needs, and comments.
            value.prop_map(|v| (format!("event: {v}"), None)),
            value.prop_map(|v| (format!("id:{v}"), None)),
            "[0-9]{1,5}".prop_map(|v| (format!("retry: {v}"), None)),
            value.prop_map(|v| (format!(":{v}"), None)),
            // Unknown fields are ignored too.
            ("[a-z]{1,8}", "(:[^\r\n]{0,10})?")
                .prop_filter("not data", |(name, _)| name != "data")
                .prop_map(|(name, rest)| (format!("{name}{rest}"), None)),
        ]
    }

    /// A stream of events with `\n` and `\r\n` line ends, and the data of
    /// each event it holds.
    fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<String>)> {
        let event = prop::collection::vec((line(), any::<bool>()), 0..5);
        prop::collection::vec((event, any::<bool>()), 0..8).prop_map(|events| {
            let (mut bytes, mut want) = (Vec::new(), Vec::new());
            for (lines, crlf) in events {
                let mut data: Option<String> = None;
                for ((text, value), line_crlf) in lines {
                    bytes.extend_from_slice(text.as_bytes());
                    bytes.extend_from_slice(if line_crlf { b"\r\n" } else { b"\n" });
                    if let Some(value) = value {
                        data = Some(match data {
                            Some(d) => format!("{d}\n{value}"),
                            None => value,
                        });
                    }
                }
                bytes.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                want.extend(data);
            }
            (bytes, want)
        })
    }

    /// Byte offsets in `0..=len` from proptest's indices.
    fn offsets(cuts: &[prop::sample::Index], len: usize) -> Vec<usize> {
        cuts.iter().map(|c| c.index(len + 1)).collect()
    }

    proptest! {
        #[test]
        fn prop_events_are_read_the_same_at_any_split(
            (bytes, want) in stream(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let got = same_events_at_any_split(&bytes, &offsets(&cuts, bytes.len()))
                .map_err(TestCaseError::fail)?;
            prop_assert_eq!(got, want);
        }

        #[test]
        fn prop_any_bytes_split_anywhere_give_the_same_events(
            parts in prop::collection::vec(prop_oneof![
                prop::collection::vec(any::<u8>(), 0..16),
                prop::sample::select(vec![
                    &b"data:"[..], b"data: ", b"data", b":", b"\n", b"\r", b"\r\n",
                    b"\n\n", b"event: x\n", b"\xc3", b"\xa9", "é".as_bytes(), b"\xff",
                ])
                .prop_map(<[u8]>::to_vec),
            ], 0..40),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let bytes = parts.concat();
            same_events_at_any_split(&bytes, &offsets(&cuts, bytes.len()))
                .map_err(TestCaseError::fail)?;
        }
    }
}
