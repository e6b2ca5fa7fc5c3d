//! The property checks behind the proptests, for the cargo-fuzz targets in
//! `fuzz/` (feature `fuzzing`, never in the product build).
//!
//! Each check lives in a `properties` module beside the function it checks
//! and is shared by both: the proptests generate structured cases, the fuzz
//! targets hand over libFuzzer's bytes. A check returns `Err` with what went
//! wrong; a panic inside the checked function is a failure too.

pub use crate::client::highlight::properties as highlight;
pub use crate::client::markdown::properties as markdown;
pub use crate::event_stream::properties as event_stream;
#[cfg(feature = "ssr")]
pub use crate::server::llm::chunk_reader_properties as chunk_reader;
#[cfg(feature = "ssr")]
pub use crate::server::ws::decode::properties as decode;
