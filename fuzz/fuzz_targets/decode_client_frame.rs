//! The client-frame decoder never panics, and answers every input it cannot
//! read with `bad_request` (`too_large` exactly when over the limit); what it
//! reads encodes and decodes to itself. Checked at the default limit, at the
//! input's own length and one byte under it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tether::fuzzing::decode::{check, MAX};

fuzz_target!(|data: &[u8]| {
    let text = tether_fuzz::text(data);
    for max in [MAX, text.len(), text.len().saturating_sub(1)] {
        if let Err(failure) = check(&text, max) {
            panic!("limit {max}: {failure}");
        }
    }
});
