//! The store's error type, the typed validation error it carries to the API, and the conversion of
//! database errors (with [`Context::context`] saying what the store was doing).

use std::fmt;

use super::db::DbError;
use crate::vault::VaultError;

/// Input that breaks a rule: which field (when one is to blame) and the message, which names the
/// field and the rule. Kept typed from the store to the API's JSON (`error.field`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub field: Option<String>,
    pub message: String,
}

impl Invalid {
    /// A rule broken by `field`; the message reads `field: message`.
    pub fn of(field: impl Into<String>, message: impl fmt::Display) -> Invalid {
        let field = field.into();
        Invalid {
            message: format!("{field}: {message}"),
            field: Some(field),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<crate::connector::ValidationError> for Invalid {
    fn from(e: crate::connector::ValidationError) -> Invalid {
        Invalid {
            field: Some(e.field.clone()),
            message: e.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A workspace or connector that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A name that is already taken.
    #[error("{0}")]
    Conflict(String),
    /// Input that breaks a rule.
    #[error("{0}")]
    Invalid(Invalid),
    /// A store location that cannot be used (bad URL, unreadable file, …).
    #[error("{0}")]
    Config(String),
    /// The store's schema is not one this build can use (written by a newer codestep, or a migration
    /// edited after it was applied).
    #[error("{0}")]
    Schema(String),
    /// A key version whose recorded check value differs from the loaded key.
    #[error("master key version {0} is not the key this store's secrets were encrypted with")]
    KeyMismatch(u32),
    /// A secret failed to decrypt, or could not be sealed.
    #[error("{context}: {source}")]
    Vault {
        context: String,
        #[source]
        source: VaultError,
    },
    /// The database itself failed.
    #[error("{backend} error while {context}: {message}")]
    Backend {
        backend: &'static str,
        context: String,
        message: String,
    },
}

impl StoreError {
    /// A validation error of `field`; the message reads `field: message`.
    pub fn invalid(field: impl Into<String>, message: impl fmt::Display) -> StoreError {
        StoreError::Invalid(Invalid::of(field, message))
    }

    pub(crate) fn backend(
        backend: &'static str,
        context: impl Into<String>,
        err: impl fmt::Display,
    ) -> StoreError {
        StoreError::Backend {
            backend,
            context: context.into(),
            message: err.to_string(),
        }
    }

    pub(crate) fn workspace_not_found(name: &str) -> StoreError {
        StoreError::NotFound(format!("workspace {name:?} not found"))
    }

    pub(crate) fn connector_not_found(workspace: &str, name: &str) -> StoreError {
        StoreError::NotFound(format!(
            "connector {name:?} not found in workspace {workspace:?}"
        ))
    }

    pub(crate) fn connector_conflict(workspace: &str, name: &str) -> StoreError {
        StoreError::Conflict(format!(
            "a connector named {name:?} already exists in workspace {workspace:?} (connector names are unique per workspace, ignoring case)"
        ))
    }

    pub(crate) fn workspace_conflict(name: &str) -> StoreError {
        StoreError::Conflict(format!(
            "a workspace named {name:?} already exists (workspace names are unique, ignoring case)"
        ))
    }
}

impl From<Invalid> for StoreError {
    fn from(e: Invalid) -> StoreError {
        StoreError::Invalid(e)
    }
}

impl From<crate::connector::ValidationError> for StoreError {
    fn from(e: crate::connector::ValidationError) -> StoreError {
        StoreError::Invalid(e.into())
    }
}

impl DbError {
    /// The store error, saying what the store was doing.
    pub fn doing(self, doing: &str) -> StoreError {
        StoreError::Backend {
            backend: self.backend,
            context: doing.to_string(),
            message: self.message,
        }
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> StoreError {
        e.doing("using the store")
    }
}

/// Says what the store was doing when the database failed: `.context("reading a workspace")?`.
pub(crate) trait Context<T> {
    fn context(self, doing: &str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, DbError> {
    fn context(self, doing: &str) -> Result<T, StoreError> {
        self.map_err(|e| e.doing(doing))
    }
}
