//! The SQLite store: one file, WAL journal, `synchronous=FULL`, a busy timeout so several processes can
//! share the file. Every write is one `BEGIN IMMEDIATE` transaction. Blocking calls run on tokio's
//! blocking pool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::migrate;
use super::{
    dense_series, fetch_log_terms, minute_of, name_key, new_id, now_millis, page_of,
    patterns_from_json, patterns_to_json, placement_from_json, placement_to_json, stored_outcome,
    window_start, ApiToken, AuditEntry, BucketDeltas, ConnectorChanges, ConnectorRecord, Counts,
    FetchAttempt, FetchLogEntry, FetchLogPage, FetchLogQuery, Millis, NewConnectorRow, Rekey,
    SecretRow, SeriesPoint, Store, StoreError, Workspace, PRUNE_MAX_BATCH,
};
use crate::vault::Sealed;

const BACKEND: &str = "sqlite";
/// The longest pause between two retention batches (see `prune_fetch_attempts`).
const PRUNE_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(100);
/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT_MS: u64 = 30_000;

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

fn db_err(context: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::backend(BACKEND, context, e)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation
            && f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

impl SqliteStore {
    /// Opens (creating if needed) the SQLite file at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_blocking(&p))
            .await
            .map_err(|e| StoreError::backend(BACKEND, "opening the store", e))??;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::backend(BACKEND, "running a query", e))?
    }
}

fn open_blocking(path: &Path) -> Result<Connection, StoreError> {
    let location = path.display().to_string();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Config(format!(
                "cannot create the store directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    if !path.exists() {
        // Create the file private to its owner before SQLite opens it: it holds sealed secrets.
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
    }
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Config(format!("cannot open the SQLite store {location}: {e}")))?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
        .map_err(db_err("setting the busy timeout"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| StoreError::Config(format!("{location} is not a usable SQLite store: {e}")))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Config(format!(
            "cannot switch {location} to WAL journal mode (it reports {mode:?})"
        )));
    }
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        .map_err(db_err("setting pragmas"))?;
    migrate_blocking(&conn, &location)?;
    Ok(conn)
}

fn migrate_blocking(conn: &Connection, location: &str) -> Result<(), StoreError> {
    // Fast path: read the version without taking the write lock.
    if let Ok(found) = current_version(conn) {
        migrate::check_not_newer(found, migrate::SQLITE, location)?;
        if migrate::pending(found, migrate::SQLITE).is_empty() {
            return Ok(());
        }
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(db_err("starting the migration"))?;
    tx.execute_batch(migrate::SCHEMA_TABLE_DDL)
        .map_err(db_err("creating the schema table"))?;
    let found = current_version(&tx)?;
    migrate::check_not_newer(found, migrate::SQLITE, location)?;
    for m in migrate::pending(found, migrate::SQLITE) {
        tx.execute_batch(m.sql).map_err(|e| {
            StoreError::Schema(format!(
                "migration {} ({}) failed on {location}: {e}",
                m.version, m.name
            ))
        })?;
        tx.execute(
            "INSERT INTO codestep_schema (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, now_millis()],
        )
        .map_err(db_err("recording a migration"))?;
    }
    tx.commit().map_err(db_err("committing the migration"))
}

fn current_version(conn: &Connection) -> Result<u32, StoreError> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM codestep_schema",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|v| v as u32)
    .map_err(db_err("reading the schema version"))
}

fn audit(
    conn: &Connection,
    actor: &str,
    action: &str,
    workspace_id: Option<&str>,
    workspace: &str,
    connector: Option<&str>,
    detail: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, workspace_id, workspace, connector, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            now_millis(),
            actor,
            action,
            workspace_id,
            workspace,
            connector,
            detail
        ],
    )
    .map_err(db_err("writing the audit trail"))?;
    Ok(())
}

fn find_workspace(conn: &Connection, name: &str) -> Result<Workspace, StoreError> {
    conn.query_row(
        "SELECT id, name, created_at FROM workspaces WHERE name_key = ?1",
        params![name_key(name)],
        |r| {
            Ok(Workspace {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
            })
        },
    )
    .optional()
    .map_err(db_err("reading a workspace"))?
    .ok_or_else(|| StoreError::workspace_not_found(name))
}

const CONNECTOR_COLUMNS: &str =
    "c.id, c.workspace_id, w.name, c.name, c.patterns, c.placement, c.scrub_echo,
     c.secret_ciphertext, c.secret_nonce, c.key_version, c.created_at, c.updated_at";

