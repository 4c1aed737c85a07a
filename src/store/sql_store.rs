//! The [`Store`] implementation, written once over [`Backend`]: its statements (the column lists and
//! row conversions are in `rows.rs`, the monitoring reads in `monitoring_sql.rs`) and every rule
//! (existence checks before inserts, deletes that must remove a row, the audit entry in the same
//! transaction, `updated_at` moving forward, token-use throttling). Only the statements where the
//! dialects differ are chosen by [`Dialect`].

use std::collections::HashMap;

use async_trait::async_trait;

use super::db::{job, params, Backend, Dialect, Row, Tx, Value};
use super::error::{Context, StoreError};
use super::migrate;
use super::monitoring_sql::{
    counts_sql, fetch_log_sql, last_error_sql, series_sql, BLOCKED_COUNT_SQL, PRUNE_SELECT_SQL,
    RECENT_OUTCOMES_SQL,
};
use super::rows::{
    connector_row, count, fetch_attempt_at, key_version, run_io_at, run_row, token_row,
    workspace_row, CONNECTOR_SELECT, FETCH_COLUMNS, RUN_COLUMNS, TOKEN_SELECT, WORKSPACE_COLUMNS,
};
use super::{
    dense_series, minute_of, name_key, new_id, now_millis, page_of, patterns_to_json,
    placement_to_json, stored_outcome, window_start, Actor, ApiToken, AuditEntry, BucketDeltas,
    ConnectorChanges, ConnectorRecord, Counts, FetchAttempt, FetchLogEntry, FetchLogPage,
    FetchLogQuery, Millis, NewConnectorRow, RecentOutcomes, Rekey, RekeyRunIo, RunCursor, RunIoRow,
    RunPage, RunQuery, RunRecord, SecretRow, SeriesPoint, Store, TokenGrant, Workspace,
    PRUNE_MAX_BATCH, TOKEN_USE_RESOLUTION_MS,
};
use crate::vault::Sealed;

/// The longest pause between two SQLite retention batches (see `prune_fetch_attempts`).
const PRUNE_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(100);
/// Rows per multi-row INSERT: a run at the default fetch limit (100) is one statement, and 16 values
/// a row stay far below either backend's bind-value limit. Each row count is its own cached statement,
/// so this also bounds how many a connection keeps.
const ROWS_PER_INSERT: usize = 128;

/// A store over a backend: [`SqliteStore`](super::SqliteStore) or [`PostgresStore`](super::PostgresStore).
pub struct SqlStore<B: Backend> {
    pub(crate) db: B,
}

impl<B: Backend> SqlStore<B> {
    /// Migrates the store behind `db` and wraps it.
    pub(crate) async fn migrated(
        db: B,
        migrations: &'static [migrate::Migration],
    ) -> Result<SqlStore<B>, StoreError> {
        migrate::run(&db, migrations, db.describe()).await?;
        Ok(SqlStore { db })
    }
}

// ---- shared steps -----------------------------------------------------------------------------

async fn audit(
    tx: &mut dyn Tx,
    actor: &Actor,
    action: &str,
    workspace_id: Option<&str>,
    workspace: &str,
    connector: Option<&str>,
    detail: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit_log (at, actor, address, action, workspace_id, workspace, connector, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        params![
            now_millis(),
            actor.who.as_ref(),
            actor.address.as_deref(),
            action,
            workspace_id,
            workspace,
            connector,
            detail
        ],
    )
    .await
    .context("writing the audit trail")?;
    Ok(())
}

/// The INSERTs of a run's fetch records: one multi-row statement per chunk, so a run's fetches are one
/// round trip (ids follow the slice's order).
fn attempt_statements(
    workspace_id: Option<&str>,
    attempts: &[FetchAttempt],
) -> Vec<(String, Vec<Value>)> {
    let mut statements = Vec::new();
    for chunk in attempts.chunks(ROWS_PER_INSERT) {
        let mut bind = Vec::with_capacity(chunk.len() * 16);
        for a in chunk {
            bind.extend_from_slice(params![
                a.at_ms,
                workspace_id,
                a.run_id.as_deref(),
                a.connector.as_deref(),
                a.method.as_str(),
                a.host.as_str(),
                a.path.as_str(),
                a.status,
                a.error.as_deref(),
                a.blocked,
                a.redirects,
                a.duration_ms,
                a.outcome().as_str(),
                a.connector_key(),
                a.status_text.as_deref(),
                a.error_excerpt.as_deref()
            ]);
        }
        let sql = format!(
            "INSERT INTO fetch_attempts (at, workspace_id, run_id, connector, method, host, path, status, error,
                blocked, redirects, duration_ms, outcome, connector_key, status_text, error_excerpt) VALUES {}",
            values_rows(chunk.len(), 16)
        );
        statements.push((sql, bind));
    }
    statements
}

async fn find_workspace(tx: &mut dyn Tx, name: &str) -> Result<Workspace, StoreError> {
    tx.query_opt(
        &format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE name_key = $1"),
        params![name_key(name)],
    )
    .await
    .context("reading a workspace")?
    .map(|r| workspace_row(&r))
    .transpose()?
    .ok_or_else(|| StoreError::workspace_not_found(name))
}

async fn connector_by_id(
    tx: &mut dyn Tx,
    id: &str,
    lock: &str,
) -> Result<Option<ConnectorRecord>, StoreError> {
    tx.query_opt(
        &format!("{CONNECTOR_SELECT} WHERE c.id = $1{lock}"),
        params![id],
    )
    .await
    .context("reading a connector")?
    .map(|r| connector_row(&r))
    .transpose()
}

async fn connector_by_name(
    tx: &mut dyn Tx,
    workspace: &str,
    name: &str,
) -> Result<ConnectorRecord, StoreError> {
    let ws = find_workspace(tx, workspace).await?;
    let row = tx
        .query_opt(
            &format!("{CONNECTOR_SELECT} WHERE c.workspace_id = $1 AND c.name_key = $2"),
            params![ws.id, name_key(name)],
        )
        .await
        .context("reading a connector")?
        .ok_or_else(|| StoreError::connector_not_found(&ws.name, name))?;
    connector_row(&row)
}

