//! The tokens file: which bearer tokens the server accepts.
//!
//! One token per line, four fields separated by spaces or tabs:
//!
//! ```text
//! # <sha256 of the token, hex> <principal> <roles> <expiry>
//! 3f1c…(64 hex digits)…9a0e ci-writer append 2026-03-01T12:00:00Z
//! 77ab…(64 hex digits)…01cd auditor read,append never
//! ```
//!
//! - the SHA-256 of the token's full text (`mlt_…`), 64 lowercase hex digits:
//!   the file never holds a token itself;
//! - the principal (see [`crate::principal`] for the naming rules);
//! - its roles, comma-separated (`append`, `read`, `admin`);
//! - when it expires, RFC 3339 in UTC to the second, or `never`. A token is
//!   valid strictly before that instant.
//!
//! Blank lines and lines whose first non-blank character is `#` are ignored.
//! Deleting a token's line revokes it. A file with any malformed line, or with
//! the same hash twice, is refused whole (naming the line, never quoting a
//! hash), so a half-edited file cannot silently drop or grant access.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use subtle::ConditionallySelectable as _;

use crate::{AuthError, Principal, Roles, TokenHash};

/// The comment block `merklogd token create` writes at the top of a new file.
pub const FILE_HEADER: &str = "\
# merklog tokens file: one token per line, fields separated by spaces:
#   <SHA-256 of the token, hex> <principal> <roles, comma-separated> <expiry: RFC 3339 UTC or never>
# Delete a line to revoke its token. The server reloads this file when it changes.
";

/// When a token stops being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Valid until revoked.
    Never,
    /// Valid strictly before this many seconds after the Unix epoch.
    At(u64),
}

impl Expiry {
    /// The expiry `valid_for` after `now`, to the second (rounded up).
    pub fn after(now: SystemTime, valid_for: Duration) -> Self {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let end = now.saturating_add(valid_for);
        let seconds = end.as_secs() + u64::from(end.subsec_nanos() > 0);
        Expiry::At(seconds)
    }

    /// True once `now` has reached the expiry.
    pub fn has_passed(self, now: SystemTime) -> bool {
        match self {
            Expiry::Never => false,
            Expiry::At(seconds) => now
                .duration_since(UNIX_EPOCH)
                .is_ok_and(|now| now.as_secs() >= seconds),
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        if text == "never" {
            return Ok(Expiry::Never);
        }
        let time = humantime::parse_rfc3339(text)
            .map_err(|e| format!("expiry is not RFC 3339 UTC or `never`: {e}"))?;
        let since = time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "expiry is before 1970".to_owned())?;
        if since.subsec_nanos() != 0 {
            return Err("expiry has fractions of a second".to_owned());
        }
        Ok(Expiry::At(since.as_secs()))
    }
}

impl std::fmt::Display for Expiry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Expiry::Never => f.write_str("never"),
            Expiry::At(seconds) => {
                let time = UNIX_EPOCH.checked_add(Duration::from_secs(seconds));
                match time {
                    Some(time) => humantime::format_rfc3339_seconds(time).fmt(f),
                    None => f.write_str("never"),
                }
            }
        }
    }
}

/// One line of the tokens file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's hash.
    pub hash: TokenHash,
    /// Who the token speaks for.
    pub principal: Principal,
    /// What it may do.
    pub roles: Roles,
    /// When it stops being valid.
    pub expires: Expiry,
}

impl TokenRecord {
    /// The record as a line of the file (with its newline).
    pub fn to_line(&self) -> String {
        format!(
            "{} {} {} {}\n",
            self.hash.to_hex(),
            self.principal,
            self.roles,
            self.expires
        )
    }

    /// A short, non-secret identifier: the first 12 hex digits of the hash.
    pub fn id(&self) -> String {
        self.hash.to_hex()[..12].to_owned()
    }

    fn parse(line: &str) -> Result<Self, String> {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let [hash, principal, roles, expires] = fields[..] else {
            return Err(format!(
                "expected 4 fields (hash, principal, roles, expiry), found {}",
                fields.len()
            ));
        };
        Ok(Self {
            hash: TokenHash::from_hex(hash)?,
            principal: Principal::new(principal).map_err(|e| e.to_string())?,
            roles: Roles::parse_list(roles).map_err(|e| e.to_string())?,
            expires: Expiry::parse(expires)?,
        })
    }
}

/// The parsed tokens file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokensFile {
    records: Vec<TokenRecord>,
}

