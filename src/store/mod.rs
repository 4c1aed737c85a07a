//! Durable storage: workspaces, connectors (with their sealed secrets) and the audit trail of connector
//! changes, behind one async trait. It is implemented once ([`SqlStore`], in `sql_store.rs`) over two
//! backends (`db.rs` is the interface between them): SQLite (the embedded default, one file) and
//! PostgreSQL (several nodes sharing one store).
//!
//! It also keeps every fetch attempt of every step, with per-minute counts per connector for the
//! monitoring reads (rolling 24 h counts, series, the error log, blocked requests) and retention.
//!
//! The store never sees a plaintext secret: [`ops`] validates, seals with the [`Vault`](crate::vault::Vault)
//! and hands the store a [`Sealed`] value.

#[doc(hidden)]
pub mod access;
pub mod db;
mod error;
pub mod migrate;
mod monitoring_sql;
pub mod ops;
mod postgres;
mod rows;
mod sql_store;
mod sqlite;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::connector::Placement;
use crate::vault::Sealed;

pub use access::{Actor, Scope, Scopes};
pub use error::{Invalid, StoreError};
pub use ops::{
    check_master_keys, create_api_token, create_connector, decrypt_secret, decrypt_secrets,
    hash_api_token, load_run, load_step_connectors, open_run_io, rotate_keys, seal_run_io,
    update_connector, validate_workspace_name, ConnectorUpdate, RotationReport,
};
pub use postgres::{PostgresStore, DEFAULT_POOL_SIZE, DEFAULT_STATEMENT_TIMEOUT_MS, POOL_SIZE_ENV};
pub use sql_store::SqlStore;
pub use sqlite::SqliteStore;

/// Environment variable naming the store (a path or a `postgres://` URL).
pub const DB_ENV: &str = "CODESTEP_DB";

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// How fresh a token's `last_used_at` is kept: one write a minute per token at most.
pub const TOKEN_USE_RESOLUTION_MS: Millis = 60_000;

/// A workspace: the unit that owns connectors (and, later, API tokens).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
    /// Whether runs keep their input and output (sealed with the vault). Off by default.
    pub keep_run_io: bool,
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
    /// Security model, "Who decides where a secret goes": whoever may edit a connector could otherwise
    /// point its secret at a host of their own. Changing its patterns or placement (every field of it:
    /// the kind, its templates, `methods`, `remove_headers`), or turning its echo scrubbing off (it is
    /// `scrubbing_now`), needs the secrets again in the same change; `sealed` is always the whole set,
    /// which validation checked against the placement. Rotating the secrets alone, or turning
    /// scrubbing on, needs nothing more.
    pub fn check_secret_rule(&self, scrubbing_now: bool) -> Result<(), StoreError> {
        let redirects_secret = self.patterns.is_some()
            || self.placement.is_some()
            || (self.scrub_echo == Some(false) && scrubbing_now);
        if redirects_secret && self.sealed.is_none() {
            return Err(StoreError::invalid(
                "secret",
                "changing a connector's patterns or placement, or turning its echo scrubbing off, \
                 needs its secret again in the same request: only who holds the secret decides where it goes",
            ));
        }
        Ok(())
    }

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
    /// Who: `cli:USER`, `operator`, `token "LABEL"`, …
    pub actor: String,
    /// The client address of the API call that made it; `None` for the CLI.
    pub address: Option<String>,
    /// What: `workspace.create`, `connector.update`, `key.rotate`, …
    pub action: String,
    pub workspace: String,
    pub connector: Option<String>,
    pub detail: String,
}

/// What a new token may do, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenGrant {
    pub scopes: Scopes,
    pub expires_at: Option<Millis>,
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
    pub scopes: Scopes,
    /// When it stops working; `None` for never.
    pub expires_at: Option<Millis>,
}

/// Where a token is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    Active,
    Expired,
    Revoked,
}

impl TokenState {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }
}

