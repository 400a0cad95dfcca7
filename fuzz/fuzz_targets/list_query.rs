//! `GET /api/v1/products`' query string: parsed or refused as 400, and what is accepted
//! holds no text or time a store cannot take (the parser panics on that).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        let _ = bulkhead::http::fuzzing::product_list_query(query);
    }
});
