//! JSON bodies into the domain types of orders, products and users: 400/422 or values
//! every store can hold; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bulkhead::http::fuzzing::json_bodies(data);
});
