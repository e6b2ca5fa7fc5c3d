//! Splits a Server-Sent Events byte stream into the `data` of each event.
//!
//! Pure and compiled everywhere, so it is tested natively; the browser's
//! HTTP fallback ([`super::fallback`]) feeds it the chunks of a fetch body,
//! which may cut an event (or a UTF-8 character) anywhere.

/// Bytes received so far that do not yet end an event.
#[derive(Debug, Default)]
pub struct EventStream {
    pending: Vec<u8>,
}

impl EventStream {
    /// Adds a chunk; returns the data of every event it completed, in order.
    /// Events without data (keep-alive comments) are skipped.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let raw: Vec<u8> = self.pending.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&raw[..end]);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                events.push(data.join("\n"));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_cut_anywhere_come_out_whole_and_in_order() {
        let stream = "event: accepted\nid: m:accepted\ndata: {\"a\":\"é\"}\n\n\
                      : keep-alive\n\n\
                      event: delta\ndata: {\"b\":1}\n\n\
                      data: one\ndata: two\n\n";
        let bytes = stream.as_bytes();
        for cut in 1..bytes.len() {
            let mut parser = EventStream::default();
            let mut got = parser.push(&bytes[..cut]);
            got.extend(parser.push(&bytes[cut..]));
            assert_eq!(
                got,
                ["{\"a\":\"é\"}", "{\"b\":1}", "one\ntwo"],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn an_unfinished_event_waits_for_its_end() {
        let mut parser = EventStream::default();
        assert!(parser.push(b"data: {\"x\":").is_empty());
        assert_eq!(parser.push(b"1}\n\n"), ["{\"x\":1}"]);
    }
}