struct RawConnector {
    id: String,
    workspace_id: String,
    workspace_name: String,
    name: String,
    patterns: String,
    placement: String,
    scrub_echo: bool,
    ciphertext: Vec<u8>,
    nonce: Vec<u8>,
    key_version: i64,
    created_at: i64,
    updated_at: i64,
}

fn raw_connector(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawConnector> {
    Ok(RawConnector {
        id: r.get(0)?,
        workspace_id: r.get(1)?,
        workspace_name: r.get(2)?,
        name: r.get(3)?,
        patterns: r.get(4)?,
        placement: r.get(5)?,
        scrub_echo: r.get(6)?,
        ciphertext: r.get(7)?,
        nonce: r.get(8)?,
        key_version: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

impl RawConnector {
    fn into_record(self) -> Result<ConnectorRecord, StoreError> {
        let key_version = u32::try_from(self.key_version).map_err(|_| {
            StoreError::Schema(format!(
                "connector {:?} has an impossible key version",
                self.name
            ))
        })?;
        Ok(ConnectorRecord {
            patterns: patterns_from_json(&self.patterns, &self.name)?,
            placement: placement_from_json(&self.placement, &self.name)?,
            sealed: Sealed {
                ciphertext: self.ciphertext,
                nonce: self.nonce,
                key_version,
            },
            id: self.id,
            workspace_id: self.workspace_id,
            workspace_name: self.workspace_name,
            name: self.name,
            scrub_echo: self.scrub_echo,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn connector_by_id(
    conn: &Connection,
    connector_id: &str,
) -> Result<Option<ConnectorRecord>, StoreError> {
    conn.query_row(
        &format!("SELECT {CONNECTOR_COLUMNS} FROM connectors c JOIN workspaces w ON w.id = c.workspace_id WHERE c.id = ?1"),
        params![connector_id],
        raw_connector,
    )
    .optional()
    .map_err(db_err("reading a connector"))?
    .map(RawConnector::into_record)
    .transpose()
}

fn connector_by_name(
    conn: &Connection,
    workspace: &str,
    name: &str,
) -> Result<ConnectorRecord, StoreError> {
    let ws = find_workspace(conn, workspace)?;
    conn.query_row(
        &format!("SELECT {CONNECTOR_COLUMNS} FROM connectors c JOIN workspaces w ON w.id = c.workspace_id WHERE c.workspace_id = ?1 AND c.name_key = ?2"),
        params![ws.id, name_key(name)],
        raw_connector,
    )
    .optional()
    .map_err(db_err("reading a connector"))?
    .ok_or_else(|| StoreError::connector_not_found(&ws.name, name))?
    .into_record()
}

fn immediate(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err("starting a transaction"))
}

#[async_trait]
impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("SQLite file {}", self.path.display())
    }

    async fn schema_version(&self) -> Result<u32, StoreError> {
        self.run(|c| current_version(c)).await
    }

    async fn create_workspace(&self, name: &str, actor: &str) -> Result<Workspace, StoreError> {
        let (name, actor) = (name.to_string(), actor.to_string());
        let id = new_id()?;
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM workspaces WHERE name_key = ?1)",
                    params![name_key(&name)],
                    |r| r.get(0),
                )
                .map_err(db_err("checking workspace names"))?;
            if exists {
                return Err(StoreError::workspace_conflict(&name));
            }
            let ws = Workspace {
                id,
                name,
                created_at: now_millis(),
            };
            tx.execute(
                "INSERT INTO workspaces (id, name, name_key, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![ws.id, ws.name, name_key(&ws.name), ws.created_at],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::workspace_conflict(&ws.name)
                } else {
                    StoreError::backend(BACKEND, "creating a workspace", e)
                }
            })?;
            audit(
                &tx,
                &actor,
                "workspace.create",
                Some(&ws.id),
                &ws.name,
                None,
                "",
            )?;
            tx.commit().map_err(db_err("committing"))?;
            Ok(ws)
        })
        .await
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        self.run(|conn| {
            let mut stmt = conn
                .prepare("SELECT id, name, created_at FROM workspaces ORDER BY name_key")
                .map_err(db_err("listing workspaces"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Workspace {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                })
                .map_err(db_err("listing workspaces"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(db_err("listing workspaces"))
        })
        .await
    }

    async fn workspace(&self, name: &str) -> Result<Workspace, StoreError> {
        let name = name.to_string();
        self.run(move |conn| find_workspace(conn, &name)).await
    }

    async fn delete_workspace(&self, name: &str, actor: &str) -> Result<u64, StoreError> {
        let (name, actor) = (name.to_string(), actor.to_string());
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let ws = find_workspace(&tx, &name)?;
            let deleted = tx
                .execute(
                    "DELETE FROM connectors WHERE workspace_id = ?1",
                    params![ws.id],
                )
                .map_err(db_err("deleting connectors"))?;
            tx.execute("DELETE FROM workspaces WHERE id = ?1", params![ws.id])
                .map_err(db_err("deleting a workspace"))?;
            audit(
                &tx,
                &actor,
                "workspace.delete",
                Some(&ws.id),
                &ws.name,
                None,
                &format!("{deleted} connector(s) deleted with it"),
            )?;
            tx.commit().map_err(db_err("committing"))?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn insert_connector(
        &self,
        row: NewConnectorRow,
        actor: &str,
    ) -> Result<ConnectorRecord, StoreError> {
        let actor = actor.to_string();
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let ws_name: String = tx
                .query_row("SELECT name FROM workspaces WHERE id = ?1", params![row.workspace_id], |r| r.get(0))
                .optional()
                .map_err(db_err("reading a workspace"))?
                .ok_or_else(|| StoreError::NotFound("the workspace was deleted meanwhile".into()))?;
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM connectors WHERE workspace_id = ?1 AND name_key = ?2)",
                    params![row.workspace_id, name_key(&row.name)],
                    |r| r.get(0),
                )
                .map_err(db_err("checking connector names"))?;
            if exists {
                return Err(StoreError::connector_conflict(&ws_name, &row.name));
            }
            let now = now_millis();
            tx.execute(
                "INSERT INTO connectors (id, workspace_id, name, name_key, patterns, placement, scrub_echo,
                    secret_ciphertext, secret_nonce, key_version, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
                params![
                    row.id,
                    row.workspace_id,
                    row.name,
                    name_key(&row.name),
                    patterns_to_json(&row.patterns),
                    placement_to_json(&row.placement),
                    row.scrub_echo,
                    row.sealed.ciphertext,
                    row.sealed.nonce,
                    row.sealed.key_version,
                    now,
                ],
            )
            .map_err(|e| if is_unique_violation(&e) { StoreError::connector_conflict(&ws_name, &row.name) } else { StoreError::backend(BACKEND, "creating a connector", e) })?;
            audit(&tx, &actor, "connector.create", Some(&row.workspace_id), &ws_name, Some(&row.name), "")?;
            let rec = connector_by_id(&tx, &row.id)?.ok_or_else(|| StoreError::backend(BACKEND, "creating a connector", "the new row is missing"))?;
            tx.commit().map_err(db_err("committing"))?;
            Ok(rec)
        })
        .await
    }

    async fn list_connectors(&self, workspace: &str) -> Result<Vec<ConnectorRecord>, StoreError> {
        let workspace = workspace.to_string();
        self.run(move |conn| {
            let ws = find_workspace(conn, &workspace)?;
            let mut stmt = conn
                .prepare(&format!("SELECT {CONNECTOR_COLUMNS} FROM connectors c JOIN workspaces w ON w.id = c.workspace_id WHERE c.workspace_id = ?1 ORDER BY c.name_key"))
                .map_err(db_err("listing connectors"))?;
            let rows = stmt.query_map(params![ws.id], raw_connector).map_err(db_err("listing connectors"))?;
            let raws = rows.collect::<Result<Vec<_>, _>>().map_err(db_err("listing connectors"))?;
            raws.into_iter().map(RawConnector::into_record).collect()
        })
        .await
    }

    async fn connector(&self, workspace: &str, name: &str) -> Result<ConnectorRecord, StoreError> {
        let (workspace, name) = (workspace.to_string(), name.to_string());
        self.run(move |conn| connector_by_name(conn, &workspace, &name))
            .await
    }

    async fn update_connector(
        &self,
        workspace_id: &str,
        connector_id: &str,
        changes: ConnectorChanges,
        actor: &str,
    ) -> Result<ConnectorRecord, StoreError> {
        let (workspace_id, connector_id, actor) = (
            workspace_id.to_string(),
            connector_id.to_string(),
            actor.to_string(),
        );
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let current = connector_by_id(&tx, &connector_id)?
                .filter(|c| c.workspace_id == workspace_id)
                .ok_or_else(|| StoreError::NotFound("the connector was deleted meanwhile".into()))?;
            let patterns = changes.patterns.as_ref().unwrap_or(&current.patterns);
            let placement = changes.placement.as_ref().unwrap_or(&current.placement);
            let scrub_echo = changes.scrub_echo.unwrap_or(current.scrub_echo);
            let sealed = changes.sealed.as_ref().unwrap_or(&current.sealed);
            tx.execute(
                "UPDATE connectors SET patterns = ?1, placement = ?2, scrub_echo = ?3, secret_ciphertext = ?4,
                    secret_nonce = ?5, key_version = ?6, updated_at = ?7 WHERE id = ?8",
                params![
                    patterns_to_json(patterns),
                    placement_to_json(placement),
                    scrub_echo,
                    sealed.ciphertext,
                    sealed.nonce,
                    sealed.key_version,
                    now_millis().max(current.updated_at + 1),
                    connector_id,
                ],
            )
            .map_err(db_err("updating a connector"))?;
            audit(&tx, &actor, "connector.update", Some(&workspace_id), &current.workspace_name, Some(&current.name), &changes.describe())?;
            let rec = connector_by_id(&tx, &connector_id)?.ok_or_else(|| StoreError::backend(BACKEND, "updating a connector", "the row is missing"))?;
            tx.commit().map_err(db_err("committing"))?;
            Ok(rec)
        })
        .await
    }

    async fn delete_connector(
        &self,
        workspace: &str,
        name: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        let (workspace, name, actor) = (workspace.to_string(), name.to_string(), actor.to_string());
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let rec = connector_by_name(&tx, &workspace, &name)?;
            tx.execute("DELETE FROM connectors WHERE id = ?1", params![rec.id])
                .map_err(db_err("deleting a connector"))?;
            audit(
                &tx,
                &actor,
                "connector.delete",
                Some(&rec.workspace_id),
                &rec.workspace_name,
                Some(&rec.name),
                "",
            )?;
            tx.commit().map_err(db_err("committing"))
        })
        .await
    }

    async fn audit_log(
        &self,
        workspace: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let workspace = workspace.map(str::to_string);
        self.run(move |conn| {
            let ws_id = match &workspace {
                Some(name) => Some(find_workspace(conn, name)?.id),
                None => None,
            };
            let mut stmt = conn
                .prepare(
                    "SELECT id, at, actor, action, workspace, connector, detail FROM audit_log
                     WHERE (?1 IS NULL OR workspace_id = ?1) ORDER BY id DESC LIMIT ?2",
                )
                .map_err(db_err("reading the audit trail"))?;
            let rows = stmt
                .query_map(params![ws_id, limit], |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        workspace: r.get(4)?,
                        connector: r.get(5)?,
                        detail: r.get(6)?,
                    })
                })
                .map_err(db_err("reading the audit trail"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(db_err("reading the audit trail"))
        })
        .await
    }

    async fn key_check(&self, version: u32) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(move |conn| {
            conn.query_row(
                "SELECT check_value FROM master_key_checks WHERE version = ?1",
                params![version],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err("reading key checks"))
        })
        .await
    }

    async fn record_key_check(&self, version: u32, check: &[u8]) -> Result<(), StoreError> {
        let check = check.to_vec();
        self.run(move |conn| {
            let tx = immediate(conn)?;
            tx.execute(
                "INSERT INTO master_key_checks (version, check_value, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (version) DO NOTHING",
                params![version, check, now_millis()],
            )
            .map_err(db_err("recording a key check"))?;
            let stored: Vec<u8> = tx
                .query_row("SELECT check_value FROM master_key_checks WHERE version = ?1", params![version], |r| r.get(0))
                .map_err(db_err("reading key checks"))?;
            tx.commit().map_err(db_err("committing"))?;
            if stored != check {
                return Err(StoreError::KeyMismatch(version));
            }
            Ok(())
        })
        .await
    }

    async fn reencrypt_secrets(
        &self,
        rekey: Rekey,
        to_version: u32,
        actor: &str,
    ) -> Result<u64, StoreError> {
        let actor = actor.to_string();
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let rows: Vec<SecretRow> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT c.workspace_id, w.name, c.id, c.name, c.secret_ciphertext, c.secret_nonce, c.key_version
                         FROM connectors c JOIN workspaces w ON w.id = c.workspace_id ORDER BY c.id",
                    )
                    .map_err(db_err("reading secrets"))?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok(SecretRow {
                            workspace_id: r.get(0)?,
                            workspace_name: r.get(1)?,
                            connector_id: r.get(2)?,
                            connector_name: r.get(3)?,
                            sealed: Sealed { ciphertext: r.get(4)?, nonce: r.get(5)?, key_version: r.get(6)? },
                        })
                    })
                    .map_err(db_err("reading secrets"))?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db_err("reading secrets"))?
            };
            let mut count = 0u64;
            for row in &rows {
                let sealed = rekey(row)?;
                tx.execute(
                    "UPDATE connectors SET secret_ciphertext = ?1, secret_nonce = ?2, key_version = ?3 WHERE id = ?4",
                    params![sealed.ciphertext, sealed.nonce, sealed.key_version, row.connector_id],
                )
                .map_err(db_err("re-encrypting a secret"))?;
                count += 1;
            }
            audit(&tx, &actor, "key.rotate", None, "", None, &format!("{count} secret(s) re-encrypted with key version {to_version}"))?;
            tx.commit().map_err(db_err("committing the rotation"))?;
            Ok(count)
        })
        .await
    }

    async fn create_api_token(
        &self,
        workspace: &str,
        name: &str,
        token_hash: &[u8],
        actor: &str,
    ) -> Result<ApiToken, StoreError> {
        let (workspace, name, hash, actor) = (
            workspace.to_string(),
            name.to_string(),
            token_hash.to_vec(),
            actor.to_string(),
        );
        let id = new_id()?;
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let ws = find_workspace(&tx, &workspace)?;
            let token = ApiToken {
                id,
                workspace_id: ws.id.clone(),
                workspace_name: ws.name.clone(),
                name,
                created_at: now_millis(),
                last_used_at: None,
                revoked_at: None,
            };
            tx.execute(
                "INSERT INTO api_tokens (id, workspace_id, name, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![token.id, token.workspace_id, token.name, hash, token.created_at],
            )
            .map_err(db_err("creating a token"))?;
            audit(&tx, &actor, "token.create", Some(&ws.id), &ws.name, None, &format!("token {} ({:?})", token.id, token.name))?;
            tx.commit().map_err(db_err("committing"))?;
            Ok(token)
        })
        .await
    }

    async fn list_api_tokens(&self, workspace: &str) -> Result<Vec<ApiToken>, StoreError> {
        let workspace = workspace.to_string();
        self.run(move |conn| {
            let ws = find_workspace(conn, &workspace)?;
            let mut stmt = conn
                .prepare(&format!(
                    "{TOKEN_SELECT} WHERE t.workspace_id = ?1 ORDER BY t.created_at, t.id"
                ))
                .map_err(db_err("listing tokens"))?;
            let rows = stmt
                .query_map(params![ws.id], token_row)
                .map_err(db_err("listing tokens"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(db_err("listing tokens"))
        })
        .await
    }

    async fn authenticate_api_token(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<ApiToken>, StoreError> {
        let hash = token_hash.to_vec();
        self.run(move |conn| {
            let mut token = conn
                .query_row(
                    &format!("{TOKEN_SELECT} WHERE t.token_hash = ?1 AND t.revoked_at IS NULL"),
                    params![hash],
                    token_row,
                )
                .optional()
                .map_err(db_err("checking a token"))?;
            // A read for every request, a write at most once a minute per token.
            let now = now_millis();
            if let Some(t) = &mut token {
                if t.last_used_at
                    .is_none_or(|at| now - at >= super::TOKEN_USE_RESOLUTION_MS)
                {
                    conn.execute(
                        "UPDATE api_tokens SET last_used_at = ?1 WHERE id = ?2",
                        params![now, t.id],
                    )
                    .map_err(db_err("recording a token's use"))?;
                    t.last_used_at = Some(now);
                }
            }
            Ok(token)
        })
        .await
    }

    async fn revoke_api_token(
        &self,
        workspace: &str,
        token_id: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        let (workspace, token_id, actor) = (
            workspace.to_string(),
            token_id.to_string(),
            actor.to_string(),
        );
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let ws = find_workspace(&tx, &workspace)?;
            let n = tx
                .execute(
                    "UPDATE api_tokens SET revoked_at = ?1 WHERE id = ?2 AND workspace_id = ?3 AND revoked_at IS NULL",
                    params![now_millis(), token_id, ws.id],
                )
                .map_err(db_err("revoking a token"))?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("no live token {token_id:?} in workspace {:?}", ws.name)));
            }
            audit(&tx, &actor, "token.revoke", Some(&ws.id), &ws.name, None, &format!("token {token_id}"))?;
            tx.commit().map_err(db_err("committing"))
        })
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
        let attempts = attempts.to_vec();
        self.run(move |conn| {
            let tx = immediate(conn)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO fetch_attempts (at, workspace_id, run_id, connector, method, host, path, status, error,
                            blocked, redirects, duration_ms, outcome, connector_key)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                    )
                    .map_err(db_err("recording fetches"))?;
                for a in &attempts {
                    stmt.execute(params![
                        a.at, workspace_id, a.run_id, a.connector, a.method, a.host, a.path, a.status, a.error, a.blocked,
                        a.redirects, a.duration_ms, a.outcome().as_str(), a.connector_key()
                    ])
                    .map_err(db_err("recording fetches"))?;
                }
            }
            if let Some(ws) = &workspace_id {
                add_bucket_deltas(&tx, ws, &deltas)?;
            }
            tx.commit().map_err(db_err("committing"))
        })
        .await
    }

    async fn fetch_attempts(
        &self,
        workspace: &str,
        limit: u32,
    ) -> Result<Vec<FetchAttempt>, StoreError> {
        let workspace = workspace.to_string();
        self.run(move |conn| {
            let ws = find_workspace(conn, &workspace)?;
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {FETCH_COLUMNS} FROM fetch_attempts WHERE workspace_id = ?1 ORDER BY id DESC LIMIT ?2"
                ))
                .map_err(db_err("reading fetches"))?;
            let rows = stmt
                .query_map(params![ws.id, limit], |r| fetch_attempt_at(r, 0))
                .map_err(db_err("reading fetches"))?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err("reading fetches"))
        })
        .await
    }

    async fn connector_counts(
        &self,
        workspace: &str,
        since: Millis,
    ) -> Result<HashMap<String, Counts>, StoreError> {
        let workspace = workspace.to_string();
        self.run(move |conn| {
            let ws = find_workspace(conn, &workspace)?;
            let mut stmt = conn
                .prepare_cached(COUNTS_SQL)
                .map_err(db_err("reading counts"))?;
            let rows = stmt
                .query_map(params![ws.id, window_start(since)], |r| {
                    Ok((
                        r.get::<_, String>(2)?,
                        Counts {
                            requests: r.get::<_, i64>(3)?.max(0) as u64,
                            errors: r.get::<_, i64>(4)?.max(0) as u64,
                        },
                    ))
                })
                .map_err(db_err("reading counts"))?;
            rows.collect::<Result<HashMap<_, _>, _>>()
                .map_err(db_err("reading counts"))
        })
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
        let rows = self
            .run(move |conn| {
                let ws = find_workspace(conn, &workspace)?;
                let mut stmt = conn
                    .prepare_cached(SERIES_SQL)
                    .map_err(db_err("reading a series"))?;
                let rows = stmt
                    .query_map(params![ws.id, key, window_start(since)], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?.max(0) as u64,
                            r.get::<_, i64>(2)?.max(0) as u64,
                        ))
                    })
                    .map_err(db_err("reading a series"))?;
                rows.collect::<Result<Vec<_>, _>>()
                    .map_err(db_err("reading a series"))
            })
            .await?;
        dense_series(rows, since, bucket, now_millis())
    }

    async fn fetch_log(
        &self,
        workspace: &str,
        q: &FetchLogQuery,
    ) -> Result<FetchLogPage, StoreError> {
        let workspace = workspace.to_string();
        let q = q.clone();
        self.run(move |conn| {
            let ws = find_workspace(conn, &workspace)?;
            let (sql, bind, page) = fetch_log_sql(ws.id, &q);
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(db_err("reading the fetch log"))?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(bind), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        fetch_attempt_at(r, 2)?,
                    ))
                })
                .map_err(db_err("reading the fetch log"))?;
            let mut items = Vec::new();
            for row in rows {
                let (id, outcome, attempt) = row.map_err(db_err("reading the fetch log"))?;
                items.push(FetchLogEntry {
                    id,
                    outcome: stored_outcome(&outcome)?,
                    attempt,
                });
            }
            Ok(page_of(items, page))
        })
        .await
    }

    async fn blocked_count(&self, workspace: &str, since: Millis) -> Result<u64, StoreError> {
        let workspace = workspace.to_string();
        self.run(move |conn| {
            let ws = find_workspace(conn, &workspace)?;
            conn.query_row(
                BLOCKED_COUNT_SQL,
                params![ws.id, window_start(since)],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(db_err("reading blocked counts"))
        })
        .await
    }

    async fn prune_fetch_attempts(
        &self,
        older_than: Millis,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let batch = i64::from(batch.clamp(1, PRUNE_MAX_BATCH));
        let mut deleted = 0u64;
        // Each batch is its own short write transaction, and its own call on the connection, so steps
        // recording attempts (here or in another process) get in between batches. The ids are chosen
        // before the write lock is taken. After each batch the pruner pauses for twice as long as the
        // batch took (at most PRUNE_PAUSE_MAX): a writer of another connection waiting on the lock
        // polls at growing intervals (SQLite's busy handler) and would otherwise keep finding it taken.
        loop {
            let started = std::time::Instant::now();
            let n = self
                .run(move |conn| {
                    prune_batch(
                        conn,
                        PRUNE_SELECT_SQL,
                        "DELETE FROM fetch_attempts WHERE id = ?1 AND at < ?2",
                        older_than,
                        batch,
                    )
                })
                .await?;
            deleted += n as u64;
            if n < batch as usize {
                break;
            }
            tokio::time::sleep((started.elapsed() * 2).min(PRUNE_PAUSE_MAX)).await;
        }
        let minute = minute_of(older_than);
        for table in ["fetch_buckets", "blocked_buckets"] {
            loop {
                let n = self
                    .run(move |conn| prune_buckets_batch(conn, table, minute, batch))
                    .await?;
                if n < batch as usize {
                    break;
                }
                tokio::time::sleep(PRUNE_PAUSE_MAX / 10).await;
            }
        }
        Ok(deleted)
    }
}

