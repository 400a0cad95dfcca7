//! `?cursor=` and `?limit=`: any string decodes to a cursor of the asked sort or is
//! refused as 400; a decoded cursor encodes back to itself; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SORTS: [&str; 6] = ["-created_at", "created_at", "name", "-name", "price_cents", "-price_cents"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = bulkhead::http::fuzzing::cursor(raw, SORTS[usize::from(pick) % SORTS.len()]);
});
