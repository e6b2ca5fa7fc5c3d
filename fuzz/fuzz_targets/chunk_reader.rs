//! The upstream chunk reader never panics on arbitrary bytes, reads them the
//! same cut at up to 16 offsets, ends at its first error, and never yields
//! empty text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tether::fuzzing::chunk_reader::reads_the_same_at_any_split;

fuzz_target!(|data: &[u8]| {
    let (cuts, body) = tether_fuzz::cuts_and_stream(data, 16);
    if let Err(failure) = reads_the_same_at_any_split(body, &cuts) {
        panic!("{failure}");
    }
});
