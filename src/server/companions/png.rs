//! Just enough PNG for character cards: walk the chunks of an image, read
//! its `tEXt` chunks, write it again with some replaced, and make a plain
//! square when a card has no image. Pixels are never decoded.

/// Every PNG starts with these eight bytes.
pub const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// One chunk: its type and its data, borrowed from the image.
struct Chunk<'a> {
    kind: [u8; 4],
    data: &'a [u8],
    /// The chunk's bytes as they are in the file (length, type, data, CRC).
    whole: &'a [u8],
}

/// The chunks of `png` up to and including `IEND`, checked for length; the
/// CRC is checked for the text chunks (the ones read).
fn chunks(png: &[u8]) -> Result<Vec<Chunk<'_>>, &'static str> {
    let mut rest = png
        .strip_prefix(&SIGNATURE)
        .ok_or("it does not start with the PNG signature")?;
    let mut out = Vec::new();
    loop {
        if rest.len() < 12 {
            return Err("it ends in the middle of a chunk");
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > rest.len() - 12 {
            return Err("a chunk is longer than the file");
        }
        let kind = [rest[4], rest[5], rest[6], rest[7]];
        let data = &rest[8..8 + len];
        let crc =
            u32::from_be_bytes([rest[8 + len], rest[9 + len], rest[10 + len], rest[11 + len]]);
        if out.is_empty() && &kind != b"IHDR" {
            return Err("its first chunk is not IHDR");
        }
        if &kind == b"tEXt" && crc32(&rest[4..8 + len]) != crc {
            return Err("a text chunk's checksum is wrong");
        }
        out.push(Chunk {
            kind,
            data,
            whole: &rest[..12 + len],
        });
        rest = &rest[12 + len..];
        if &kind == b"IEND" {
            return Ok(out);
        }
    }
}

/// The `tEXt` chunks of `png` as (keyword, text), in file order. Text is
/// Latin-1 by the PNG spec; base64 cards are ASCII either way.
pub fn text_chunks(png: &[u8]) -> Result<Vec<(String, String)>, &'static str> {
    Ok(chunks(png)?
        .into_iter()
        .filter(|chunk| &chunk.kind == b"tEXt")
        .filter_map(|chunk| {
            let split = chunk.data.iter().position(|&b| b == 0)?;
            let latin1 = |bytes: &[u8]| bytes.iter().map(|&b| char::from(b)).collect::<String>();
            Some((
                latin1(&chunk.data[..split]),
                latin1(&chunk.data[split + 1..]),
            ))
        })
        .collect())
}

/// `png` with its `tEXt` chunks named in `remove` left out and `add`
/// written just before `IEND`. An image that is not a valid PNG is replaced
/// by [`placeholder`].
pub fn with_text_chunks(png: &[u8], remove: &[&str], add: &[(&str, String)]) -> Vec<u8> {
    let placeholder_image;
    let parsed = match chunks(png) {
        Ok(parsed) => parsed,
        Err(_) => {
            placeholder_image = placeholder();
            match chunks(&placeholder_image) {
                Ok(parsed) => parsed,
                Err(_) => unreachable!("the placeholder is a valid PNG"),
            }
        }
    };
    let added: usize = add.iter().map(|(k, v)| k.len() + v.len() + 13).sum();
    let mut out = Vec::with_capacity(png.len() + added);
    out.extend_from_slice(&SIGNATURE);
    for chunk in parsed {
        if &chunk.kind == b"tEXt" {
            let keyword = chunk.data.split(|&b| b == 0).next().unwrap_or_default();
            if remove.iter().any(|r| r.as_bytes() == keyword) {
                continue;
            }
        }
        if &chunk.kind == b"IEND" {
            for (keyword, text) in add {
                let mut data = Vec::with_capacity(keyword.len() + 1 + text.len());
                data.extend_from_slice(keyword.as_bytes());
                data.push(0);
                data.extend(text.chars().map(|c| u8::try_from(c).unwrap_or(b'?')));
                write_chunk(&mut out, *b"tEXt", &data);
            }
        }
        out.extend_from_slice(chunk.whole);
    }
    out
}

fn write_chunk(out: &mut Vec<u8>, kind: [u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(&kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A 64×64 square in Tether's accent colour: the image of a card whose
/// companion has no picture. Stored (uncompressed) deflate; 12 KB.
pub fn placeholder() -> Vec<u8> {
    const SIDE: u32 = 64;
    const RGB: [u8; 3] = [0x8b, 0x7c, 0xf6];
    // Each row: filter type 0 (none), then its pixels.
    let row: Vec<u8> = std::iter::once(0)
        .chain(RGB.iter().copied().cycle().take(SIDE as usize * 3))
        .collect();
    let raw = row.repeat(SIDE as usize);
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&SIDE.to_be_bytes());
    ihdr.extend_from_slice(&SIDE.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
                                              // zlib: header, one final stored block, Adler-32.
    let len = raw.len() as u16;
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend_from_slice(&len.to_le_bytes());
    zlib.extend_from_slice(&(!len).to_le_bytes());
    zlib.extend_from_slice(&raw);
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut out = SIGNATURE.to_vec();
    write_chunk(&mut out, *b"IHDR", &ihdr);
    write_chunk(&mut out, *b"IDAT", &zlib);
    write_chunk(&mut out, *b"IEND", &[]);
    out
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

/// The CRC-32 of PNG chunks (ISO 3309, as in zlib).
fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |c, &b| {
        CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8)
    })
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_and_adler_match_their_check_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn the_placeholder_is_a_png_with_no_text() {
        let png = placeholder();
        assert!(png.starts_with(&SIGNATURE));
        assert_eq!(text_chunks(&png), Ok(Vec::new()));
    }

    #[test]
    fn text_chunks_are_added_before_iend_and_removed_by_keyword() {
        let png = with_text_chunks(
            &placeholder(),
            &[],
            &[("chara", "abc".into()), ("Comment", "é".into())],
        );
        assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]));
        assert_eq!(
            text_chunks(&png),
            Ok(vec![
                ("chara".into(), "abc".into()),
                ("Comment".into(), "é".into())
            ])
        );
        let without = with_text_chunks(&png, &["chara"], &[]);
        assert_eq!(
            text_chunks(&without),
            Ok(vec![("Comment".into(), "é".into())])
        );
    }

    #[test]
    fn damaged_images_are_refused() {
        let png = with_text_chunks(&placeholder(), &[], &[("chara", "abc".into())]);
        assert!(text_chunks(b"\x89PNG").is_err());
        assert!(text_chunks(&png[..png.len() - 1]).is_err(), "no IEND");
        let mut flipped = png.clone();
        let at = flipped.len() - 12 - 4 - 1; // the last byte of the text
        flipped[at] ^= 1;
        assert_eq!(
            text_chunks(&flipped),
            Err("a text chunk's checksum is wrong")
        );
        let mut long = png.clone();
        long[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(text_chunks(&long), Err("a chunk is longer than the file"));
    }
}