impl ApiToken {
    /// Revoked, expired (authentication refuses it from its expiry on), or active.
    pub fn state(&self) -> TokenState {
        if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now_millis()) {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }
}

/// One `fetch()` a step made, as kept for the operator: the engine's own record, with its run. Host and
/// path only, never the query.
///
/// Its [`Outcome`] is derived from `status`, `error` and `blocked` ([`FetchRecord::outcome`]) and
/// stored beside it.
pub type FetchAttempt = crate::egress::FetchRecord;

impl crate::egress::FetchRecord {
    /// The engine's record of one fetch, as made by the run `run_id`.
    pub fn from_record(record: &FetchAttempt, run_id: Option<&str>) -> FetchAttempt {
        FetchAttempt {
            run_id: run_id.map(str::to_string),
            ..record.clone()
        }
    }

    /// How this attempt ended (see [`Outcome::classify`]).
    pub fn outcome(&self) -> Outcome {
        Outcome::classify(self.status, self.error.as_deref(), self.blocked)
    }

    /// The connector name lowercased: the key attempts and counts are grouped and filtered by.
    pub(crate) fn connector_key(&self) -> Option<String> {
        self.connector.as_deref().map(name_key)
    }
}

/// How a fetch attempt ended. Serialised (and parsed) as `ok`, `http_error`, `network_error`, `timeout`
/// or `blocked`, the same strings as [`Outcome::as_str`] and the stored column.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A response with a status below 400.
    Ok,
    /// A response with a status of 400 or more.
    HttpError,
    /// The request failed without a usable response (connection, TLS, body limit, refused redirect, …).
    NetworkError,
    /// The request timed out.
    Timeout,
    /// The egress policy refused the request before it left: not an upstream error, counted apart.
    Blocked,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::HttpError,
        Outcome::NetworkError,
        Outcome::Timeout,
        Outcome::Blocked,
    ];

    /// The outcomes that count as errors of a connector (`http_error`, `network_error`, `timeout`).
    pub const ERRORS: [Outcome; 3] = [Outcome::HttpError, Outcome::NetworkError, Outcome::Timeout];

    /// The outcome of a fetch record: `blocked` if the policy blocked it; else `timeout` if its error
    /// kind is `timeout`; else `network_error` for any other error kind; else by status (`http_error`
    /// from 400 on, `ok` below). A record with neither error nor status (which the egress path does not
    /// produce) counts as a `network_error`: no response came back.
    pub fn classify(status: Option<u16>, error: Option<&str>, blocked: bool) -> Outcome {
        if blocked {
            Outcome::Blocked
        } else if let Some(kind) = error {
            if kind == "timeout" {
                Outcome::Timeout
            } else {
                Outcome::NetworkError
            }
        } else {
            match status {
                Some(s) if s >= 400 => Outcome::HttpError,
                Some(_) => Outcome::Ok,
                None => Outcome::NetworkError,
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::HttpError => "http_error",
            Outcome::NetworkError => "network_error",
            Outcome::Timeout => "timeout",
            Outcome::Blocked => "blocked",
        }
    }

    /// An error of the connector: a status of 400 or more, or a failed request. Blocked requests are
    /// not errors (they never reached the upstream).
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Outcome::HttpError | Outcome::NetworkError | Outcome::Timeout
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Outcome, StoreError> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                StoreError::invalid(
                    "outcome",
                    format!("{s:?} is not an outcome; use one of ok, http_error, network_error, timeout, blocked"),
                )
            })
    }
}

/// Requests and errors of one connector over a window. `errors` counts the attempts whose outcome
/// [is an error](Outcome::is_error); blocked attempts are in neither figure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub requests: u64,
    pub errors: u64,
}

impl Counts {
    /// The alert flag: set when there was at least one error in the window.
    pub fn alert(&self) -> bool {
        self.errors > 0
    }
}

