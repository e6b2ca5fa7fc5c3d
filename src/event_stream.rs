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