const TOKEN_SELECT: &str =
    "SELECT t.id, t.workspace_id, w.name, t.name, t.created_at, t.last_used_at, t.revoked_at
     FROM api_tokens t JOIN workspaces w ON w.id = t.workspace_id";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: r.get(0)?,
        workspace_id: r.get(1)?,
        workspace_name: r.get(2)?,
        name: r.get(3)?,
        created_at: r.get(4)?,
        last_used_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

// A bare column beside MAX() takes its value from the row holding the maximum (SQLite), so each
// connector is named as it was last recorded.
const COUNTS_SQL: &str =
    "SELECT connector_key, MAX(minute), connector, SUM(requests), SUM(errors) FROM fetch_buckets
     WHERE workspace_id = ?1 AND minute >= ?2 GROUP BY connector_key";
// Without statistics SQLite would rather range-scan the primary key (every connector's buckets of the
// window); the connector index reads only this connector's.
const SERIES_SQL: &str =
    "SELECT minute, requests, errors FROM fetch_buckets INDEXED BY fetch_buckets_by_connector
     WHERE workspace_id = ?1 AND connector_key = ?2 AND minute >= ?3";
const BLOCKED_COUNT_SQL: &str =
    "SELECT COALESCE(SUM(requests), 0) FROM blocked_buckets WHERE workspace_id = ?1 AND minute >= ?2";