/// A connector's most recent attempts, for its health ([`Store::recent_outcomes`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecentOutcomes {
    /// The outcomes of its newest attempts in the window, newest first, blocked ones aside.
    pub recent: Vec<Outcome>,
    /// When it last failed (any time the records still hold).
    pub last_error_at: Option<Millis>,
}

/// How many of a connector's newest attempts its health looks at.
pub const HEALTH_SAMPLE: u32 = 10;

/// How a connector is doing, from its 24 h counts and its newest attempts:
///
/// * `idle`: no request in the last 24 hours;
/// * `failing`: more than half of its last [`HEALTH_SAMPLE`] requests (in the last 24 h, blocked ones
///   aside) failed: it is failing now, not merely had errors;
/// * `some_errors`: it had errors in the last 24 hours, but most recent requests succeed;
/// * `ok`: no error in the last 24 hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ConnectorHealth)]
pub enum Health {
    Ok,
    SomeErrors,
    Failing,
    Idle,
}

impl Health {
    pub fn of(counts: Counts, recent: &[Outcome]) -> Health {
        let failed = recent.iter().filter(|o| o.is_error()).count();
        if counts.requests == 0 && recent.is_empty() {
            Health::Idle
        } else if !recent.is_empty() && failed * 2 > recent.len() {
            Health::Failing
        } else if counts.errors > 0 || failed > 0 {
            Health::SomeErrors
        } else {
            Health::Ok
        }
    }
}

/// The counts of `connector` in a [`Store::connector_counts`] result, looking the name up ignoring
/// case (zero if it made no request in the window).
pub fn counts_for(counts: &HashMap<String, Counts>, connector: &str) -> Counts {
    counts
        .get(connector)
        .or_else(|| {
            counts
                .iter()
                .find(|(k, _)| name_key(k) == name_key(connector))
                .map(|(_, v)| v)
        })
        .copied()
        .unwrap_or_default()
}

/// One point of a [`Store::connector_series`]: the counts of the window `[start, start + bucket)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SeriesPoint {
    pub start: Millis,
    pub requests: u64,
    pub errors: u64,
}

/// Filters of [`Store::fetch_log`]. They combine with AND (so `only_errors` with `blocked_only` is
/// empty). All default to "no filter".
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FetchLogQuery {
    /// Only this connector's attempts (the name compares ignoring case).
    pub connector: Option<String>,
    /// Only errors: `http_error`, `network_error`, `timeout`.
    pub only_errors: bool,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only requests blocked by policy.
    pub blocked_only: bool,
    /// Only attempts at or after this time.
    pub since: Option<Millis>,
    /// Only attempts at or before this time.
    pub until: Option<Millis>,
    /// The cursor: only entries with an id below this (the `next` of the previous page).
    pub before: Option<i64>,
    /// Page size: 0 means [`FETCH_LOG_DEFAULT_LIMIT`]; at most [`FETCH_LOG_MAX_LIMIT`].
    pub limit: u32,
}

/// Page size of [`Store::fetch_log`] when the query gives none.
pub const FETCH_LOG_DEFAULT_LIMIT: u32 = 50;
/// The largest page [`Store::fetch_log`] returns.
pub const FETCH_LOG_MAX_LIMIT: u32 = 1000;

impl FetchLogQuery {
    /// The page size to use: `limit` bounded to `1..=FETCH_LOG_MAX_LIMIT`, 0 meaning the default.
    pub fn page_size(&self) -> u32 {
        match self.limit {
            0 => FETCH_LOG_DEFAULT_LIMIT,
            n => n.min(FETCH_LOG_MAX_LIMIT),
        }
    }
}

/// One entry of the fetch log: the row id (the pagination cursor), the stored outcome and the attempt.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FetchLogEntry {
    pub id: i64,
    pub outcome: Outcome,
    #[serde(flatten)]
    pub attempt: FetchAttempt,
}