impl TokensFile {
    /// Parses the whole file (see the module documentation); any bad line
    /// refuses it.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let mut records: Vec<TokenRecord> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let trimmed = line.trim_matches([' ', '\t', '\r']);
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let bad = |reason: String| AuthError::BadTokensLine {
                line: number + 1,
                reason,
            };
            let record = TokenRecord::parse(trimmed).map_err(bad)?;
            if records.iter().any(|r| r.hash == record.hash) {
                return Err(bad("the same token hash is on an earlier line".into()));
            }
            records.push(record);
        }
        Ok(Self { records })
    }

    /// The records, in file order.
    pub fn records(&self) -> &[TokenRecord] {
        &self.records
    }

    /// The record whose hash is `hash`. Every stored hash is compared, in
    /// constant time, whether or not one matches.
    pub fn find(&self, hash: &TokenHash) -> Option<&TokenRecord> {
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, record) in (0u64..).zip(&self.records) {
            let equal = record.hash.ct_eq(hash);
            index.conditional_assign(&i, equal);
            found |= equal;
        }
        if bool::from(found) {
            self.records.get(usize::try_from(index).ok()?)
        } else {
            None
        }
    }

    /// The file with every comment and blank line dropped, one line per record.
    pub fn to_text(&self) -> String {
        self.records.iter().map(TokenRecord::to_line).collect()
    }

    /// True if the file holds no token.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether the identifier `id` (a prefix of at least 8 hex digits of a
    /// hash) names exactly one record; returns that record's full hash.
    pub fn resolve_id(&self, id: &str) -> Result<TokenHash, String> {
        if id.len() < 8 {
            return Err("a token id is at least 8 hex digits (see `token list`)".into());
        }
        let mut matches = self
            .records
            .iter()
            .filter(|r| r.hash.to_hex().starts_with(id));
        match (matches.next(), matches.next()) {
            (Some(record), None) => Ok(record.hash),
            (None, _) => Err(format!("no token has the id {id}")),
            (Some(_), Some(_)) => Err(format!("more than one token has the id {id}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Role, Token};

    fn record(seed: u8, principal: &str, roles: &str, expires: Expiry) -> TokenRecord {
        TokenRecord {
            hash: Token::from_random(&[seed; 32]).hash(),
            principal: Principal::new(principal).unwrap(),
            roles: Roles::parse_list(roles).unwrap(),
            expires,
        }
    }

    #[test]
    fn files_round_trip_and_lookups_find_the_right_line() {
        let a = record(1, "ci", "append", Expiry::At(1_900_000_000));
        let b = record(2, "spiffe://x.example/auditor", "read,admin", Expiry::Never);
        let text = format!(
            "{FILE_HEADER}\n  {}\t# not a comment here\n",
            a.to_line().trim_end()
        );
        assert!(
            TokensFile::parse(&text).is_err(),
            "trailing text is a 5th field"
        );
        let text = format!(
            "{FILE_HEADER}\n{}   \n\t# revoked later\n{}",
            a.to_line(),
            b.to_line()
        );
        let file = TokensFile::parse(&text).unwrap();
        assert_eq!(file.records(), [a.clone(), b.clone()]);
        assert_eq!(TokensFile::parse(&file.to_text()).unwrap(), file);
        assert_eq!(file.find(&b.hash), Some(&b));
        assert_eq!(
            file.find(&a.hash).map(|r| r.roles.contains(Role::Append)),
            Some(true)
        );
        assert_eq!(file.find(&TokenHash::of("mlt_unknown")), None);
        assert_eq!(file.resolve_id(&a.id()), Ok(a.hash));
        assert!(file.resolve_id("0").is_err());
        assert_eq!(
            a.to_line().split(' ').nth(3),
            Some("2030-03-17T17:46:40Z\n")
        );
    }

    #[test]
    fn bad_files_are_refused_naming_the_line() {
        let good = record(1, "ci", "append", Expiry::Never).to_line();
        let hash = Token::from_random(&[9; 32]).hash().to_hex();
        for (line, text) in [
            (2, format!("{good}{hash} ci append")),
            (2, format!("{good}{hash} ci write never")),
            (2, format!("{good}{hash} anonymous append never")),
            (2, format!("{good}{hash} ci append 2026-01-01")),
            (2, format!("{good}{hash} ci append 2026-01-01T00:00:00.5Z")),
            (1, format!("{} ci append never", &hash[..63])),
            (1, format!("{} ci append never", hash.to_uppercase())),
            (2, format!("{good}{good}")),
        ] {
            match TokensFile::parse(&text) {
                Err(AuthError::BadTokensLine { line: got, reason }) => {
                    assert_eq!(got, line, "{text}: {reason}");
                    assert!(!reason.contains(&hash), "{reason}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn expiry_is_exclusive_and_rounds_up() {
        let at = UNIX_EPOCH + Duration::from_secs(100);
        assert!(!Expiry::At(100).has_passed(at - Duration::from_millis(1)));
        assert!(Expiry::At(100).has_passed(at));
        assert!(!Expiry::Never.has_passed(at));
        assert_eq!(
            Expiry::after(at, Duration::from_millis(1500)),
            Expiry::At(102)
        );
    }
}
