//! What the fuzz targets share: reading libFuzzer's bytes as the inputs of
//! a property check (`tether::fuzzing`). No checks of its own.

/// Splits `data` into cut offsets and the stream to cut: the first byte
/// says how many cuts (up to `most`), two bytes each (little endian) follow,
/// the rest is the stream. Offsets fall in `0..=stream.len()`.
pub fn cuts_and_stream(data: &[u8], most: usize) -> (Vec<usize>, &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let head = (usize::from(count) % (most + 1) * 2).min(rest.len());
    let (head, stream) = rest.split_at(head);
    let cuts = head
        .chunks(2)
        .map(|pair| {
            let offset = u16::from_le_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
            usize::from(offset) % (stream.len() + 1)
        })
        .collect();
    (cuts, stream)
}

/// Text from any bytes: invalid UTF-8 becomes U+FFFD, so every input is
/// checked rather than skipped.
pub fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}
