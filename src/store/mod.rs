//! Durable storage: workspaces, connectors (with their sealed secrets) and the audit trail of connector
//! changes, behind one async trait with two implementations: SQLite (the embedded default, one file)
//! and PostgreSQL (several nodes sharing one store).
//!
//! The store never sees a plaintext secret: [`ops`] validates, seals with the [`Vault`](crate::vault::Vault)
//! and hands the store a [`Sealed`] value.

pub mod migrate;
pub mod ops;
mod postgres;
mod sqlite;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::connector::Placement;
use crate::vault::{Sealed, VaultError};

pub use ops::{
    create_api_token, create_connector, decrypt_secret, hash_api_token, load_step_connectors,
    rotate_keys, update_connector, validate_workspace_name, ConnectorUpdate, RotationReport,
};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Environment variable naming the store (a path or a `postgres://` URL).
pub const DB_ENV: &str = "CODESTEP_DB";

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// A workspace: the unit that owns connectors (and, later, API tokens).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
}

/// A stored connector. The secret is only present sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorRecord {
    pub id: String,
    pub workspace_id: String,
    pub workspace_name: String,
    pub name: String,
    /// Normalised pattern strings, as validated when saved.
    pub patterns: Vec<String>,
    pub placement: Placement,
    pub scrub_echo: bool,
    pub sealed: Sealed,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A connector row to insert. Built by [`ops::create_connector`].
#[derive(Clone, Debug)]
pub struct NewConnectorRow {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub patterns: Vec<String>,
    pub placement: Placement,
    pub scrub_echo: bool,
    pub sealed: Sealed,
}

/// Fields to change on a connector; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ConnectorChanges {
    pub patterns: Option<Vec<String>>,
    pub placement: Option<Placement>,
    pub scrub_echo: Option<bool>,
    pub sealed: Option<Sealed>,
}

impl ConnectorChanges {
    /// The names of the fields this change touches, for the audit trail (never values).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.patterns.is_some() {
            parts.push("patterns");
        }
        if self.placement.is_some() {
            parts.push("placement");
        }
        if self.scrub_echo.is_some() {
            parts.push("scrub_echo");
        }
        if self.sealed.is_some() {
            parts.push("secret");
        }
        if parts.is_empty() {
            "nothing changed".into()
        } else {
            format!("changed: {}", parts.join(", "))
        }
    }
}

/// One sealed secret with where it belongs, as handed to a re-encryption callback.
#[derive(Clone, Debug)]
pub struct SecretRow {
    pub workspace_id: String,
    pub workspace_name: String,
    pub connector_id: String,
    pub connector_name: String,
    pub sealed: Sealed,
}

/// One entry of the audit trail. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Millis,
    /// Who: `cli:USER`, `token:ID`, …
    pub actor: String,
    /// What: `workspace.create`, `connector.update`, `key.rotate`, …
    pub action: String,
    pub workspace: String,
    pub connector: Option<String>,
    pub detail: String,
}

/// A workspace API token. The token itself is never stored: only its SHA-256 ([`ops::hash_api_token`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub workspace_id: String,
    pub workspace_name: String,
    pub name: String,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

/// One `fetch()` a step made, as kept for the operator. Host and path only, never the query.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchAttempt {
    pub at: Millis,
    pub run_id: Option<String>,
    pub connector: Option<String>,
    pub method: String,
    pub host: String,
    pub path: String,
    pub status: Option<u16>,
    /// `FetchError::kind` when the fetch failed.
    pub error: Option<String>,
    pub blocked: bool,
    pub redirects: u32,
    pub duration_ms: f64,
}

impl FetchAttempt {
    /// From the egress path's record of one fetch, stamped now.
    pub fn from_record(record: &crate::egress::FetchRecord, run_id: Option<&str>) -> FetchAttempt {
        FetchAttempt {
            at: now_millis(),
            run_id: run_id.map(str::to_string),
            connector: record.connector.clone(),
            method: record.method.clone(),
            host: record.host.clone(),
            path: record.path.clone(),
            status: record.status,
            error: record.error.clone(),
            blocked: record.blocked,
            redirects: record.redirects,
            duration_ms: record.duration_ms,
        }
    }
}

/// Re-encrypts one secret; used by [`Store::reencrypt_secrets`].
pub type Rekey = Arc<dyn Fn(&SecretRow) -> Result<Sealed, StoreError> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A workspace or connector that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A name that is already taken.
    #[error("{0}")]
    Conflict(String),
    /// Input that breaks a rule; the message names the field and the rule.
    #[error("{0}")]
    Invalid(String),
    /// A store location that cannot be used (bad URL, unreadable file, …).
    #[error("{0}")]
    Config(String),
    /// The store's schema is not one this build can use (for instance written by a newer codestep).
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

/// The storage interface. Both implementations pass the same test suite (`tests/it/store.rs`).
///
/// Names are matched case-insensitively. Every change to a workspace or connector writes an audit
/// entry in the same transaction.
#[async_trait]
pub trait Store: Send + Sync {
    /// Where this store lives, for messages (never includes a password).
    fn describe(&self) -> String;

    /// The schema version the store is at.
    async fn schema_version(&self) -> Result<u32, StoreError>;

    async fn create_workspace(&self, name: &str, actor: &str) -> Result<Workspace, StoreError>;
    async fn list_workspaces(&self) -> Result<Vec<Workspace>, StoreError>;
    async fn workspace(&self, name: &str) -> Result<Workspace, StoreError>;
    /// Deletes a workspace and all its connectors; returns how many connectors went with it.
    async fn delete_workspace(&self, name: &str, actor: &str) -> Result<u64, StoreError>;

