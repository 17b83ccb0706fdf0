//! Bearer tokens.
//!
//! A token is [`TOKEN_PREFIX`] followed by 32 random bytes in unpadded
//! base64url (47 characters in all). The server never stores a token: the
//! tokens file holds its SHA-256 hash ([`TokenHash`]), and a presented token is
//! hashed and compared with every stored hash in constant time. Neither
//! [`Token`]'s `Debug` nor anything in this crate prints a token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use merklog_merkle::Hash;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::AuthError;

/// The first characters of every token, so a leaked one is easy to recognise
/// (and to scan for).
pub const TOKEN_PREFIX: &str = "mlt_";

/// Random bytes in a token.
pub const TOKEN_RANDOM_BYTES: usize = 32;

/// Longest bearer credential hashed at all; anything longer is refused at once.
const MAX_PRESENTED_LEN: usize = 512;

/// A bearer token (the secret itself). Its memory is wiped on drop; `Debug`
/// prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Zeroizing<String>);

impl Token {
    /// The token made of these random bytes (the caller draws them from the
    /// operating system's generator).
    pub fn from_random(bytes: &[u8; TOKEN_RANDOM_BYTES]) -> Self {
        let mut text = Zeroizing::new(String::with_capacity(48));
        text.push_str(TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes, &mut text);
        Self(text)
    }

    /// The secret text, to print once to the operator who created it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash the tokens file stores.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The SHA-256 hash of a token's text: a [`Hash`](struct@Hash), so equality runs in constant time.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(Hash);

impl TokenHash {
    /// The hash of a presented credential (any text: a wrong one simply
    /// matches no stored hash).
    pub fn of(credential: &str) -> Self {
        Self(Hash::from_bytes(
            Sha256::digest(credential.as_bytes()).into(),
        ))
    }

    /// Constant-time equality, for look-ups that compare every stored hash.
    pub fn ct_eq(&self, other: &TokenHash) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }

    /// The 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.to_string()
    }

    /// Parses 64 hex digits (lowercase, as [`TokenHash::to_hex`] writes them).
    pub fn from_hex(text: &str) -> Result<Self, String> {
        if text.len() != 64 {
            return Err("a token hash is 64 hex digits".to_owned());
        }
        text.parse()
            .map(Self)
            .map_err(|_| "a token hash is lowercase hex digits".to_owned())
    }
}

impl std::fmt::Debug for TokenHash {
    /// The hash is not secret, but a short form is enough to tell tokens apart.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..12])
    }
}

/// The credential of an `authorization` header value `Bearer <credential>`
/// (scheme case-insensitive, one or more spaces). `Err` for any other scheme,
/// an empty or oversized credential, or one with characters outside the
/// token68 syntax of HTTP authentication. The error never quotes the value.
pub fn parse_bearer(value: &[u8]) -> Result<&str, AuthError> {
    let refuse = |reason: &str| AuthError::BadCredential(format!("authorization header {reason}"));
    let text = std::str::from_utf8(value).map_err(|_| refuse("is not UTF-8"))?;
    let (scheme, rest) = text
        .split_once(' ')
        .ok_or_else(|| refuse("is not \"Bearer <token>\""))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(refuse("uses a scheme other than Bearer"));
    }
    let credential = rest.trim_start_matches(' ');
    if credential.is_empty() || credential.len() > MAX_PRESENTED_LEN {
        return Err(refuse("holds an empty or oversized token"));
    }
    let token68 = |c: u8| c.is_ascii_alphanumeric() || b"-._~+/".contains(&c);
    let body = credential.trim_end_matches('=');
    if !body.bytes().all(token68) {
        return Err(refuse("holds characters a token cannot have"));
    }
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_documented_shape() {
        let token = Token::from_random(&[0xab; TOKEN_RANDOM_BYTES]);
        let text = token.expose();
        assert!(text.starts_with(TOKEN_PREFIX));
        assert_eq!(text.len(), 47);
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
        assert_ne!(token.hash(), Token::from_random(&[0xac; 32]).hash());
        assert_eq!(token.hash(), TokenHash::of(text));
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let hash = TokenHash::of("mlt_x");
        assert_eq!(TokenHash::from_hex(&hash.to_hex()).unwrap(), hash);
        assert!(bool::from(hash.ct_eq(&hash)));
        assert!(!bool::from(hash.ct_eq(&TokenHash::of("mlt_y"))));
        for bad in ["", "00", &"g".repeat(64), &"A".repeat(64), &"0".repeat(65)] {
            assert!(TokenHash::from_hex(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(parse_bearer(b"Bearer mlt_abc-_").unwrap(), "mlt_abc-_");
        assert_eq!(parse_bearer(b"bearer   tok==").unwrap(), "tok==");
        for bad in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer",
            b"Bearer ",
            b"Bearermlt_x",
            b"Bearer a b",
            b"Bearer a=b",
            b"Bearer \xff",
        ] {
            let error = parse_bearer(bad).unwrap_err().to_string();
            assert!(!error.contains("mlt_"), "{error}");
        }
        let long = format!("Bearer {}", "a".repeat(MAX_PRESENTED_LEN + 1));
        assert!(parse_bearer(long.as_bytes()).is_err());
    }
}
