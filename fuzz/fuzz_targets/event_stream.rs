//! The SSE splitter yields the same events for every split of any byte
//! stream: read whole, cut at up to 16 offsets, and byte by byte.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tether::fuzzing::event_stream::same_events_at_any_split;

fuzz_target!(|data: &[u8]| {
    let (cuts, stream) = tether_fuzz::cuts_and_stream(data, 16);
    if let Err(failure) = same_events_at_any_split(stream, &cuts) {
        panic!("{failure}");
    }
});