/// A page of the fetch log, newest first. `next` is the `before` cursor of the following page, `None`
/// on the last page.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FetchLogPage {
    pub items: Vec<FetchLogEntry>,
    pub next: Option<i64>,
}

pub(crate) fn stored_outcome(s: &str) -> Result<Outcome, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Schema(format!("a fetch record has an unknown outcome {s:?}")))
}

/// A run's input and output as the history keeps them when the workspace opts in: sealed with the
/// vault, bound to the workspace, the run and the field ([`RunIoContext`](crate::vault::RunIoContext)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedRunIo {
    /// The input's JSON text, sealed.
    pub input: Sealed,
    /// The output's JSON text, sealed; `None` when the run produced none (it failed).
    pub output: Option<Sealed>,
}

/// One sealed run input and output with where it belongs, as handed to a re-encryption callback.
#[derive(Clone, Debug)]
pub struct RunIoRow {
    pub workspace_id: String,
    pub run_id: String,
    pub io: SealedRunIo,
}

/// Re-encrypts one run's input and output; used by [`Store::reencrypt_run_io`].
pub type RekeyRunIo = Arc<dyn Fn(&RunIoRow) -> Result<SealedRunIo, StoreError> + Send + Sync>;

/// One run as the history keeps it: who asked, which step (its code's hash), how it ended, its log
/// and how many fetches it made. Its input and output only when the workspace keeps them, sealed
/// (`io`); else only the output's size.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub workspace_id: String,
    pub started_at: Millis,
    pub ended_at: Millis,
    /// SHA-256 of the step's code, hex.
    pub step_hash: String,
    /// The label of the token that asked for the run.
    pub token: String,
    /// `ok` or the error kind.
    pub outcome: String,
    pub error_message: Option<String>,
    pub duration_ms: f64,
    pub fetches: u32,
    pub output_bytes: u64,
    pub logs_dropped: u64,
    /// The step's console log, as JSON (an array of `LogEntry`).
    pub logs: String,
    /// The sealed input and output, when the workspace kept them.
    pub io: Option<SealedRunIo>,
}

/// Which runs [`Store::runs`] returns.
#[derive(Clone, Debug, Default)]
pub struct RunQuery {
    /// Only runs that ended so (`ok` or an error kind).
    pub outcome: Option<String>,
    /// Only runs that started at or after this time.
    pub since: Option<Millis>,
    /// Only runs that started at or before this time.
    pub until: Option<Millis>,
    /// Only runs that made a fetch through this connector (ignoring case).
    pub connector: Option<String>,
    /// The cursor: the `next` of the previous page.
    pub before: Option<RunCursor>,
    /// Page size: 0 means [`FETCH_LOG_DEFAULT_LIMIT`]; at most [`FETCH_LOG_MAX_LIMIT`].
    pub limit: u32,
}

/// Where a page of runs ends: the last run's start time and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunCursor {
    pub started_at: Millis,
    pub id: String,
}

impl RunCursor {
    /// `STARTED_AT.ID`, as the API hands it out.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.started_at, self.id)
    }

    pub fn decode(s: &str) -> Option<RunCursor> {
        let (at, id) = s.split_once('.')?;
        Some(RunCursor {
            started_at: at.parse().ok()?,
            id: id.to_string(),
        })
    }
}

#[derive(Clone, Debug)]
pub struct RunPage {
    pub items: Vec<RunRecord>,
    pub next: Option<RunCursor>,
}

/// The page of `page` entries out of `items` (fetched with one extra to tell whether more follow).
pub(crate) fn page_of(mut items: Vec<FetchLogEntry>, page: u32) -> FetchLogPage {
    let more = items.len() > page as usize;
    items.truncate(page as usize);
    let next = if more {
        items.last().map(|e| e.id)
    } else {
        None
    };
    FetchLogPage { items, next }
}

/// The minute an attempt is counted in: its `at` rounded down to a whole minute.
pub(crate) fn minute_of(at: Millis) -> Millis {
    at - at.rem_euclid(MINUTE_MS)
}

