//! The server's pure parts that the fuzz targets check, compiled from the
//! server's own source files for a build without `ssr`: the client-frame
//! decoder (`server/ws/decode.rs`) and the upstream chunk reader
//! (`server/llm/stream.rs`, with the event types it reads into,
//! `server/llm/events.rs`). Nothing here is written twice.

// Only the parts the checks reach are used.
#![allow(dead_code)]

#[path = "../server/ws/decode.rs"]
mod decode_frame;

/// The decoder's property ([`decode_frame::properties`]).
pub use self::decode_frame::properties as decode;

// The chunk reader and the event types it reads into; this module stands in
// for its parent there (`server::llm`): `super::events`, `super::LlmError`.
#[path = "../server/llm/events.rs"]
mod events;
#[path = "../server/llm/stream.rs"]
mod stream;

use self::events::{LlmError, LlmEvent};

/// The chunk reader's property ([`stream::properties`]).
pub use self::stream::properties as chunk_reader;
