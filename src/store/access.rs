//! Who may do what: the scopes a workspace token carries, and the actor an audit entry names.
//!
//! Scopes are stored with the token and checked by the API in one place (`api::scopes`). They are
//! independent: a token has exactly the scopes it was created with, and none implies another.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::StoreError;

/// What a workspace token may do in its workspace.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Run steps with the workspace's connectors, and read its runs.
    Run,
    /// Read connectors (never their secrets), monitoring and the audit trail.
    Read,
    /// Change connectors and tokens.
    Manage,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Run, Scope::Read, Scope::Manage];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Run => "run",
            Scope::Read => "read",
            Scope::Manage => "manage",
        }
    }

    pub fn parse(s: &str) -> Result<Scope, StoreError> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                StoreError::invalid(
                    "scopes",
                    format!("{s:?} is not a scope: use run, read or manage"),
                )
            })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token's scopes: a non-empty set, kept sorted and without repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Every scope: what tokens made before scopes existed could do.
    pub fn all() -> Scopes {
        Scopes(Scope::ALL.to_vec())
    }

    /// A set from a list; empty is refused, repeats are dropped.
    pub fn new(list: impl IntoIterator<Item = Scope>) -> Result<Scopes, StoreError> {
        let mut v: Vec<Scope> = list.into_iter().collect();
        v.sort();
        v.dedup();
        if v.is_empty() {
            return Err(StoreError::invalid(
                "scopes",
                "a token needs at least one scope: run, read or manage",
            ));
        }
        Ok(Scopes(v))
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// The stored form: `run,read`.
    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn from_stored(s: &str) -> Result<Scopes, StoreError> {
        Scopes::new(
            s.split(',')
                .filter(|p| !p.is_empty())
                .map(Scope::parse)
                .collect::<Result<Vec<_>, _>>()?,
        )
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_stored())
    }
}

/// Who made a change, for the audit trail: a label (`token "ci"`, `operator`, `cli:alice`) and, for an
/// API call, the client's address. Never a token or a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub who: Cow<'static, str>,
    pub address: Option<String>,
}

impl Actor {
    /// An actor without an address (the CLI, tests).
    pub const fn named(who: &'static str) -> Actor {
        Actor {
            who: Cow::Borrowed(who),
            address: None,
        }
    }

    pub fn new(who: impl Into<String>, address: Option<String>) -> Actor {
        Actor {
            who: Cow::Owned(who.into()),
            address,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_refuse_unknown_or_empty() {
        let s = Scopes::new([Scope::Manage, Scope::Run, Scope::Run]).unwrap();
        assert_eq!(s.to_stored(), "run,manage");
        assert_eq!(Scopes::from_stored("run,manage").unwrap(), s);
        assert!(Scopes::from_stored("run,admin").is_err());
        assert!(Scopes::from_stored("").is_err());
        assert!(Scopes::new([]).is_err());
        assert_eq!(Scopes::all().to_stored(), "run,read,manage");
    }
}
