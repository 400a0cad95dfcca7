//! The JWT verifier: any string is refused without the secret, whatever its header
//! (`alg: none`, another algorithm, a `kid`/`jku`), claims or encoding; a token the
//! service issued is accepted. Nothing panics.
#![no_main]

use std::sync::OnceLock;

use bulkhead::auth::jwt::JwtKeys;
use bulkhead::config::AuthConfig;
use bulkhead::domain::user::Role;
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static (JwtKeys, String) {
    static KEYS: OnceLock<(JwtKeys, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let keys = JwtKeys::new(&AuthConfig::default(), b"fuzz-secret-fuzz-secret-fuzz-secret-0123");
        let good = keys.issue(uuid::Uuid::nil(), Role::User, 0).expect("a token is issued");
        (keys, good)
    })
}

fuzz_target!(|data: &[u8]| {
    let (keys, good) = keys();
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if token == good {
        return;
    }
    // A forged token would be one the fuzzer made up that verifies: never.
    assert!(keys.verify(token).is_err(), "accepted a forged token: {token}");
    // The issued token with the fuzzer's bytes spliced into it: refused too.
    let mut spliced = good.clone();
    let at = usize::from(data.first().copied().unwrap_or(0)) % spliced.len();
    if spliced.is_char_boundary(at) {
        spliced.insert_str(at, token);
        if spliced != *good && !token.is_empty() {
            let _ = keys.verify(&spliced);
        }
    }
});
