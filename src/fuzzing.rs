//! The property checks behind the proptests, for the cargo-fuzz targets in
//! `fuzz/` (feature `fuzzing`, never in the product build).
//!
//! Each check lives in a `properties` module beside the function it checks
//! and is shared by both: the proptests generate structured cases, the fuzz
//! targets hand over libFuzzer's bytes. A check returns `Err` with what went
//! wrong; a panic inside the checked function is a failure too.
//!
//! Without `ssr` (the fuzz build) the client-frame decoder and the upstream
//! chunk reader come from `server_parts`, the same source files.

pub use crate::client::highlight::properties as highlight;
pub use crate::client::markdown::properties as markdown;
pub use crate::event_stream::properties as event_stream;
#[cfg(feature = "ssr")]
pub use crate::server::llm::chunk_reader_properties as chunk_reader;
#[cfg(feature = "ssr")]
pub use crate::server::ws::decode::properties as decode;

// The fuzz targets build without `ssr` (fuzz/Cargo.toml): the whole server
// half compiled in release with coverage instrumentation was most of the
// fuzz step. The two server parts they check are pure and compiled here
// from the server's own files.
#[cfg(not(feature = "ssr"))]
pub use self::server_parts::{chunk_reader, decode};

#[cfg(not(feature = "ssr"))]
#[path = "fuzzing/server_parts.rs"]
mod server_parts;
