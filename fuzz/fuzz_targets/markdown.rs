//! The markdown renderer never emits executable HTML for any input: its
//! output, tokenised as a browser would (html5gum), holds only the tags and
//! attributes it writes on purpose, no `script`/`iframe`/`object`, no `on*`
//! attribute, no URL but `http(s)`/`mailto` (so no `javascript:`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tether::fuzzing::markdown::renders_inert;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = renders_inert(&tether_fuzz::text(data)) {
        panic!("{failure}");
    }
});