pub(crate) const MINUTE_MS: Millis = 60_000;

/// The first minute bucket of a rolling window starting at `since`: the minute after the one holding
/// `since`. So `since = now − 24 h` sums exactly the 1440 minute buckets that end with the current one.
pub fn window_start(since: Millis) -> Millis {
    minute_of(since) + MINUTE_MS
}

/// The most points [`Store::connector_series`] returns.
pub const SERIES_MAX_POINTS: i64 = 10_000;

/// The dense series of `rows` (minute bucket start, requests, errors) from `window_start(since)` to the
/// end of `now`'s minute, in points of `bucket` ms. Buckets past the end (clock skew between nodes)
/// count in the last point, so the series adds up to [`Store::connector_counts`].
pub(crate) fn dense_series(
    rows: impl IntoIterator<Item = (Millis, u64, u64)>,
    since: Millis,
    bucket: Millis,
    now: Millis,
) -> Result<Vec<SeriesPoint>, StoreError> {
    if bucket <= 0 || bucket % MINUTE_MS != 0 {
        return Err(StoreError::invalid(
            "bucket",
            format!(
                "{bucket} ms is not a whole number of minutes (the counts are kept per minute)"
            ),
        ));
    }
    let start = window_start(since);
    let end = minute_of(now) + MINUTE_MS;
    let span = (end - start).max(0);
    let points = ((span + bucket - 1) / bucket).max(1);
    if points > SERIES_MAX_POINTS {
        return Err(StoreError::invalid(
            "bucket",
            format!(
                "{points} points of {bucket} ms since {} is more than {SERIES_MAX_POINTS}; use larger buckets",
                format_time(since)
            ),
        ));
    }
    let mut out: Vec<SeriesPoint> = (0..points)
        .map(|i| SeriesPoint {
            start: start + i * bucket,
            ..SeriesPoint::default()
        })
        .collect();
    for (minute, requests, errors) in rows {
        if minute < start {
            continue;
        }
        let i = ((minute - start) / bucket).min(points - 1) as usize;
        out[i].requests += requests;
        out[i].errors += errors;
    }
    Ok(out)
}

