//! The SQLite store: one file, WAL journal, `synchronous=FULL`, a busy timeout so several processes can
//! share the file. Every write is one `BEGIN IMMEDIATE` transaction. Blocking calls run on tokio's
//! blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::migrate;
use super::{
    name_key, new_id, now_millis, patterns_from_json, patterns_to_json, placement_from_json,
    placement_to_json, ApiToken, AuditEntry, ConnectorChanges, ConnectorRecord, FetchAttempt,
    NewConnectorRow, Rekey, SecretRow, Store, StoreError, Workspace,
};
use crate::vault::Sealed;

const BACKEND: &str = "sqlite";
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
            let now = now_millis();
            let n = conn
                .execute("UPDATE api_tokens SET last_used_at = ?1 WHERE token_hash = ?2 AND revoked_at IS NULL", params![now, hash])
                .map_err(db_err("checking a token"))?;
            if n == 0 {
                return Ok(None);
            }
            conn.query_row(&format!("{TOKEN_SELECT} WHERE t.token_hash = ?1 AND t.revoked_at IS NULL"), params![hash], token_row)
                .optional()
                .map_err(db_err("checking a token"))
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
        let workspace_id = workspace_id.map(str::to_string);
        let attempts = attempts.to_vec();
        self.run(move |conn| {
            let tx = immediate(conn)?;
            {
                let mut stmt = tx
                    .prepare(
                        "INSERT INTO fetch_attempts (at, workspace_id, run_id, connector, method, host, path, status, error,
                            blocked, redirects, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    )
                    .map_err(db_err("recording fetches"))?;
                for a in &attempts {
                    stmt.execute(params![
                        a.at, workspace_id, a.run_id, a.connector, a.method, a.host, a.path, a.status, a.error, a.blocked,
                        a.redirects, a.duration_ms
                    ])
                    .map_err(db_err("recording fetches"))?;
                }
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
                .prepare(
                    "SELECT at, run_id, connector, method, host, path, status, error, blocked, redirects, duration_ms
                     FROM fetch_attempts WHERE workspace_id = ?1 ORDER BY id DESC LIMIT ?2",
                )
                .map_err(db_err("reading fetches"))?;
            let rows = stmt
                .query_map(params![ws.id, limit], |r| {
                    Ok(FetchAttempt {
                        at: r.get(0)?,
                        run_id: r.get(1)?,
                        connector: r.get(2)?,
                        method: r.get(3)?,
                        host: r.get(4)?,
                        path: r.get(5)?,
                        status: r.get(6)?,
                        error: r.get(7)?,
                        blocked: r.get(8)?,
                        redirects: r.get(9)?,
                        duration_ms: r.get(10)?,
                    })
                })
                .map_err(db_err("reading fetches"))?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err("reading fetches"))
        })
        .await
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