const PRUNE_SELECT_SQL: &str = "SELECT id FROM fetch_attempts WHERE at < ?1 ORDER BY at LIMIT ?2";

/// The fetch-log statement for `q` in workspace `ws_id`, its bind values and the page size.
fn fetch_log_sql(ws_id: String, q: &FetchLogQuery) -> (String, Vec<rusqlite::types::Value>, u32) {
    let mut terms = vec!["workspace_id = ?1".to_string()];
    let mut bind: Vec<rusqlite::types::Value> = vec![ws_id.into()];
    if let Some(key) = q.connector.as_deref().map(name_key) {
        terms.push("connector_key = ?2".into());
        bind.push(key.into());
    }
    let (more, values) = fetch_log_terms(q, |n| format!("?{n}"), bind.len() + 1);
    terms.extend(more);
    bind.extend(values.into_iter().map(rusqlite::types::Value::from));
    let page = q.page_size();
    let sql = format!(
        "SELECT id, outcome, {FETCH_COLUMNS} FROM fetch_attempts WHERE {} ORDER BY id DESC LIMIT {}",
        terms.join(" AND "),
        page + 1
    );
    (sql, bind, page)
}

impl SqliteStore {
    /// The query plans (`EXPLAIN QUERY PLAN`) of the monitoring reads for `workspace` and `q`, as
    /// `(read, plan)` pairs: for the tests and the benchmark to check that they are index scans.
    #[doc(hidden)]
    pub async fn monitoring_plans(
        &self,
        workspace: &str,
        q: &FetchLogQuery,
    ) -> Result<Vec<(&'static str, String)>, StoreError> {
        let workspace = workspace.to_string();
        let q = q.clone();
        self.run(move |conn| {
            let ws = find_workspace(conn, &workspace)?;
            let (log_sql, log_bind, _) = fetch_log_sql(ws.id.clone(), &q);
            let key = q.connector.as_deref().map(name_key).unwrap_or_default();
            let since = window_start(now_millis() - 24 * 3_600_000);
            let reads: Vec<(&'static str, String, Vec<rusqlite::types::Value>)> = vec![
                (
                    "connector_counts",
                    COUNTS_SQL.into(),
                    vec![ws.id.clone().into(), since.into()],
                ),
                (
                    "connector_series",
                    SERIES_SQL.into(),
                    vec![ws.id.clone().into(), key.into(), since.into()],
                ),
                (
                    "blocked_count",
                    BLOCKED_COUNT_SQL.into(),
                    vec![ws.id.clone().into(), since.into()],
                ),
                ("fetch_log", log_sql, log_bind),
                (
                    "prune",
                    PRUNE_SELECT_SQL.into(),
                    vec![since.into(), 1.into()],
                ),
            ];
            let mut out = Vec::new();
            for (name, sql, bind) in reads {
                let mut stmt = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .map_err(db_err("explaining"))?;
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(bind), |r| r.get::<_, String>(3))
                    .map_err(db_err("explaining"))?;
                let plan = rows
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db_err("explaining"))?
                    .join("; ");
                out.push((name, plan));
            }
            Ok(out)
        })
        .await
    }
}

