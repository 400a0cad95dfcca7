//! HS256 access tokens. Only the configured algorithm is accepted; `iss`, `aud` and `exp`
//! are required and checked with `auth.leeway_secs` of leeway.
//!
//! Besides the registered claims a token carries `epoch`, the user's token epoch when it
//! was issued (a counter bumped by every change of password, email or role). The
//! authentication middleware refuses a token whose epoch is below the user's; a token
//! without the claim counts as epoch 0.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::AuthConfig;
use crate::domain::user::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: Uuid,
    /// The user's token epoch at issue (private claim; absent counts as 0).
    #[serde(default)]
    pub epoch: i32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
}

/// Signing and verification keys with the validation rules, built once at start.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    header: Header,
    issuer: String,
    audience: String,
    ttl_secs: u64,
}

impl JwtKeys {
    pub fn new(cfg: &AuthConfig, secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[cfg.issuer.as_str()]);
        validation.set_audience(&[cfg.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = cfg.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            header: Header::new(Algorithm::HS256),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            ttl_secs: cfg.access_ttl_secs,
        }
    }

    /// Lifetime of issued tokens (`expires_in`).
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    pub fn issue(
        &self,
        user: Uuid,
        role: Role,
        epoch: i32,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = unix_now();
        let claims = Claims {
            sub: user,
            role: role.as_str().to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.ttl_secs,
            jti: Uuid::new_v4(),
            epoch,
        };
        encode(&self.header, &claims, &self.encoding)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn keys() -> JwtKeys {
        JwtKeys::new(&AuthConfig::default(), b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn issued_tokens_verify() {
        let k = keys();
        let id = Uuid::new_v4();
        let token = k.issue(id, Role::Admin, 3).unwrap();
        let claims = k.verify(&token).unwrap();
        assert_eq!(claims.epoch, 3);
        assert_eq!(claims.sub, id);
        assert_eq!(claims.role, "admin");
        assert_eq!(claims.iss, "bulkhead");
        assert_eq!(claims.aud, "bulkhead-api");
        assert_eq!(claims.exp - claims.iat, 900);
    }

    fn forge(header: &str, claims: serde_json::Value, secret: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let h = b64.encode(header);
        let c = b64.encode(claims.to_string());
        let signing = format!("{h}.{c}");
        let sig = {
            use hmac::{Hmac, Mac};
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
            mac.update(signing.as_bytes());
            mac.finalize().into_bytes()
        };
        format!("{signing}.{}", b64.encode(sig))
    }

    #[test]
    fn wrong_algorithm_issuer_audience_expiry_and_signature_are_refused() {
        let k = keys();
        let secret = b"0123456789abcdef0123456789abcdef";
        let now = unix_now();
        let good = serde_json::json!({"sub": Uuid::new_v4(), "role": "user", "iss": "bulkhead",
            "aud": "bulkhead-api", "iat": now, "exp": now + 60, "jti": Uuid::new_v4()});
        // The forger itself is right: a well-formed HS256 token passes, and one without
        // the `epoch` claim counts as epoch 0.
        let claims = k
            .verify(&forge(
                r#"{"alg":"HS256","typ":"JWT"}"#,
                good.clone(),
                secret,
            ))
            .unwrap();
        assert_eq!(claims.epoch, 0);
        // alg=none and other algorithms are refused.
        let none = forge(r#"{"alg":"none","typ":"JWT"}"#, good.clone(), secret);
        assert_eq!(k.verify(&none).unwrap_err(), TokenError::Invalid);
        let hs512 = forge(r#"{"alg":"HS512","typ":"JWT"}"#, good.clone(), secret);
        assert_eq!(k.verify(&hs512).unwrap_err(), TokenError::Invalid);
        // A different secret.
        let other = forge(
            r#"{"alg":"HS256"}"#,
            good.clone(),
            b"another-secret-another-secret-xx",
        );
        assert_eq!(k.verify(&other).unwrap_err(), TokenError::Invalid);
        // Wrong iss, wrong aud, missing exp, expired beyond leeway.
        for (key, value) in [
            ("iss", serde_json::json!("evil")),
            ("aud", serde_json::json!("other")),
        ] {
            let mut c = good.clone();
            c[key] = value;
            assert_eq!(
                k.verify(&forge(r#"{"alg":"HS256"}"#, c, secret))
                    .unwrap_err(),
                TokenError::Invalid
            );
        }
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            k.verify(&forge(r#"{"alg":"HS256"}"#, c, secret))
                .unwrap_err(),
            TokenError::Invalid
        );
        let mut c = good.clone();
        c["exp"] = serde_json::json!(now - 120);
        assert_eq!(
            k.verify(&forge(r#"{"alg":"HS256"}"#, c, secret))
                .unwrap_err(),
            TokenError::Expired
        );
        // Within leeway (30 s) an expired token still passes.
        let mut c = good;
        c["exp"] = serde_json::json!(now - 10);
        assert!(k.verify(&forge(r#"{"alg":"HS256"}"#, c, secret)).is_ok());
    }
}