/// The `($1, $2, …), ($k+1, …)` of a multi-row INSERT of `rows` rows of `width` values.
fn values_rows(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds one transaction's bucket deltas with atomic upserts, in key order, so that concurrent writers
/// lock bucket rows in the same order and cannot deadlock (PostgreSQL).
async fn add_bucket_deltas(
    tx: &mut dyn Tx,
    workspace_id: &str,
    deltas: &BucketDeltas,
) -> Result<(), StoreError> {
    let connectors: Vec<_> = deltas.connectors.iter().collect();
    for chunk in connectors.chunks(ROWS_PER_INSERT) {
        let mut bind = Vec::with_capacity(chunk.len() * 6);
        for ((key, minute), (name, requests, errors)) in chunk {
            bind.extend_from_slice(params![
                workspace_id,
                *minute,
                key.as_str(),
                name.as_str(),
                *requests,
                *errors
            ]);
        }
        tx.execute(
            &format!(
                "INSERT INTO fetch_buckets (workspace_id, minute, connector_key, connector, requests, errors)
                 VALUES {}
                 ON CONFLICT (workspace_id, minute, connector_key) DO UPDATE SET
                    requests = fetch_buckets.requests + excluded.requests,
                    errors = fetch_buckets.errors + excluded.errors,
                    connector = excluded.connector",
                values_rows(chunk.len(), 6)
            ),
            &bind,
        )
        .await
        .context("counting fetches")?;
    }
    let blocked: Vec<_> = deltas.blocked.iter().collect();
    for chunk in blocked.chunks(ROWS_PER_INSERT) {
        let mut bind = Vec::with_capacity(chunk.len() * 3);
        for (minute, requests) in chunk {
            bind.extend_from_slice(params![workspace_id, **minute, **requests]);
        }
        tx.execute(
            &format!(
                "INSERT INTO blocked_buckets (workspace_id, minute, requests) VALUES {}
                 ON CONFLICT (workspace_id, minute) DO UPDATE SET
                    requests = blocked_buckets.requests + excluded.requests",
                values_rows(chunk.len(), 3)
            ),
            &bind,
        )
        .await
        .context("counting blocked fetches")?;
    }
    Ok(())
}

/// Whether authenticating should record the token's use now: at most once per
/// [`TOKEN_USE_RESOLUTION_MS`], so that authenticating is a read nearly always.
fn token_use_due(last_used_at: Option<Millis>, now: Millis) -> bool {
    last_used_at.is_none_or(|at| now - at >= TOKEN_USE_RESOLUTION_MS)
}

impl<B: Backend> SqlStore<B> {
    /// The monitoring reads' statements for `workspace` and `q` with their bind values, as
    /// `(read, sql, bind)`, for the backends' query-plan helpers.
    pub(crate) async fn monitoring_reads(
        &self,
        workspace: &str,
        q: &FetchLogQuery,
    ) -> Result<Vec<(&'static str, String, Vec<Value>)>, StoreError> {
        let workspace = workspace.to_string();
        let ws = self
            .db
            .read(job(move |tx| {
                Box::pin(async move { find_workspace(tx, &workspace).await })
            }))
            .await?;
        let (log_sql, log_bind, _) = fetch_log_sql(ws.id.clone(), q);
        let key = q.connector.as_deref().map(name_key).unwrap_or_default();
        let since = window_start(now_millis() - 24 * 3_600_000);
        Ok(vec![
            (
                "connector_counts",
                counts_sql(B::DIALECT).into(),
                vec![ws.id.clone().into(), since.into()],
            ),
            (
                "connector_series",
                series_sql(B::DIALECT).into(),
                vec![ws.id.clone().into(), key.clone().into(), since.into()],
            ),
            (
                "blocked_count",
                BLOCKED_COUNT_SQL.into(),
                vec![ws.id.clone().into(), since.into()],
            ),
            ("fetch_log", log_sql, log_bind),
            (
                "recent_outcomes",
                RECENT_OUTCOMES_SQL.into(),
                vec![
                    ws.id.clone().into(),
                    key.clone().into(),
                    since.into(),
                    i64::from(super::HEALTH_SAMPLE).into(),
                ],
            ),
            (
                "last_error",
                last_error_sql(),
                vec![ws.id.clone().into(), key.clone().into()],
            ),
            (
                "prune",
                PRUNE_SELECT_SQL.into(),
                vec![since.into(), 1i64.into()],
            ),
        ])
    }

    async fn read<T: Send + 'static>(&self, job: super::db::Job<T>) -> Result<T, StoreError> {
        self.db.read(job).await
    }

    async fn write<T: Send + 'static>(&self, job: super::db::Job<T>) -> Result<T, StoreError> {
        self.db.write(job).await
    }
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    fn describe(&self) -> String {
        self.db.describe()
    }

    async fn schema_version(&self) -> Result<u32, StoreError> {
        self.read(job(|tx| Box::pin(migrate::current_version(tx))))
            .await
    }

    async fn create_workspace(&self, name: &str, actor: &Actor) -> Result<Workspace, StoreError> {
        let ws = Workspace {
            id: new_id(),
            name: name.to_string(),
            created_at: now_millis(),
            keep_run_io: false,
        };
        let actor = actor.clone();
        self.write(job(move |tx| {
            Box::pin(async move {
                let taken = tx
                    .query_opt(
                        "SELECT 1 FROM workspaces WHERE name_key = $1",
                        params![name_key(&ws.name)],
                    )
                    .await
                    .context("checking workspace names")?;
                if taken.is_some() {
                    return Err(StoreError::workspace_conflict(&ws.name));
                }
                // Another node may take the name between the check and the insert: the unique
                // index settles that race.
                tx.execute(
                    "INSERT INTO workspaces (id, name, name_key, created_at) VALUES ($1, $2, $3, $4)",
                    params![&ws.id, &ws.name, name_key(&ws.name), ws.created_at],
                )
                .await
                .map_err(|e| {
                    if e.unique_violation {
                        StoreError::workspace_conflict(&ws.name)
                    } else {
                        e.doing("creating a workspace")
                    }
                })?;
                audit(tx, &actor, "workspace.create", Some(&ws.id), &ws.name, None, "").await?;
                Ok(ws)
            })
        }))
        .await
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        self.read(job(|tx| {
            Box::pin(async move {
                tx.query(
                    &format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces ORDER BY name_key"),
                    &[],
                )
                .await
                .context("listing workspaces")?
                .iter()
                .map(workspace_row)
                .collect()
            })
        }))
        .await
    }

    async fn workspace(&self, name: &str) -> Result<Workspace, StoreError> {
        let name = name.to_string();
        self.read(job(move |tx| {
            Box::pin(async move { find_workspace(tx, &name).await })
        }))
        .await
    }

    async fn delete_workspace(&self, name: &str, actor: &Actor) -> Result<u64, StoreError> {
        let (name, actor) = (name.to_string(), actor.clone());
        self.write(job(move |tx| {
            Box::pin(async move {
                let ws = find_workspace(tx, &name).await?;
                let deleted = tx
                    .execute(
                        "DELETE FROM connectors WHERE workspace_id = $1",
                        params![&ws.id],
                    )
                    .await
                    .context("deleting connectors")?;
                let n = tx
                    .execute("DELETE FROM workspaces WHERE id = $1", params![&ws.id])
                    .await
                    .context("deleting a workspace")?;
                if n == 0 {
                    // Deleted by another node meanwhile.
                    return Err(StoreError::workspace_not_found(&name));
                }
                audit(
                    tx,
                    &actor,
                    "workspace.delete",
                    Some(&ws.id),
                    &ws.name,
                    None,
                    &format!("{deleted} connector(s) deleted with it"),
                )
                .await?;
                Ok(deleted)
            })
        }))
        .await
    }

    async fn insert_connector(
        &self,
        row: NewConnectorRow,
        actor: &Actor,
    ) -> Result<ConnectorRecord, StoreError> {
        let actor = actor.clone();
        let share = B::DIALECT.for_share();
        self.write(job(move |tx| {
            Box::pin(async move {
                let ws_name = tx
                    .query_opt(
                        &format!("SELECT name FROM workspaces WHERE id = $1{share}"),
                        params![&row.workspace_id],
                    )
                    .await
                    .context("reading a workspace")?
                    .ok_or_else(|| {
                        StoreError::NotFound("the workspace was deleted meanwhile".into())
                    })?
                    .text(0)?;
                let taken = tx
                    .query_opt(
                        "SELECT 1 FROM connectors WHERE workspace_id = $1 AND name_key = $2",
                        params![&row.workspace_id, name_key(&row.name)],
                    )
                    .await
                    .context("checking connector names")?;
                if taken.is_some() {
                    return Err(StoreError::connector_conflict(&ws_name, &row.name));
                }
                let now = now_millis();
                tx.execute(
                    "INSERT INTO connectors (id, workspace_id, name, name_key, patterns, placement, scrub_echo,
                        secret_ciphertext, secret_nonce, key_version, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
                    params![
                        &row.id,
                        &row.workspace_id,
                        &row.name,
                        name_key(&row.name),
                        patterns_to_json(&row.patterns),
                        placement_to_json(&row.placement),
                        row.scrub_echo,
                        &row.sealed.ciphertext[..],
                        &row.sealed.nonce[..],
                        row.sealed.key_version,
                        now,
                    ],
                )
                .await
                .map_err(|e| {
                    if e.unique_violation {
                        StoreError::connector_conflict(&ws_name, &row.name)
                    } else {
                        e.doing("creating a connector")
                    }
                })?;
                audit(
                    tx,
                    &actor,
                    "connector.create",
                    Some(&row.workspace_id),
                    &ws_name,
                    Some(&row.name),
                    "",
                )
                .await?;
                connector_by_id(tx, &row.id, "").await?.ok_or_else(|| {
                    StoreError::Schema("a connector just created cannot be read back".into())
                })
            })
        }))
        .await
    }

    async fn list_connectors(&self, workspace: &str) -> Result<Vec<ConnectorRecord>, StoreError> {
        let workspace = workspace.to_string();
        self.read(job(move |tx| {
            Box::pin(async move {
                let ws = find_workspace(tx, &workspace).await?;
                tx.query(
                    &format!("{CONNECTOR_SELECT} WHERE c.workspace_id = $1 ORDER BY c.name_key"),
                    params![&ws.id],
                )
                .await
                .context("listing connectors")?
                .iter()
                .map(connector_row)
                .collect()
            })
        }))
        .await
    }

    async fn connector(&self, workspace: &str, name: &str) -> Result<ConnectorRecord, StoreError> {
        let (workspace, name) = (workspace.to_string(), name.to_string());
        self.read(job(move |tx| {
            Box::pin(async move { connector_by_name(tx, &workspace, &name).await })
        }))
        .await
    }

    async fn connectors_for_run(
        &self,
        workspace: &str,
        names: &[String],
    ) -> Result<(Workspace, Vec<Option<ConnectorRecord>>), StoreError> {
        let workspace = workspace.to_string();
        let keys: Vec<String> = names.iter().map(|n| name_key(n)).collect();
        self.read(job(move |tx| {
            Box::pin(async move {
                // One round trip: the workspace row, with each named connector joined to it (the
                // LEFT JOIN keeps the workspace when no name matches).
                let wanted = if keys.is_empty() {
                    "FALSE".to_string()
                } else {
                    let list: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 2)).collect();
                    format!("c.name_key IN ({})", list.join(", "))
                };
                let mut bind: Vec<Value> = vec![name_key(&workspace).into()];
                bind.extend(keys.iter().map(|k| Value::from(k.as_str())));
                let rows = tx
                    .query(
                        &format!(
                            "SELECT w.id, w.name, w.created_at, c.id, c.workspace_id, w.name, c.name, c.patterns,
                                c.placement, c.scrub_echo, c.secret_ciphertext, c.secret_nonce, c.key_version,
                                c.created_at, c.updated_at, c.name_key, w.keep_run_io
                             FROM workspaces w LEFT JOIN connectors c ON c.workspace_id = w.id AND {wanted}
                             WHERE w.name_key = $1"
                        ),
                        &bind,
                    )
                    .await
                    .context("reading a run's connectors")?;
                let first = rows
                    .first()
                    .ok_or_else(|| StoreError::workspace_not_found(&workspace))?;
                let ws = workspace_row(&Row(vec![
                    first.0[0].clone(),
                    first.0[1].clone(),
                    first.0[2].clone(),
                    first.0[16].clone(),
                ]))?;
                let mut found: HashMap<String, ConnectorRecord> = HashMap::new();
                for r in &rows {
                    if r.opt_text(3)?.is_some() {
                        let rec = connector_row(&Row(r.0[3..15].to_vec()))?;
                        found.insert(r.text(15)?, rec);
                    }
                }
                let out = keys.iter().map(|k| found.get(k).cloned()).collect();
                Ok((ws, out))
            })
        }))
        .await
    }

    async fn update_connector(
        &self,
        workspace_id: &str,
        connector_id: &str,
        changes: ConnectorChanges,
        actor: &Actor,
    ) -> Result<ConnectorRecord, StoreError> {
        let (workspace_id, connector_id, actor) = (
            workspace_id.to_string(),
            connector_id.to_string(),
            actor.clone(),
        );
        let lock = B::DIALECT.for_update("c");
        self.write(job(move |tx| {
            Box::pin(async move {
                let current = connector_by_id(tx, &connector_id, &lock)
                    .await?
                    .filter(|c| c.workspace_id == workspace_id)
                    .ok_or_else(|| {
                        StoreError::NotFound("the connector was deleted meanwhile".into())
                    })?;
                // Checked here, on the locked row, so that no change landing between a read and this
                // write can be undone by a request without the secret.
                changes.check_secret_rule(current.scrub_echo)?;
                let patterns = changes.patterns.as_ref().unwrap_or(&current.patterns);
                let placement = changes.placement.as_ref().unwrap_or(&current.placement);
                let scrub_echo = changes.scrub_echo.unwrap_or(current.scrub_echo);
                let sealed = changes.sealed.as_ref().unwrap_or(&current.sealed);
                // `updated_at` always moves forward, even when two changes land in one millisecond
                // or a node's clock is behind: clients compare it to see that something changed.
                let updated_at = now_millis().max(current.updated_at + 1);
                tx.execute(
                    "UPDATE connectors SET patterns = $1, placement = $2, scrub_echo = $3, secret_ciphertext = $4,
                        secret_nonce = $5, key_version = $6, updated_at = $7 WHERE id = $8",
                    params![
                        patterns_to_json(patterns),
                        placement_to_json(placement),
                        scrub_echo,
                        &sealed.ciphertext[..],
                        &sealed.nonce[..],
                        sealed.key_version,
                        updated_at,
                        &connector_id,
                    ],
                )
                .await
                .context("updating a connector")?;
                audit(
                    tx,
                    &actor,
                    "connector.update",
                    Some(&workspace_id),
                    &current.workspace_name,
                    Some(&current.name),
                    &changes.describe(),
                )
                .await?;
                connector_by_id(tx, &connector_id, "").await?.ok_or_else(|| {
                    StoreError::Schema("a connector just updated cannot be read back".into())
                })
            })
        }))
        .await
    }

    async fn delete_connector(
        &self,
        workspace: &str,
        name: &str,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let (workspace, name, actor) = (workspace.to_string(), name.to_string(), actor.clone());
        self.write(job(move |tx| {
            Box::pin(async move {
                let rec = connector_by_name(tx, &workspace, &name).await?;
                let n = tx
                    .execute("DELETE FROM connectors WHERE id = $1", params![&rec.id])
                    .await
                    .context("deleting a connector")?;
                if n == 0 {
                    // Deleted by another node meanwhile.
                    return Err(StoreError::connector_not_found(&rec.workspace_name, &name));
                }
                audit(
                    tx,
                    &actor,
                    "connector.delete",
                    Some(&rec.workspace_id),
                    &rec.workspace_name,
                    Some(&rec.name),
                    "",
                )
                .await
            })
        }))
        .await
    }

    async fn audit_log(
        &self,
        workspace: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let workspace = workspace.map(str::to_string);
        self.read(job(move |tx| {
            Box::pin(async move {
                let ws_id = match &workspace {
                    Some(name) => Some(find_workspace(tx, name).await?.id),
                    None => None,
                };
                tx.query(
                    "SELECT id, at, actor, action, workspace, connector, detail, address FROM audit_log
                     WHERE (CAST($1 AS TEXT) IS NULL OR workspace_id = $1)
                       AND (CAST($2 AS BIGINT) IS NULL OR id < $2)
                     ORDER BY id DESC LIMIT $3",
                    params![ws_id, before, i64::from(limit)],
                )
                .await
                .context("reading the audit trail")?
                .iter()
                .map(|r| {
                    Ok(AuditEntry {
                        id: r.int(0)?,
                        at: r.int(1)?,
                        actor: r.text(2)?,
                        action: r.text(3)?,
                        workspace: r.text(4)?,
                        connector: r.opt_text(5)?,
                        detail: r.text(6)?,
                        address: r.opt_text(7)?,
                    })
                })
                .collect()
            })
        }))
        .await
    }

    async fn key_check(&self, version: u32) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(job(move |tx| {
            Box::pin(async move {
                tx.query_opt(
                    "SELECT check_value FROM master_key_checks WHERE version = $1",
                    params![version],
                )
                .await
                .context("reading key checks")?
                .map(|r| r.blob(0))
                .transpose()
            })
        }))
        .await
    }

    async fn record_key_check(&self, version: u32, check: &[u8]) -> Result<(), StoreError> {
        let check = check.to_vec();
        // In one transaction: the value read back is the one that stays recorded.
        self.write(job(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO master_key_checks (version, check_value, created_at) VALUES ($1, $2, $3)
                     ON CONFLICT (version) DO NOTHING",
                    params![version, &check[..], now_millis()],
                )
                .await
                .context("recording a key check")?;
                let stored = tx
                    .query_opt(
                        "SELECT check_value FROM master_key_checks WHERE version = $1",
                        params![version],
                    )
                    .await
                    .context("reading key checks")?
                    .map(|r| r.blob(0))
                    .transpose()?;
                if stored.as_deref() != Some(&check[..]) {
                    return Err(StoreError::KeyMismatch(version));
                }
                Ok(())
            })
        }))
        .await
    }

    async fn reencrypt_secrets(
        &self,
        rekey: Rekey,
        to_version: u32,
        actor: &Actor,
    ) -> Result<u64, StoreError> {
        let actor = actor.clone();
        let lock = B::DIALECT.for_update("c");
        self.write(job(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        &format!(
                            "SELECT c.workspace_id, w.name, c.id, c.name, c.secret_ciphertext, c.secret_nonce, c.key_version
                             FROM connectors c JOIN workspaces w ON w.id = c.workspace_id ORDER BY c.id{lock}"
                        ),
                        &[],
                    )
                    .await
                    .context("reading secrets")?;
                let mut count = 0u64;
                for r in &rows {
                    let connector_name = r.text(3)?;
                    let row = SecretRow {
                        workspace_id: r.text(0)?,
                        workspace_name: r.text(1)?,
                        connector_id: r.text(2)?,
                        sealed: Sealed {
                            ciphertext: r.blob(4)?,
                            nonce: r.blob(5)?,
                            key_version: key_version(r.int(6)?, &connector_name)?,
                        },
                        connector_name,
                    };
                    let sealed = rekey(&row)?;
                    tx.execute(
                        "UPDATE connectors SET secret_ciphertext = $1, secret_nonce = $2, key_version = $3 WHERE id = $4",
                        params![sealed.ciphertext, sealed.nonce, sealed.key_version, &row.connector_id],
                    )
                    .await
                    .context("re-encrypting a secret")?;
                    count += 1;
                }
                audit(
                    tx,
                    &actor,
                    "key.rotate",
                    None,
                    "",
                    None,
                    &format!("{count} secret(s) re-encrypted with key version {to_version}"),
                )
                .await?;
                Ok(count)
            })
        }))
        .await
    }

    async fn reencrypt_run_io(&self, rekey: RekeyRunIo) -> Result<u64, StoreError> {
        let lock = B::DIALECT.for_update("runs");
        self.write(job(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        &format!(
                            "SELECT id, workspace_id, input_ciphertext, input_nonce, output_ciphertext, output_nonce,
                                io_key_version
                             FROM runs WHERE io_key_version IS NOT NULL ORDER BY id{lock}"
                        ),
                        &[],
                    )
                    .await
                    .context("reading sealed run input and output")?;
                let mut count = 0u64;
                for r in &rows {
                    let run_id = r.text(0)?;
                    let Some(io) = run_io_at(r, 2, &run_id)? else {
                        continue;
                    };
                    let row = RunIoRow {
                        workspace_id: r.text(1)?,
                        run_id,
                        io,
                    };
                    let io = rekey(&row)?;
                    tx.execute(
                        "UPDATE runs SET input_ciphertext = $1, input_nonce = $2, output_ciphertext = $3,
                            output_nonce = $4, io_key_version = $5 WHERE id = $6",
                        params![
                            io.input.ciphertext.as_slice(),
                            io.input.nonce.as_slice(),
                            io.output.as_ref().map(|o| o.ciphertext.as_slice()),
                            io.output.as_ref().map(|o| o.nonce.as_slice()),
                            io.input.key_version,
                            row.run_id.as_str()
                        ],
                    )
                    .await
                    .context("re-encrypting a run's input and output")?;
                    count += 1;
                }
                Ok(count)
            })
        }))
        .await
    }

    async fn set_keep_run_io(
        &self,
        workspace: &str,
        keep: bool,
        actor: &Actor,
    ) -> Result<Workspace, StoreError> {
        let (workspace, actor) = (workspace.to_string(), actor.clone());
        self.write(job(move |tx| {
            Box::pin(async move {
                let mut ws = find_workspace(tx, &workspace).await?;
                tx.execute(
                    "UPDATE workspaces SET keep_run_io = $1 WHERE id = $2",
                    params![keep, ws.id.as_str()],
                )
                .await
                .context("changing a workspace's settings")?;
                audit(
                    tx,
                    &actor,
                    "workspace.update",
                    Some(&ws.id),
                    &ws.name,
                    None,
                    &format!("keep_run_io {}", if keep { "on" } else { "off" }),
                )
                .await?;
                ws.keep_run_io = keep;
                Ok(ws)
            })
        }))
        .await
    }

    async fn create_api_token(
        &self,
        workspace: &str,
        name: &str,
        token_hash: &[u8],
        grant: &TokenGrant,
        actor: &Actor,
    ) -> Result<ApiToken, StoreError> {
        let (workspace, name, hash, grant, actor) = (
            workspace.to_string(),
            name.to_string(),
            token_hash.to_vec(),
            grant.clone(),
            actor.clone(),
        );
        let id = new_id();
        self.write(job(move |tx| {
            Box::pin(async move {
                let ws = find_workspace(tx, &workspace).await?;
                let token = ApiToken {
                    id,
                    workspace_id: ws.id.clone(),
                    workspace_name: ws.name.clone(),
                    name,
                    created_at: now_millis(),
                    last_used_at: None,
                    revoked_at: None,
                    scopes: grant.scopes,
                    expires_at: grant.expires_at,
                };
                tx.execute(
                    "INSERT INTO api_tokens (id, workspace_id, name, token_hash, created_at, scopes, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    params![
                        &token.id,
                        &token.workspace_id,
                        &token.name,
                        hash,
                        token.created_at,
                        token.scopes.to_stored(),
                        token.expires_at
                    ],
                )
                .await
                .context("creating a token")?;
                audit(
                    tx,
                    &actor,
                    "token.create",
                    Some(&ws.id),
                    &ws.name,
                    None,
                    &format!(
                        "token {} ({:?}), scopes {}{}",
                        token.id,
                        token.name,
                        token.scopes,
                        token
                            .expires_at
                            .map(|at| format!(", expires {}", super::format_time(at)))
                            .unwrap_or_default()
                    ),
                )
                .await?;
                Ok(token)
            })
        }))
        .await
    }

    async fn list_api_tokens(&self, workspace: &str) -> Result<Vec<ApiToken>, StoreError> {
        let workspace = workspace.to_string();
        self.read(job(move |tx| {
            Box::pin(async move {
                let ws = find_workspace(tx, &workspace).await?;
                tx.query(
                    &format!(
                        "{TOKEN_SELECT} WHERE t.workspace_id = $1 ORDER BY t.created_at, t.id"
                    ),
                    params![&ws.id],
                )
                .await
                .context("listing tokens")?
                .iter()
                .map(token_row)
                .collect()
            })
        }))
        .await
    }

    async fn authenticate_api_token(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<ApiToken>, StoreError> {
        let hash = token_hash.to_vec();
        let token = self
            .read(job(move |tx| {
                Box::pin(async move {
                    tx.query_opt(
                        &format!(
                            "{TOKEN_SELECT} WHERE t.token_hash = $1 AND t.revoked_at IS NULL
                             AND (t.expires_at IS NULL OR t.expires_at > $2)"
                        ),
                        params![hash, now_millis()],
                    )
                    .await
                    .context("checking a token")?
                    .map(|r| token_row(&r))
                    .transpose()
                })
            }))
            .await?;
        let Some(mut token) = token else {
            return Ok(None);
        };
        let now = now_millis();
        if token_use_due(token.last_used_at, now) {
            let id = token.id.clone();
            self.write(job(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2",
                        params![now, id],
                    )
                    .await
                    .context("recording a token's use")
                })
            }))
            .await?;
            token.last_used_at = Some(now);
        }
        Ok(Some(token))
    }

    async fn revoke_api_token(
        &self,
        workspace: &str,
        token_id: &str,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let (workspace, token_id, actor) =
            (workspace.to_string(), token_id.to_string(), actor.clone());
        self.write(job(move |tx| {
            Box::pin(async move {
                let ws = find_workspace(tx, &workspace).await?;
                let n = tx
                    .execute(
                        "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND workspace_id = $3 AND revoked_at IS NULL",
                        params![now_millis(), &token_id, &ws.id],
                    )
                    .await
                    .context("revoking a token")?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!(
                        "no live token {token_id:?} in workspace {:?}",
                        ws.name
                    )));
                }
                audit(
                    tx,
                    &actor,
                    "token.revoke",
                    Some(&ws.id),
                    &ws.name,
                    None,
                    &format!("token {token_id}"),
                )
                .await
            })
        }))
        .await
    }

    async fn record_fetch_attempts(
        &self,
        workspace_id: Option<&str>,
        attempts: &[FetchAttempt],
    ) -> Result<(), StoreError> {
        if attempts.is_empty() {
            return Ok(());
        }
        let deltas = BucketDeltas::of(workspace_id, attempts);
        let workspace_id = workspace_id.map(str::to_string);
        let statements = attempt_statements(workspace_id.as_deref(), attempts);
        self.write(job(move |tx| {
            Box::pin(async move {
                for (sql, bind) in &statements {
                    tx.execute(sql, bind).await.context("recording fetches")?;
                }
                // Last, so the bucket rows (shared by every step of the connector in that minute)
                // stay locked only until the commit that follows.
                if let Some(ws) = &workspace_id {
                    add_bucket_deltas(tx, ws, &deltas).await?;
                }
                Ok(())
            })
        }))
        .await
    }

    async fn record_run(
        &self,
        run: &RunRecord,
        attempts: &[FetchAttempt],
    ) -> Result<(), StoreError> {
        let deltas = BucketDeltas::of(Some(&run.workspace_id), attempts);
        let statements = attempt_statements(Some(&run.workspace_id), attempts);
        let run = run.clone();
        self.write(job(move |tx| {
            Box::pin(async move {
                // Idempotent on the run id: a retry after a commit whose answer was lost finds the
                // run there and writes nothing twice.
                let io = run.io.as_ref();
                let inserted = tx.execute(
                    "INSERT INTO runs (id, workspace_id, started_at, ended_at, step_hash, token, outcome,
                        error_message, duration_ms, fetches, output_bytes, logs_dropped, logs,
                        input_ciphertext, input_nonce, output_ciphertext, output_nonce, io_key_version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
                     ON CONFLICT (id) DO NOTHING",
                    params![
                        run.id.as_str(),
                        run.workspace_id.as_str(),
                        run.started_at,
                        run.ended_at,
                        run.step_hash.as_str(),
                        run.token.as_str(),
                        run.outcome.as_str(),
                        run.error_message.as_deref(),
                        run.duration_ms,
                        i64::from(run.fetches),
                        run.output_bytes as i64,
                        run.logs_dropped as i64,
                        run.logs.as_str(),
                        io.map(|io| io.input.ciphertext.as_slice()),
                        io.map(|io| io.input.nonce.as_slice()),
                        io.and_then(|io| io.output.as_ref()).map(|o| o.ciphertext.as_slice()),
                        io.and_then(|io| io.output.as_ref()).map(|o| o.nonce.as_slice()),
                        io.map(|io| io.input.key_version)
                    ],
                )
                .await
                .context("recording a run")?;
                if inserted == 0 {
                    return Ok(());
                }
                for (sql, bind) in &statements {
                    tx.execute(sql, bind).await.context("recording fetches")?;
                }
                add_bucket_deltas(tx, &run.workspace_id, &deltas).await?;
                Ok(())
            })
        }))
        .await
    }

    async fn runs(&self, workspace: &str, q: &RunQuery) -> Result<RunPage, StoreError> {
        let workspace = workspace.to_string();
        let q = q.clone();
        self.read(job(move |tx| {
            Box::pin(async move {
                let ws = find_workspace(tx, &workspace).await?;
                let page = FetchLogQuery {
                    limit: q.limit,
                    ..Default::default()
                }
                .page_size();
                let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE workspace_id = $1");
                let mut bind: Vec<Value> = vec![Value::from(ws.id.as_str())];
                let arg = |sql: &mut String, bind: &mut Vec<Value>, cond: &str, v: Value| {
                    bind.push(v);
                    sql.push_str(&cond.replace('?', &format!("${}", bind.len())));
                };
                if let Some(o) = &q.outcome {
                    arg(
                        &mut sql,
                        &mut bind,
                        " AND outcome = ?",
                        Value::from(o.as_str()),
                    );
                }
                if let Some(t) = q.since {
                    arg(&mut sql, &mut bind, " AND started_at >= ?", Value::from(t));
                }
                if let Some(t) = q.until {
                    arg(&mut sql, &mut bind, " AND started_at <= ?", Value::from(t));
                }
                if let Some(c) = &q.connector {
                    arg(
                        &mut sql,
                        &mut bind,
                        " AND id IN (SELECT run_id FROM fetch_attempts WHERE connector_key = ?)",
                        Value::from(name_key(c).as_str()),
                    );
                }
                if let Some(c) = &q.before {
                    bind.push(Value::from(c.started_at));
                    let at = bind.len();
                    bind.push(Value::from(c.id.as_str()));
                    let id = bind.len();
                    sql.push_str(&format!(
                        " AND (started_at < ${at} OR (started_at = ${at} AND id < ${id}))"
                    ));
                }
                bind.push(Value::from(i64::from(page) + 1));
                sql.push_str(&format!(
                    " ORDER BY started_at DESC, id DESC LIMIT ${}",
                    bind.len()
                ));
                let mut items = tx
                    .query(&sql, &bind)
                    .await
                    .context("reading runs")?
                    .iter()
                    .map(run_row)
                    .collect::<Result<Vec<_>, StoreError>>()?;
                let more = items.len() > page as usize;
                items.truncate(page as usize);
                let next = more.then(|| items.last()).flatten().map(|r| RunCursor {
                    started_at: r.started_at,
                    id: r.id.clone(),
                });
                Ok(RunPage { items, next })
            })
        }))
        .await
    }

    async fn run(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<(RunRecord, Vec<FetchAttempt>), StoreError> {
        let workspace = workspace.to_string();
        let id = id.to_string();
        self.read(job(move |tx| {
            Box::pin(async move {
                let ws = find_workspace(tx, &workspace).await?;
                let run = tx
                    .query_opt(
                        &format!("SELECT {RUN_COLUMNS} FROM runs WHERE workspace_id = $1 AND id = $2"),
                        params![ws.id.as_str(), id.as_str()],
                    )
                    .await
                    .context("reading a run")?
                    .map(|r| run_row(&r))
                    .transpose()?
                    .ok_or_else(|| {
                        StoreError::NotFound(format!(
                            "run {id:?} not found in workspace {workspace:?}"
                        ))
                    })?;
                let attempts = tx
                    .query(
                        &format!(
                            "SELECT {FETCH_COLUMNS} FROM fetch_attempts WHERE workspace_id = $1 AND run_id = $2 ORDER BY id"
                        ),
                        params![ws.id.as_str(), id.as_str()],
                    )
                    .await
                    .context("reading a run's fetches")?
                    .iter()
                    .map(|r| fetch_attempt_at(r, 0))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                Ok((run, attempts))
            })
        }))
        .await
    }

    async fn fetch_attempts(
        &self,
        workspace: &str,
        limit: u32,
    ) -> Result<Vec<FetchAttempt>, StoreError> {
        let workspace = workspace.to_string();
        self.read(job(move |tx| {
            Box::pin(async move {
                let ws = find_workspace(tx, &workspace).await?;
                tx.query(
                    &format!("SELECT {FETCH_COLUMNS} FROM fetch_attempts WHERE workspace_id = $1 ORDER BY id DESC LIMIT $2"),
                    params![&ws.id, i64::from(limit)],
                )
                .await
                .context("reading fetches")?
                .iter()
                .map(|r| fetch_attempt_at(r, 0))
                .collect()
            })
        }))
        .await
    }

    async fn connector_counts(
        &self,
        workspace: &str,
        since: Millis,
    ) -> Result<HashMap<String, Counts>, StoreError> {
        let workspace = workspace.to_string();
        let sql = counts_sql(B::DIALECT);
        self.read(job(move |tx| {
            Box::pin(async move {
                let ws = find_workspace(tx, &workspace).await?;
                tx.query(sql, params![&ws.id, window_start(since)])
                    .await
                    .context("reading counts")?
                    .iter()
                    .map(|r| {
                        Ok((
                            r.text(0)?,
                            Counts {
                                requests: count(r.int(1)?),
                                errors: count(r.int(2)?),
                            },
                        ))
                    })
                    .collect()
            })
        }))
        .await
    }

    async fn connector_series(
        &self,
        workspace: &str,
        connector: &str,
        since: Millis,
        bucket: Millis,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        // Validate the shape before touching the database.
        dense_series([], since, bucket, now_millis())?;
        let (workspace, key) = (workspace.to_string(), name_key(connector));
        let sql = series_sql(B::DIALECT);
        let rows = self
            .read(job(move |tx| {
                Box::pin(async move {
                    let ws = find_workspace(tx, &workspace).await?;
                    tx.query(sql, params![&ws.id, key, window_start(since)])
                        .await
                        .context("reading a series")?
                        .iter()
                        .map(|r| Ok((r.int(0)?, count(r.int(1)?), count(r.int(2)?))))
                        .collect::<Result<Vec<_>, StoreError>>()
                })
            }))
            .await?;
        dense_series(rows, since, bucket, now_millis())
    }

    async fn recent_outcomes(
        &self,
        workspace: &str,
        connectors: &[String],
        since: Millis,
        sample: u32,
    ) -> Result<HashMap<String, RecentOutcomes>, StoreError> {
        let workspace = workspace.to_string();
        let connectors = connectors.to_vec();
        let last_error = last_error_sql();
        self.read(job(move |tx| {
            Box::pin(async move {
                let ws = find_workspace(tx, &workspace).await?;
                let mut out = HashMap::with_capacity(connectors.len());
                for name in connectors {
                    let key = name_key(&name);
                    let recent = tx
                        .query(
                            RECENT_OUTCOMES_SQL,
                            params![ws.id.as_str(), key.as_str(), since, i64::from(sample)],
                        )
                        .await
                        .context("reading recent fetches")?
                        .iter()
                        .map(|r| stored_outcome(&r.text(0)?))
                        .collect::<Result<Vec<_>, StoreError>>()?;
                    let last_error_at = tx
                        .query_opt(&last_error, params![ws.id.as_str(), key.as_str()])
                        .await
                        .context("reading the last error")?
                        .map(|r| r.int(0))
                        .transpose()?;
                    out.insert(
                        name,
                        RecentOutcomes {
                            recent,
                            last_error_at,
                        },
                    );
                }
                Ok(out)
            })
        }))
        .await
    }

    async fn fetch_log(
        &self,
        workspace: &str,
        q: &FetchLogQuery,
    ) -> Result<FetchLogPage, StoreError> {
        let workspace = workspace.to_string();
        let q = q.clone();
        self.read(job(move |tx| {
            Box::pin(async move {
                let ws = find_workspace(tx, &workspace).await?;
                let (sql, bind, page) = fetch_log_sql(ws.id, &q);
                let items = tx
                    .query(&sql, &bind)
                    .await
                    .context("reading the fetch log")?
                    .iter()
                    .map(|r| {
                        Ok(FetchLogEntry {
                            id: r.int(0)?,
                            outcome: stored_outcome(&r.text(1)?)?,
                            attempt: fetch_attempt_at(r, 2)?,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                Ok(page_of(items, page))
            })
        }))
        .await
    }

    async fn blocked_count(&self, workspace: &str, since: Millis) -> Result<u64, StoreError> {
        let workspace = workspace.to_string();
        self.read(job(move |tx| {
            Box::pin(async move {
                let ws = find_workspace(tx, &workspace).await?;
                let n = tx
                    .query_opt(BLOCKED_COUNT_SQL, params![&ws.id, window_start(since)])
                    .await
                    .context("reading blocked counts")?
                    .map(|r| r.int(0))
                    .transpose()?
                    .unwrap_or(0);
                Ok(count(n))
            })
        }))
        .await
    }

    async fn prune_fetch_attempts(
        &self,
        older_than: Millis,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let batch = i64::from(batch.clamp(1, PRUNE_MAX_BATCH));
        let skip = B::DIALECT.skip_locked();
        let statements = [
            (
                format!("DELETE FROM fetch_attempts WHERE id IN ({PRUNE_SELECT_SQL}{skip})"),
                older_than,
            ),
            (
                format!(
                    "DELETE FROM fetch_buckets WHERE (workspace_id, minute, connector_key) IN
                        (SELECT workspace_id, minute, connector_key FROM fetch_buckets WHERE minute < $1
                         ORDER BY minute LIMIT $2{skip})"
                ),
                minute_of(older_than),
            ),
            (
                format!(
                    "DELETE FROM runs WHERE id IN
                        (SELECT id FROM runs WHERE started_at < $1 ORDER BY started_at LIMIT $2{skip})"
                ),
                older_than,
            ),
            (
                format!(
                    "DELETE FROM blocked_buckets WHERE (workspace_id, minute) IN
                        (SELECT workspace_id, minute FROM blocked_buckets WHERE minute < $1
                         ORDER BY minute LIMIT $2{skip})"
                ),
                minute_of(older_than),
            ),
        ];
        let mut deleted = 0u64;
        // Each batch is its own short write transaction, so steps recording attempts meanwhile (here
        // or on another node) wait at most one batch, and readers never wait.
        for (i, (sql, cutoff)) in statements.into_iter().enumerate() {
            loop {
                let started = std::time::Instant::now();
                let sql = sql.clone();
                let n = self
                    .write(job(move |tx| {
                        Box::pin(async move {
                            tx.execute(&sql, params![cutoff, batch])
                                .await
                                .context("pruning fetch records")
                        })
                    }))
                    .await?;
                if i == 0 {
                    deleted += n;
                }
                if n < batch as u64 {
                    break;
                }
                if B::DIALECT == Dialect::Sqlite {
                    // A writer of another process waiting on SQLite's lock polls at growing intervals
                    // (its busy handler) and would otherwise keep finding it taken: pause for twice
                    // as long as the batch took.
                    tokio::time::sleep((started.elapsed() * 2).min(PRUNE_PAUSE_MAX)).await;
                }
            }
        }
        Ok(deleted)
    }
}