const FETCH_COLUMNS: &str =
    "at, run_id, connector, method, host, path, status, error, blocked, redirects, duration_ms";

/// A [`FetchAttempt`] from the [`FETCH_COLUMNS`] starting at column `i`.
fn fetch_attempt_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<FetchAttempt> {
    Ok(FetchAttempt {
        at: r.get(i)?,
        run_id: r.get(i + 1)?,
        connector: r.get(i + 2)?,
        method: r.get(i + 3)?,
        host: r.get(i + 4)?,
        path: r.get(i + 5)?,
        status: r.get(i + 6)?,
        error: r.get(i + 7)?,
        blocked: r.get(i + 8)?,
        redirects: r.get(i + 9)?,
        duration_ms: r.get(i + 10)?,
    })
}

/// Adds one transaction's bucket deltas with atomic upserts (the transaction holds the write lock).
fn add_bucket_deltas(
    tx: &Connection,
    workspace_id: &str,
    deltas: &BucketDeltas,
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO fetch_buckets (workspace_id, minute, connector_key, connector, requests, errors)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (workspace_id, minute, connector_key) DO UPDATE SET
                requests = fetch_buckets.requests + excluded.requests,
                errors = fetch_buckets.errors + excluded.errors,
                connector = excluded.connector",
        )
        .map_err(db_err("counting fetches"))?;
    for ((key, minute), (name, requests, errors)) in &deltas.connectors {
        stmt.execute(params![workspace_id, minute, key, name, requests, errors])
            .map_err(db_err("counting fetches"))?;
    }
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO blocked_buckets (workspace_id, minute, requests) VALUES (?1, ?2, ?3)
             ON CONFLICT (workspace_id, minute) DO UPDATE SET
                requests = blocked_buckets.requests + excluded.requests",
        )
        .map_err(db_err("counting blocked fetches"))?;
    for (minute, requests) in &deltas.blocked {
        stmt.execute(params![workspace_id, minute, requests])
            .map_err(db_err("counting blocked fetches"))?;
    }
    Ok(())
}