    /// Inserts a connector. A name already used in the workspace (ignoring case) is a `Conflict`.
    async fn insert_connector(
        &self,
        row: NewConnectorRow,
        actor: &str,
    ) -> Result<ConnectorRecord, StoreError>;
    /// The workspace's connectors, by name.
    async fn list_connectors(&self, workspace: &str) -> Result<Vec<ConnectorRecord>, StoreError>;
    async fn connector(&self, workspace: &str, name: &str) -> Result<ConnectorRecord, StoreError>;
    /// Applies `changes` to the connector with this id (in this workspace) and bumps `updated_at`.
    async fn update_connector(
        &self,
        workspace_id: &str,
        connector_id: &str,
        changes: ConnectorChanges,
        actor: &str,
    ) -> Result<ConnectorRecord, StoreError>;
    async fn delete_connector(
        &self,
        workspace: &str,
        name: &str,
        actor: &str,
    ) -> Result<(), StoreError>;

    /// The newest audit entries first, optionally only one workspace's.
    async fn audit_log(
        &self,
        workspace: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// The recorded check value of a master key version, if any secret was ever sealed with it here.
    async fn key_check(&self, version: u32) -> Result<Option<Vec<u8>>, StoreError>;
    /// Records the check value of a key version; `KeyMismatch` if a different one is recorded.
    async fn record_key_check(&self, version: u32, check: &[u8]) -> Result<(), StoreError>;

    /// Re-encrypts every stored secret with `rekey`, in one transaction: if any call fails, nothing
    /// changes. Writes one `key.rotate` audit entry. Returns how many secrets were re-encrypted.
    async fn reencrypt_secrets(
        &self,
        rekey: Rekey,
        to_version: u32,
        actor: &str,
    ) -> Result<u64, StoreError>;

    /// Stores a new API token of `workspace` by its hash. Writes a `token.create` audit entry.
    async fn create_api_token(
        &self,
        workspace: &str,
        name: &str,
        token_hash: &[u8],
        actor: &str,
    ) -> Result<ApiToken, StoreError>;
    /// The workspace's tokens (revoked ones included), oldest first.
    async fn list_api_tokens(&self, workspace: &str) -> Result<Vec<ApiToken>, StoreError>;
    /// The live (not revoked) token with this hash, if any; records its use.
    async fn authenticate_api_token(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<ApiToken>, StoreError>;
    /// Revokes a token of `workspace` by id. Writes a `token.revoke` audit entry.
    async fn revoke_api_token(
        &self,
        workspace: &str,
        token_id: &str,
        actor: &str,
    ) -> Result<(), StoreError>;

    /// Appends fetch records (of one run, typically) in one transaction.
    async fn record_fetch_attempts(
        &self,
        workspace_id: Option<&str>,
        attempts: &[FetchAttempt],
    ) -> Result<(), StoreError>;
    /// The workspace's newest fetch records first.
    async fn fetch_attempts(
        &self,
        workspace: &str,
        limit: u32,
    ) -> Result<Vec<FetchAttempt>, StoreError>;
}

/// Opens the store at `location`: a `postgres://` / `postgresql://` URL, or a SQLite file path
/// (created with its directory if missing). Applies pending migrations; fails with a clear message if the
/// store was written by a newer schema version.
pub async fn open(location: &str) -> Result<Arc<dyn Store>, StoreError> {
    if is_postgres_url(location) {
        Ok(Arc::new(PostgresStore::open(location).await?))
    } else {
        let path = location.strip_prefix("sqlite://").unwrap_or(location);
        if path.is_empty() {
            return Err(StoreError::Config("the store location is empty".into()));
        }
        Ok(Arc::new(SqliteStore::open(Path::new(path)).await?))
    }
}

pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// The data directory: `$XDG_DATA_HOME/codestep`, else `~/.local/share/codestep`, else `./.codestep`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        let p = PathBuf::from(x);
        if p.is_absolute() {
            return p.join("codestep");
        }
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/codestep"),
        None => PathBuf::from(".codestep"),
    }
}

/// The default SQLite file.
pub fn default_db_path() -> PathBuf {
    default_data_dir().join("codestep.db")
}

/// The default key file, beside the default store.
pub fn default_key_file() -> PathBuf {
    default_data_dir().join("master.key")
}

/// The store location to use: `--db`, else `CODESTEP_DB`, else the default file.
pub fn resolve_location(db: Option<&str>) -> String {
    if let Some(db) = db.filter(|d| !d.is_empty()) {
        return db.to_string();
    }
    if let Some(env) = std::env::var_os(DB_ENV).filter(|e| !e.is_empty()) {
        return env.to_string_lossy().into_owned();
    }
    default_db_path().to_string_lossy().into_owned()
}

pub(crate) fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new random id: 128 bits as 32 lowercase hex digits.
pub fn new_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::backend("os", "making an id", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The case-insensitive key names are unique by.
pub(crate) fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Formats milliseconds since the epoch as RFC 3339 UTC, to the second (`2024-05-01T12:00:00Z`).
pub fn format_time(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

pub(crate) fn placement_to_json(p: &Placement) -> String {
    serde_json::to_string(p).expect("a placement always serialises")
}

pub(crate) fn placement_from_json(s: &str, connector: &str) -> Result<Placement, StoreError> {
    serde_json::from_str(s).map_err(|e| {
        StoreError::Schema(format!(
            "connector {connector:?} has an unreadable placement: {e}"
        ))
    })
}

pub(crate) fn patterns_to_json(p: &[String]) -> String {
    serde_json::to_string(p).expect("strings always serialise")
}

pub(crate) fn patterns_from_json(s: &str, connector: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| {
        StoreError::Schema(format!(
            "connector {connector:?} has unreadable patterns: {e}"
        ))
    })
}