/// Re-encrypts one secret; used by [`Store::reencrypt_secrets`].
pub type Rekey = Arc<dyn Fn(&SecretRow) -> Result<Sealed, StoreError> + Send + Sync>;

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

    async fn create_workspace(&self, name: &str, actor: &Actor) -> Result<Workspace, StoreError>;
    async fn list_workspaces(&self) -> Result<Vec<Workspace>, StoreError>;
    async fn workspace(&self, name: &str) -> Result<Workspace, StoreError>;
    /// Deletes a workspace and all its connectors; returns how many connectors went with it.
    async fn delete_workspace(&self, name: &str, actor: &Actor) -> Result<u64, StoreError>;

    /// Inserts a connector. A name already used in the workspace (ignoring case) is a `Conflict`.
    async fn insert_connector(
        &self,
        row: NewConnectorRow,
        actor: &Actor,
    ) -> Result<ConnectorRecord, StoreError>;
    /// The workspace's connectors, by name.
    async fn list_connectors(&self, workspace: &str) -> Result<Vec<ConnectorRecord>, StoreError>;
    async fn connector(&self, workspace: &str, name: &str) -> Result<ConnectorRecord, StoreError>;
    /// What a run needs, in one read: the workspace and, for each of `names` in order, its connector
    /// (`None` for a name with no connector; names compare ignoring case).
    async fn connectors_for_run(
        &self,
        workspace: &str,
        names: &[String],
    ) -> Result<(Workspace, Vec<Option<ConnectorRecord>>), StoreError>;
    /// Applies `changes` to the connector with this id (in this workspace) and bumps `updated_at`.
    async fn update_connector(
        &self,
        workspace_id: &str,
        connector_id: &str,
        changes: ConnectorChanges,
        actor: &Actor,
    ) -> Result<ConnectorRecord, StoreError>;
    async fn delete_connector(
        &self,
        workspace: &str,
        name: &str,
        actor: &Actor,
    ) -> Result<(), StoreError>;

    /// The newest audit entries first, optionally only one workspace's, optionally only those older
    /// than the entry with id `before` (the cursor of the previous page).
    async fn audit_log(
        &self,
        workspace: Option<&str>,
        before: Option<i64>,
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
        actor: &Actor,
    ) -> Result<u64, StoreError>;

    /// Re-encrypts every stored run input and output with `rekey`, in one transaction, as
    /// [`Store::reencrypt_secrets`] does for secrets. Returns how many runs were re-encrypted.
    async fn reencrypt_run_io(&self, rekey: RekeyRunIo) -> Result<u64, StoreError>;

    /// Turns keeping run input and output on or off for `workspace`. Writes a `workspace.update`
    /// audit entry. Runs recorded before keep what they had.
    async fn set_keep_run_io(
        &self,
        workspace: &str,
        keep: bool,
        actor: &Actor,
    ) -> Result<Workspace, StoreError>;

    /// Stores a new API token of `workspace` by its hash. Writes a `token.create` audit entry.
    async fn create_api_token(
        &self,
        workspace: &str,
        name: &str,
        token_hash: &[u8],
        grant: &TokenGrant,
        actor: &Actor,
    ) -> Result<ApiToken, StoreError>;
    /// The workspace's tokens (revoked ones included), oldest first.
    async fn list_api_tokens(&self, workspace: &str) -> Result<Vec<ApiToken>, StoreError>;
    /// The live (not revoked, not expired) token with this hash, if any; records its use (`last_used_at`, to the
    /// nearest [`TOKEN_USE_RESOLUTION_MS`], so that authenticating is a read, not a write, nearly always).
    async fn authenticate_api_token(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<ApiToken>, StoreError>;
    /// Revokes a token of `workspace` by id. Writes a `token.revoke` audit entry.
    async fn revoke_api_token(
        &self,
        workspace: &str,
        token_id: &str,
        actor: &Actor,
    ) -> Result<(), StoreError>;

    /// Records a finished run and its fetch records in one transaction: a run is in the history
    /// exactly when its fetches are counted.
    async fn record_run(
        &self,
        run: &RunRecord,
        attempts: &[FetchAttempt],
    ) -> Result<(), StoreError>;
    /// A workspace's runs, newest first, filtered and paged.
    async fn runs(&self, workspace: &str, q: &RunQuery) -> Result<RunPage, StoreError>;
    /// One run of a workspace, with its fetch records in the order they started.
    async fn run(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<(RunRecord, Vec<FetchAttempt>), StoreError>;

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

    /// Requests and errors per connector of `workspace` over the rolling window from `since` to now
    /// (not a calendar day). Read from per-minute buckets that [`Store::record_fetch_attempts`] updates
    /// in the same transaction as it inserts the attempts, so at most 1440 rows per connector for 24 h.
    ///
    /// Resolution is one minute: the window is the whole minutes after the one holding `since`, through
    /// the current one ([`window_start`]); for `since = now − 24 h`, exactly 1440 minute buckets, which
    /// reach back between 23 h 59 min and 24 h. Attempts stamped after now (clock skew between nodes)
    /// count too.
    ///
    /// Keyed by the connector name as recorded (the connector's name when the step ran). Attempts whose
    /// names differ only in case (possible only if a connector was deleted and re-created so) are
    /// counted together under one of those spellings: look names up with [`counts_for`], which ignores
    /// case. Connectors without requests in the window are absent. Blocked attempts and attempts
    /// without a connector are not counted here (see [`Store::blocked_count`]).
    async fn connector_counts(
        &self,
        workspace: &str,
        since: Millis,
    ) -> Result<HashMap<String, Counts>, StoreError>;

    /// One connector's requests and errors (name compared ignoring case) as a dense series of points
    /// of `bucket` ms (a whole number of minutes), zero-filled, from [`window_start`]`(since)` to the end
    /// of the current minute. For `since = now − 24 h` and an hour's bucket: 24 points, the last ending
    /// with the current minute. The points add up to the connector's [`Store::connector_counts`].
    async fn connector_series(
        &self,
        workspace: &str,
        connector: &str,
        since: Millis,
        bucket: Millis,
    ) -> Result<Vec<SeriesPoint>, StoreError>;

    /// For each of `connectors` (names compared ignoring case; keyed by the name as given): the
    /// outcomes of its newest `sample` attempts since `since` and when it last failed. Two index
    /// reads per connector, in one read.
    async fn recent_outcomes(
        &self,
        workspace: &str,
        connectors: &[String],
        since: Millis,
        sample: u32,
    ) -> Result<HashMap<String, RecentOutcomes>, StoreError>;

    /// The workspace's fetch log, newest first (by row id), filtered by `q` and paginated with the
    /// `before` cursor. The per-connector error log and the blocked list are index scans.
    async fn fetch_log(
        &self,
        workspace: &str,
        q: &FetchLogQuery,
    ) -> Result<FetchLogPage, StoreError>;

    /// How many of the workspace's requests the policy blocked over the rolling window from `since`
    /// (same minute resolution as [`Store::connector_counts`]), from per-minute buckets.
    async fn blocked_count(&self, workspace: &str, since: Millis) -> Result<u64, StoreError>;

    /// Retention: deletes fetch attempts stamped before `older_than`, and the minute buckets before its
    /// minute, in transactions of at most `batch` rows (bounded to 1..=10 000) so that steps recording
    /// attempts meanwhile wait at most one short batch. Returns how many attempts were deleted (bucket
    /// rows are not in that figure).
    async fn prune_fetch_attempts(&self, older_than: Millis, batch: u32)
        -> Result<u64, StoreError>;
}

/// The largest batch [`Store::prune_fetch_attempts`] deletes in one transaction.
pub const PRUNE_MAX_BATCH: u32 = 10_000;

/// Per-minute counts of one run's attempts, as added to the bucket tables: connector buckets keyed by
/// `(connector key, minute)` with `(name as recorded, requests, errors)`, and blocked counts by minute.
/// Ordered maps, so every writer updates bucket rows in the same order (no deadlocks on PostgreSQL).
#[derive(Default)]
pub(crate) struct BucketDeltas {
    pub connectors: std::collections::BTreeMap<(String, Millis), (String, i64, i64)>,
    pub blocked: std::collections::BTreeMap<Millis, i64>,
}

impl BucketDeltas {
    /// The deltas of `attempts`; none without a workspace (buckets are per workspace).
    pub(crate) fn of(workspace_id: Option<&str>, attempts: &[FetchAttempt]) -> BucketDeltas {
        let mut d = BucketDeltas::default();
        if workspace_id.is_none() {
            return d;
        }
        for a in attempts {
            let outcome = a.outcome();
            let minute = minute_of(a.at_ms);
            if outcome == Outcome::Blocked {
                *d.blocked.entry(minute).or_default() += 1;
            } else if let Some(name) = &a.connector {
                let e = d
                    .connectors
                    .entry((name_key(name), minute))
                    .or_insert_with(|| (name.clone(), 0, 0));
                e.1 += 1;
                e.2 += i64::from(outcome.is_error());
            }
        }
        d
    }
}

/// The SQL condition on `outcome` that the partial index of errors is declared with; queries repeat
/// it verbatim so both planners can match the index.
pub(crate) const ERRORS_SQL: &str = "outcome IN ('http_error', 'network_error', 'timeout')";
/// The same for the partial index of blocked attempts.
pub(crate) const BLOCKED_SQL: &str = "outcome = 'blocked'";

/// The WHERE terms of a fetch-log query other than the workspace and the connector, with the
/// outcome literals inlined (they come from [`Outcome::as_str`], never from input) so that partial
/// indexes match. `next` is the number of the first free `$n` parameter. Returns the terms and, in
/// order, the values to bind (`since`, `until`, `before`).
pub(crate) fn fetch_log_terms(q: &FetchLogQuery, mut next: usize) -> (Vec<String>, Vec<i64>) {
    let mut terms = Vec::new();
    let mut values = Vec::new();
    let outcome_error = q.outcome.is_some_and(Outcome::is_error);
    if q.only_errors || outcome_error {
        terms.push(ERRORS_SQL.to_string());
    }
    if q.blocked_only || q.outcome == Some(Outcome::Blocked) {
        terms.push(BLOCKED_SQL.to_string());
    }
    if let Some(o) = q.outcome {
        if o != Outcome::Blocked {
            terms.push(format!("outcome = '{}'", o.as_str()));
        }
    }
    for (value, op) in [(q.since, ">="), (q.until, "<=")] {
        if let Some(v) = value {
            terms.push(format!("at {op} ${next}"));
            values.push(v);
            next += 1;
        }
    }
    if let Some(before) = q.before {
        terms.push(format!("id < ${next}"));
        values.push(before);
    }
    (terms, values)
}

/// Whether opening a SQLite store may make a new file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    /// Only an existing store: a mistyped path is an error, not a new empty store.
    Never,
    /// Make the file when it is missing (its directory must exist).
    IfMissing,
}