/// One retention batch: picks up to `batch` ids with `select` outside any write transaction, then
/// deletes them (re-checking the age) in one short one. Returns how many ids were picked.
fn prune_batch(
    conn: &mut Connection,
    select: &str,
    delete: &str,
    cutoff: Millis,
    batch: i64,
) -> Result<usize, StoreError> {
    let ids: Vec<i64> = {
        let mut stmt = conn
            .prepare_cached(select)
            .map_err(db_err("pruning fetch records"))?;
        let rows = stmt
            .query_map(params![cutoff, batch], |r| r.get(0))
            .map_err(db_err("pruning fetch records"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db_err("pruning fetch records"))?
    };
    if ids.is_empty() {
        return Ok(0);
    }
    let tx = immediate(conn)?;
    {
        let mut stmt = tx
            .prepare_cached(delete)
            .map_err(db_err("pruning fetch records"))?;
        for id in &ids {
            stmt.execute(params![id, cutoff])
                .map_err(db_err("pruning fetch records"))?;
        }
    }
    tx.commit().map_err(db_err("committing"))?;
    Ok(ids.len())
}

/// One retention batch of a bucket table: deletes up to `batch` buckets of minutes before `minute`.
fn prune_buckets_batch(
    conn: &mut Connection,
    table: &str,
    minute: Millis,
    batch: i64,
) -> Result<usize, StoreError> {
    let tx = immediate(conn)?;
    // The bucket tables are small beside the attempts (one row per minute and connector), and the
    // inner SELECT walks the minute index from its start, so this holds the lock only briefly.
    let key = if table == "fetch_buckets" {
        "(workspace_id, minute, connector_key)"
    } else {
        "(workspace_id, minute)"
    };
    let n = tx
        .execute(
            &format!(
                "DELETE FROM {table} WHERE {key} IN (SELECT {inner} FROM {table} WHERE minute < ?1 ORDER BY minute LIMIT ?2)",
                inner = &key[1..key.len() - 1]
            ),
            params![minute, batch],
        )
        .map_err(db_err("pruning fetch counts"))?;
    tx.commit().map_err(db_err("committing"))?;
    Ok(n)
}
