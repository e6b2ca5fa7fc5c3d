//! The little CBOR (RFC 8949) WebAuthn needs: an authenticator's
//! attestation object and a COSE public key. Definite lengths only (what
//! authenticators send), integers, byte and text strings, arrays, maps and
//! the simple values; nesting and sizes bounded, every read checked.

/// A decoded CBOR item.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Major types 0 and 1, as one signed integer.
    Int(i128),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Bool(bool),
    Null,
}

impl Value {
    /// The value of `key` in a map.
    pub fn get(&self, key: &Value) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i128> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }
}

/// Why bytes are not the CBOR expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CborError {
    #[error("CBOR ends early")]
    Truncated,
    #[error("CBOR nested too deeply")]
    TooDeep,
    #[error("CBOR item not supported (major type {0}, info {1})")]
    Unsupported(u8, u8),
    #[error("CBOR text is not UTF-8")]
    NotUtf8,
}

const MAX_DEPTH: usize = 16;

/// Reads one item from the start of `bytes`; returns it and the bytes after it.
pub fn decode(bytes: &[u8]) -> Result<(Value, &[u8]), CborError> {
    let mut reader = Reader { bytes, at: 0 };
    let value = reader.item(0)?;
    Ok((value, &bytes[reader.at..]))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CborError> {
        let end = self.at.checked_add(n).ok_or(CborError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(CborError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    /// The argument of a head whose additional information is `info`.
    fn argument(&mut self, major: u8, info: u8) -> Result<u64, CborError> {
        Ok(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes(self.fixed()?)),
            26 => u64::from(u32::from_be_bytes(self.fixed()?)),
            27 => u64::from_be_bytes(self.fixed()?),
            _ => return Err(CborError::Unsupported(major, info)),
        })
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], CborError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A length, no larger than what is left (so nothing huge is allocated).
    fn length(&mut self, major: u8, info: u8) -> Result<usize, CborError> {
        let n = self.argument(major, info)?;
        let left = (self.bytes.len() - self.at) as u64;
        if n > left {
            return Err(CborError::Truncated);
        }
        Ok(n as usize)
    }

    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::TooDeep);
        }
        let head = self.take(1)?[0];
        let (major, info) = (head >> 5, head & 0x1f);
        Ok(match major {
            0 => Value::Int(i128::from(self.argument(major, info)?)),
            1 => Value::Int(-1 - i128::from(self.argument(major, info)?)),
            2 => {
                let n = self.length(major, info)?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            3 => {
                let n = self.length(major, info)?;
                let text = std::str::from_utf8(self.take(n)?).map_err(|_| CborError::NotUtf8)?;
                Value::Text(text.to_owned())
            }
            4 => {
                let n = self.length(major, info)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.item(depth + 1)?);
                }
                Value::Array(items)
            }
            5 => {
                let n = self.length(major, info)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = self.item(depth + 1)?;
                    let value = self.item(depth + 1)?;
                    entries.push((key, value));
                }
                Value::Map(entries)
            }
            7 => match info {
                20 => Value::Bool(false),
                21 => Value::Bool(true),
                22 | 23 => Value::Null,
                _ => return Err(CborError::Unsupported(major, info)),
            },
            _ => return Err(CborError::Unsupported(major, info)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_items_webauthn_uses() {
        // {"fmt": "none", "attStmt": {}, "authData": h'0102'}
        let bytes = [
            0xa3, 0x63, b'f', b'm', b't', 0x64, b'n', b'o', b'n', b'e', 0x67, b'a', b't', b't',
            b'S', b't', b'm', b't', 0xa0, 0x68, b'a', b'u', b't', b'h', b'D', b'a', b't', b'a',
            0x42, 1, 2,
        ];
        let (value, rest) = decode(&bytes).expect("decodes");
        assert!(rest.is_empty());
        assert_eq!(
            value.get(&Value::Text("fmt".into())),
            Some(&Value::Text("none".into()))
        );
        assert_eq!(
            value
                .get(&Value::Text("authData".into()))
                .and_then(Value::as_bytes),
            Some(&[1u8, 2][..])
        );
        // {1: 2, 3: -7, -1: 1} and what follows it.
        let (key, rest) = decode(&[0xa3, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0xff]).expect("key");
        assert_eq!(key.get(&Value::Int(3)), Some(&Value::Int(-7)));
        assert_eq!(key.get(&Value::Int(-1)), Some(&Value::Int(1)));
        assert_eq!(rest, &[0xff]);
    }

    #[test]
    fn refuses_what_it_cannot_read_without_panicking() {
        assert_eq!(decode(&[]), Err(CborError::Truncated));
        assert_eq!(
            decode(&[0x5a, 0xff, 0xff, 0xff, 0xff]),
            Err(CborError::Truncated)
        );
        assert_eq!(
            decode(&[0x9f]),
            Err(CborError::Unsupported(4, 31)),
            "indefinite"
        );
        assert_eq!(decode(&[0x62, 0xff, 0xfe]), Err(CborError::NotUtf8));
        assert_eq!(decode(&[0x81; 64]), Err(CborError::TooDeep));
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = decode(&junk);
        }
    }
}