/// Opens the store at `location`, creating a missing SQLite file (in a directory that must exist).
/// See [`open_as`].
pub async fn open(location: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_as(location, Create::IfMissing).await
}

/// Opens the store at `location`: a `postgres://` / `postgresql://` URL, or a SQLite file path, made
/// only as `create` allows. Applies pending migrations; fails with a clear message if the store was
/// written by a newer schema version.
pub async fn open_as(location: &str, create: Create) -> Result<Arc<dyn Store>, StoreError> {
    // A mistyped URL must not silently become a new, empty SQLite file named after it (and holding its
    // password in its name): any scheme but ours is refused, naming only the scheme.
    if let Some((scheme, rest)) = location.split_once("://") {
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => {
                let url = format!("{}://{rest}", scheme.to_ascii_lowercase());
                return Ok(Arc::new(PostgresStore::open(&url).await?));
            }
            "sqlite" => {}
            other => {
                return Err(StoreError::Config(format!(
                    "unknown store URL scheme {other:?}: use a file path, sqlite://PATH or postgres://…"
                )))
            }
        }
    } else if location.split_whitespace().any(|w| {
        matches!(
            w.split('=').next(),
            Some("host" | "hostaddr" | "dbname" | "user" | "password" | "port")
        ) && w.contains('=')
    }) {
        return Err(StoreError::Config(
            "the store location looks like a key=value connection string: use a postgres:// URL"
                .into(),
        ));
    }
    if is_postgres_url(location) {
        Ok(Arc::new(PostgresStore::open(location).await?))
    } else {
        let path = location.strip_prefix("sqlite://").unwrap_or(location);
        if path.is_empty() {
            return Err(StoreError::Config("the store location is empty".into()));
        }
        if create == Create::Never && !Path::new(path).exists() {
            return Err(StoreError::Config(format!(
                "there is no store at {path}: check the path, or pass --create-store to make a new one there"
            )));
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

/// The SHA-256 of `bytes`, as lowercase hex (migration checksums, a run's step hash).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new random id: a UUID v4 (122 random bits) as 32 lowercase hex digits, the form ids always had.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The case-insensitive key names are unique by.
pub(crate) fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Formats milliseconds since the epoch as RFC 3339 UTC, to the second (`2024-05-01T12:00:00Z`).
pub fn format_time(ms: Millis) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    // RFC 3339 would print a fraction when there is one; the stamps are to the second.
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
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
