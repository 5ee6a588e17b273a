//! HS256 tokens: minting ([`mint_token`]) and verifying the `auth` frame's token.

use std::time::Duration;

use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::clock::now_ms;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

/// Mints an HS256 token for `user` (`sub`) that expires after `ttl` (`exp`, required by the server).
pub fn mint_token(secret: &str, user: &str, ttl: Duration) -> String {
    let claims = Claims {
        sub: user.to_owned(),
        exp: now_ms() / 1000 + ttl.as_secs().max(1),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing of two plain claims cannot fail")
}

/// Why a token was refused; `code()` is the `auth_error` code on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// Bad signature, bad shape, missing `sub` or `exp`, wrong algorithm.
    InvalidToken,
    /// `exp` is in the past.
    Expired,
}

impl AuthFailure {
    pub(crate) fn code(self) -> &'static str {
        match self {
            AuthFailure::InvalidToken => "invalid_token",
            AuthFailure::Expired => "expired",
        }
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            AuthFailure::InvalidToken => "the token is not valid",
            AuthFailure::Expired => "the token has expired",
        }
    }
}

/// Verifies an HS256 token (no leeway on `exp`) and returns its non-empty `sub`.
pub(crate) fn verify(secret: &str, token: &str) -> Result<String, AuthFailure> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    // PROTOCOL.md §7: a token not yet valid (`nbf` in the future) is `invalid_token`.
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub"]);
    match jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    ) {
        Ok(data) if !data.claims.sub.is_empty() => Ok(data.claims.sub),
        Ok(_) => Err(AuthFailure::InvalidToken),
        Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(AuthFailure::Expired),
        Err(_) => Err(AuthFailure::InvalidToken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_with_the_same_secret_only() {
        let token = mint_token("s", "u1", Duration::from_secs(60));
        assert_eq!(verify("s", &token), Ok("u1".to_owned()));
        assert_eq!(verify("other", &token), Err(AuthFailure::InvalidToken));
        assert_eq!(verify("s", "garbage"), Err(AuthFailure::InvalidToken));
    }

    #[test]
    fn expired_and_exp_less_tokens_are_refused() {
        let key = EncodingKey::from_secret(b"s");
        let old = Claims {
            sub: "u1".into(),
            exp: now_ms() / 1000 - 10,
        };
        let token = jsonwebtoken::encode(&Header::default(), &old, &key).unwrap();
        assert_eq!(verify("s", &token), Err(AuthFailure::Expired));
        let no_exp =
            jsonwebtoken::encode(&Header::default(), &serde_json::json!({"sub": "u1"}), &key)
                .unwrap();
        assert_eq!(verify("s", &no_exp), Err(AuthFailure::InvalidToken));
    }
}
