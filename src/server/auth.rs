//! HS256 tokens: minting ([`mint_token`]) and verifying the token of an `auth` or `refresh`
//! frame (PROTOCOL.md §7: `sub` and `exp` required, `nbf` honoured, no leeway).

use std::time::Duration;

use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::clock::now_ms;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    /// A random id, so two tokens minted for one user in the same second differ (a client
    /// never sends again a token the server said has expired: PROTOCOL.md §7).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    jti: String,
}

/// Mints an HS256 token for `user` (`sub`) that expires after `ttl` (`exp`, required by the server).
pub fn mint_token(secret: &str, user: &str, ttl: Duration) -> String {
    mint_token_expiring_at(secret, user, now_ms() / 1000 + ttl.as_secs().max(1))
}

/// Mints an HS256 token for `user` whose `exp` is `exp_s` (Unix seconds; the past is allowed,
/// for `/dev/token?expired=1`).
pub(crate) fn mint_token_expiring_at(secret: &str, user: &str, exp_s: u64) -> String {
    let claims = Claims {
        sub: user.to_owned(),
        exp: exp_s,
        jti: format!("{:016x}", rand::random::<u64>()),
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
    /// A `refresh` token names another user than the socket's.
    UserMismatch,
}

/// A verified token: who it names and when it stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verified {
    pub(crate) user: String,
    /// `exp`, in milliseconds since the UNIX epoch.
    pub(crate) expires_at_ms: u64,
}

impl Verified {
    /// The token's remaining life from `now_ms` (0 once it has expired).
    pub(crate) fn expires_in_ms(&self, now_ms: u64) -> u64 {
        self.expires_at_ms.saturating_sub(now_ms)
    }
}

impl AuthFailure {
    pub(crate) fn code(self) -> &'static str {
        match self {
            AuthFailure::InvalidToken => "invalid_token",
            AuthFailure::Expired => "expired",
            AuthFailure::UserMismatch => "user_mismatch",
        }
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            AuthFailure::InvalidToken => "the token is not valid",
            AuthFailure::Expired => "the token has expired",
            AuthFailure::UserMismatch => "the token names another user",
        }
    }
}

/// Verifies an HS256 token: a valid signature, a non-empty `sub`, `exp` not passed and `nbf`
/// (when present) reached, with no leeway. A token not yet valid is `invalid_token`.
pub(crate) fn verify(secret: &str, token: &str) -> Result<Verified, AuthFailure> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub"]);
    match jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    ) {
        Ok(data) if !data.claims.sub.is_empty() => Ok(Verified {
            user: data.claims.sub,
            expires_at_ms: data.claims.exp.saturating_mul(1000),
        }),
        Ok(_) => Err(AuthFailure::InvalidToken),
        Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(AuthFailure::Expired),
        Err(_) => Err(AuthFailure::InvalidToken),
    }
}

/// Verifies a `refresh` token for a socket of `user`.
pub(crate) fn verify_refresh(
    secret: &str,
    token: &str,
    user: &str,
) -> Result<Verified, AuthFailure> {
    let verified = verify(secret, token)?;
    if verified.user == user {
        Ok(verified)
    } else {
        Err(AuthFailure::UserMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_with_the_same_secret_only() {
        let token = mint_token("s", "u1", Duration::from_secs(60));
        let verified = verify("s", &token).unwrap();
        assert_eq!(verified.user, "u1");
        let left = verified.expires_in_ms(now_ms());
        assert!((59_000..=61_000).contains(&left), "{left}");
        assert_eq!(
            verify_refresh("s", &token, "u2"),
            Err(AuthFailure::UserMismatch)
        );
        assert_eq!(verify_refresh("s", &token, "u1"), Ok(verified));
        assert_eq!(verify("other", &token), Err(AuthFailure::InvalidToken));
        assert_eq!(verify("s", "garbage"), Err(AuthFailure::InvalidToken));
    }

    #[test]
    fn two_tokens_minted_in_one_second_differ() {
        let a = mint_token("s", "u1", Duration::from_secs(60));
        let b = mint_token("s", "u1", Duration::from_secs(60));
        assert_ne!(a, b);
        assert!(verify("s", &b).is_ok());
    }

    #[test]
    fn expired_and_exp_less_tokens_are_refused() {
        let key = EncodingKey::from_secret(b"s");
        let old = Claims {
            sub: "u1".into(),
            exp: now_ms() / 1000 - 10,
            jti: String::new(),
        };
        let token = jsonwebtoken::encode(&Header::default(), &old, &key).unwrap();
        assert_eq!(verify("s", &token), Err(AuthFailure::Expired));
        let no_exp =
            jsonwebtoken::encode(&Header::default(), &serde_json::json!({"sub": "u1"}), &key)
                .unwrap();
        assert_eq!(verify("s", &no_exp), Err(AuthFailure::InvalidToken));
    }

    #[test]
    fn a_token_not_yet_valid_is_invalid_until_its_nbf() {
        let key = EncodingKey::from_secret(b"s");
        let now = now_ms() / 1000;
        let claims = |nbf: u64| serde_json::json!({"sub": "u1", "exp": now + 600, "nbf": nbf});
        let later = jsonwebtoken::encode(&Header::default(), &claims(now + 300), &key).unwrap();
        assert_eq!(verify("s", &later), Err(AuthFailure::InvalidToken));
        let reached = jsonwebtoken::encode(&Header::default(), &claims(now - 1), &key).unwrap();
        assert_eq!(verify("s", &reached).map(|v| v.user), Ok("u1".to_owned()));
    }
}
