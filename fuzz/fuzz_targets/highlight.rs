//! The highlighter's output always unescapes to its input, and holds no
//! markup but `<span class="hl-…">` (balanced, not nested). The first byte
//! picks the language (every fence name, upper case when its high bit is
//! set), the rest is the code.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tether::fuzzing::highlight::{aliases, unescapes_to_itself};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, code)) = data.split_first() else {
        return;
    };
    let names = aliases();
    let name = names[usize::from(pick & 0x7f) % names.len()];
    let lang = if pick & 0x80 == 0 {
        name.to_owned()
    } else {
        name.to_ascii_uppercase()
    };
    if let Err(failure) = unescapes_to_itself(&lang, &tether_fuzz::text(code)) {
        panic!("{lang}: {failure}");
    }
});
