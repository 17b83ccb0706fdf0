//! Roles: what a principal may do.
//!
//! - `append`: the Append and AppendStream calls;
//! - `read`: proofs, entries, checkpoints, the checkpoint watch and the
//!   tlog-tiles HTTP API, when reads are not public;
//! - `admin`: token management and future administrative calls.
//!
//! No role implies another.

use crate::AuthError;

/// One role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Append entries.
    Append,
    /// Read the log when reads require authentication.
    Read,
    /// Administer the server.
    Admin,
}

impl Role {
    /// Every role, in display order.
    pub const ALL: [Role; 3] = [Role::Append, Role::Read, Role::Admin];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Append => "append",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Role::Append => 1,
            Role::Read => 2,
            Role::Admin => 4,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = AuthError;

    fn from_str(name: &str) -> Result<Self, AuthError> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or_else(|| AuthError::UnknownRole(crate::printable(name)))
    }
}

/// A set of roles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Roles(u8);

impl Roles {
    /// No role at all.
    pub const NONE: Roles = Roles(0);

    /// Every role (a server without authentication grants them all).
    pub fn all() -> Self {
        Role::ALL.into_iter().collect()
    }

    /// True if the set holds `role`.
    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// The set with `role` added.
    pub fn with(self, role: Role) -> Self {
        Self(self.0 | role.bit())
    }

    /// True if the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The roles in display order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL
            .into_iter()
            .filter(move |role| self.contains(*role))
    }

    /// Parses a comma-separated list (`append,read`); repeats are allowed, an
    /// empty list is not.
    pub fn parse_list(text: &str) -> Result<Self, AuthError> {
        let roles = text
            .split(',')
            .map(str::parse)
            .collect::<Result<Roles, AuthError>>()?;
        if roles.is_empty() {
            return Err(AuthError::UnknownRole(String::new()));
        }
        Ok(roles)
    }
}

impl FromIterator<Role> for Roles {
    fn from_iter<I: IntoIterator<Item = Role>>(roles: I) -> Self {
        roles.into_iter().fold(Roles::NONE, Roles::with)
    }
}

impl std::fmt::Display for Roles {
    /// Comma-separated, in display order (`append,read`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, role) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(role.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_lists_round_trip() {
        let roles = Roles::parse_list("read,append,read").unwrap();
        assert!(roles.contains(Role::Append) && roles.contains(Role::Read));
        assert!(!roles.contains(Role::Admin));
        assert_eq!(roles.to_string(), "append,read");
        assert_eq!(Roles::all().to_string(), "append,read,admin");
        for bad in ["", ",", "append,", "Append", "write"] {
            assert!(Roles::parse_list(bad).is_err(), "{bad:?}");
        }
    }
}
