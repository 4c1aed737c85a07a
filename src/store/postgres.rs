//! The PostgreSQL store, for several codestep nodes sharing one database. No TLS (local or trusted
//! networks). Migrations run under a transaction-scoped advisory lock, so nodes starting together
//! migrate once. Uniqueness races between nodes are settled by the unique indexes.

use std::collections::HashMap;

use async_trait::async_trait;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, NoTls, Row};

use super::migrate;
use super::{
    dense_series, fetch_log_terms, minute_of, name_key, new_id, now_millis, page_of,
    patterns_from_json, patterns_to_json, placement_from_json, placement_to_json, stored_outcome,
    window_start, ApiToken, AuditEntry, BucketDeltas, ConnectorChanges, ConnectorRecord, Counts,
    FetchAttempt, FetchLogEntry, FetchLogPage, FetchLogQuery, Millis, NewConnectorRow, Rekey,
    SecretRow, SeriesPoint, Store, StoreError, Workspace, PRUNE_MAX_BATCH,
};
use crate::vault::Sealed;

const BACKEND: &str = "postgres";
/// Key of the advisory lock taken while migrating.
const MIGRATION_LOCK: i64 = 0x636f_6465_7374_6570; // "codestep"

pub struct PostgresStore {
    client: tokio::sync::Mutex<Client>,
    config: tokio_postgres::Config,
    describe: String,
}

fn db_err(context: &str) -> impl FnOnce(tokio_postgres::Error) -> StoreError + '_ {
    move |e| StoreError::backend(BACKEND, context, pg_message(&e))
}

/// The server's message when there is one (tokio-postgres's `Display` for server errors is just "db error").
fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                source = s.source();
            }
            msg
        }
    }
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn version_to_sql(v: u32) -> Result<i32, StoreError> {
    i32::try_from(v).map_err(|_| StoreError::Invalid(format!("key version {v} is too large")))
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/db?options=...`) and migrates.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
        let describe = describe_config(&config);
        let mut client = connect(&config, &describe).await?;
        migrate_pg(&mut client, &describe).await?;
        Ok(PostgresStore {
            client: tokio::sync::Mutex::new(client),
            config,
            describe,
        })
    }

    /// The connection, made again first if the previous one closed (a server restart, an idle
    /// timeout): one dropped connection must not leave this node failing until it restarts.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Client>, StoreError> {
        let mut guard = self.client.lock().await;
        if guard.is_closed() {
            eprintln!("codestep: reconnecting to {}", self.describe);
            *guard = connect(&self.config, &self.describe).await?;
        }
        Ok(guard)
    }
}

async fn connect(config: &tokio_postgres::Config, describe: &str) -> Result<Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
        StoreError::Config(format!("cannot connect to {describe}: {}", pg_message(&e)))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("codestep: PostgreSQL connection closed: {}", pg_message(&e));
        }
    });
    Ok(client)
}

fn describe_config(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "PostgreSQL database {:?} on {host}:{port}",
        config.get_dbname().unwrap_or("(default)")
    )
}

async fn migrate_pg(client: &mut Client, location: &str) -> Result<(), StoreError> {
    let tx = client
        .transaction()
        .await
        .map_err(db_err("starting the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_err("locking for the migration"))?;
    tx.batch_execute(migrate::SCHEMA_TABLE_DDL)
        .await
        .map_err(db_err("creating the schema table"))?;
    let found = current_version(&tx).await?;
    migrate::check_not_newer(found, migrate::POSTGRES, location)?;
    for m in migrate::pending(found, migrate::POSTGRES) {
        tx.batch_execute(m.sql).await.map_err(|e| {
            StoreError::Schema(format!(
                "migration {} ({}) failed on {location}: {}",
                m.version,
                m.name,
                pg_message(&e)
            ))
        })?;
        tx.execute(
            "INSERT INTO codestep_schema (version, name, applied_at) VALUES ($1, $2, $3)",
            &[&(m.version as i32), &m.name, &now_millis()],
        )
        .await
        .map_err(db_err("recording a migration"))?;
    }
    tx.commit()
        .await
        .map_err(db_err("committing the migration"))
}

async fn current_version<C: GenericClient + Sync>(c: &C) -> Result<u32, StoreError> {
    let row = c
        .query_one("SELECT COALESCE(MAX(version), 0) FROM codestep_schema", &[])
        .await
        .map_err(db_err("reading the schema version"))?;
    Ok(row.get::<_, i32>(0) as u32)
}

async fn audit<C: GenericClient + Sync>(
    c: &C,
    actor: &str,
    action: &str,
    workspace_id: Option<&str>,
    workspace: &str,
    connector: Option<&str>,
    detail: &str,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO audit_log (at, actor, action, workspace_id, workspace, connector, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &now_millis(),
            &actor,
            &action,
            &workspace_id,
            &workspace,
            &connector,
            &detail,
        ],
    )
    .await
    .map_err(db_err("writing the audit trail"))?;
    Ok(())
}

fn workspace_row(r: &Row) -> Workspace {
    Workspace {
        id: r.get(0),
        name: r.get(1),
        created_at: r.get(2),
    }
}

async fn find_workspace<C: GenericClient + Sync>(
    c: &C,
    name: &str,
) -> Result<Workspace, StoreError> {
    c.query_opt(
        "SELECT id, name, created_at FROM workspaces WHERE name_key = $1",
        &[&name_key(name)],
    )
    .await
    .map_err(db_err("reading a workspace"))?
    .map(|r| workspace_row(&r))
    .ok_or_else(|| StoreError::workspace_not_found(name))
}

const CONNECTOR_SELECT: &str =
    "SELECT c.id, c.workspace_id, w.name, c.name, c.patterns, c.placement, c.scrub_echo,
     c.secret_ciphertext, c.secret_nonce, c.key_version, c.created_at, c.updated_at
     FROM connectors c JOIN workspaces w ON w.id = c.workspace_id";

fn connector_row(r: &Row) -> Result<ConnectorRecord, StoreError> {
    let name: String = r.get(3);
    let key_version: i32 = r.get(9);
    let key_version = u32::try_from(key_version).map_err(|_| {
        StoreError::Schema(format!("connector {name:?} has an impossible key version"))
    })?;
    Ok(ConnectorRecord {
        id: r.get(0),
        workspace_id: r.get(1),
        workspace_name: r.get(2),
        patterns: patterns_from_json(r.get(4), &name)?,
        placement: placement_from_json(r.get(5), &name)?,
        scrub_echo: r.get(6),
        sealed: Sealed {
            ciphertext: r.get(7),
            nonce: r.get(8),
            key_version,
        },
        created_at: r.get(10),
        updated_at: r.get(11),
        name,
    })
}

async fn connector_by_id<C: GenericClient + Sync>(
    c: &C,
    id: &str,
) -> Result<Option<ConnectorRecord>, StoreError> {
    c.query_opt(&format!("{CONNECTOR_SELECT} WHERE c.id = $1"), &[&id])
        .await
        .map_err(db_err("reading a connector"))?
        .map(|r| connector_row(&r))
        .transpose()
}

async fn connector_by_name<C: GenericClient + Sync>(
    c: &C,
    workspace: &str,
    name: &str,
) -> Result<ConnectorRecord, StoreError> {
    let ws = find_workspace(c, workspace).await?;
    let row = c
        .query_opt(
            &format!("{CONNECTOR_SELECT} WHERE c.workspace_id = $1 AND c.name_key = $2"),
            &[&ws.id, &name_key(name)],
        )
        .await
        .map_err(db_err("reading a connector"))?
        .ok_or_else(|| StoreError::connector_not_found(&ws.name, name))?;
    connector_row(&row)
}

#[async_trait]
impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn schema_version(&self) -> Result<u32, StoreError> {
        let client = self.client().await?;
        current_version(&*client).await
    }

    async fn create_workspace(&self, name: &str, actor: &str) -> Result<Workspace, StoreError> {
        let ws = Workspace {
            id: new_id()?,
            name: name.to_string(),
            created_at: now_millis(),
        };
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db_err("starting a transaction"))?;
        tx.execute(
            "INSERT INTO workspaces (id, name, name_key, created_at) VALUES ($1, $2, $3, $4)",
            &[&ws.id, &ws.name, &name_key(&ws.name), &ws.created_at],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::workspace_conflict(name)
            } else {
                StoreError::backend(BACKEND, "creating a workspace", pg_message(&e))
            }
        })?;
        audit(
            &tx,
            actor,
            "workspace.create",
            Some(&ws.id),
            &ws.name,
            None,
            "",
        )
        .await?;
        tx.commit().await.map_err(db_err("committing"))?;
        Ok(ws)
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, name, created_at FROM workspaces ORDER BY name_key",
                &[],
            )
            .await
            .map_err(db_err("listing workspaces"))?;
        Ok(rows.iter().map(workspace_row).collect())
    }

    async fn workspace(&self, name: &str) -> Result<Workspace, StoreError> {
        let client = self.client().await?;
        find_workspace(&*client, name).await
    }

    async fn delete_workspace(&self, name: &str, actor: &str) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db_err("starting a transaction"))?;
        let ws = find_workspace(&tx, name).await?;
        let deleted = tx
            .execute("DELETE FROM connectors WHERE workspace_id = $1", &[&ws.id])
            .await
            .map_err(db_err("deleting connectors"))?;
        tx.execute("DELETE FROM workspaces WHERE id = $1", &[&ws.id])
            .await
            .map_err(db_err("deleting a workspace"))?;
        audit(
            &tx,
            actor,
            "workspace.delete",
            Some(&ws.id),
            &ws.name,
            None,
            &format!("{deleted} connector(s) deleted with it"),
        )
        .await?;
        tx.commit().await.map_err(db_err("committing"))?;
        Ok(deleted)
    }

    async fn insert_connector(
        &self,
        row: NewConnectorRow,
        actor: &str,
    ) -> Result<ConnectorRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db_err("starting a transaction"))?;
        let ws_name: String = tx
            .query_opt(
                "SELECT name FROM workspaces WHERE id = $1 FOR SHARE",
                &[&row.workspace_id],
            )
            .await
            .map_err(db_err("reading a workspace"))?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::NotFound("the workspace was deleted meanwhile".into()))?;
        let now = now_millis();
        tx.execute(
            "INSERT INTO connectors (id, workspace_id, name, name_key, patterns, placement, scrub_echo,
                secret_ciphertext, secret_nonce, key_version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
            &[
                &row.id,
                &row.workspace_id,
                &row.name,
                &name_key(&row.name),
                &patterns_to_json(&row.patterns),
                &placement_to_json(&row.placement),
                &row.scrub_echo,
                &row.sealed.ciphertext,
                &row.sealed.nonce,
                &version_to_sql(row.sealed.key_version)?,
                &now,
            ],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::connector_conflict(&ws_name, &row.name)
            } else {
                StoreError::backend(BACKEND, "creating a connector", pg_message(&e))
            }
        })?;
        audit(
            &tx,
            actor,
            "connector.create",
            Some(&row.workspace_id),
            &ws_name,
            Some(&row.name),
            "",
        )
        .await?;
        let rec = connector_by_id(&tx, &row.id).await?.ok_or_else(|| {
            StoreError::backend(BACKEND, "creating a connector", "the new row is missing")
        })?;
        tx.commit().await.map_err(db_err("committing"))?;
        Ok(rec)
    }

    async fn list_connectors(&self, workspace: &str) -> Result<Vec<ConnectorRecord>, StoreError> {
        let client = self.client().await?;
        let ws = find_workspace(&*client, workspace).await?;
        let rows = client
            .query(
                &format!("{CONNECTOR_SELECT} WHERE c.workspace_id = $1 ORDER BY c.name_key"),
                &[&ws.id],
            )
            .await
            .map_err(db_err("listing connectors"))?;
        rows.iter().map(connector_row).collect()
    }

    async fn connector(&self, workspace: &str, name: &str) -> Result<ConnectorRecord, StoreError> {
        let client = self.client().await?;
        connector_by_name(&*client, workspace, name).await
    }

    async fn update_connector(
        &self,
        workspace_id: &str,
        connector_id: &str,
        changes: ConnectorChanges,
        actor: &str,
    ) -> Result<ConnectorRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db_err("starting a transaction"))?;
        tx.execute(
            "SELECT 1 FROM connectors WHERE id = $1 FOR UPDATE",
            &[&connector_id],
        )
        .await
        .map_err(db_err("locking a connector"))?;
        let current = connector_by_id(&tx, connector_id)
            .await?
            .filter(|c| c.workspace_id == workspace_id)
            .ok_or_else(|| StoreError::NotFound("the connector was deleted meanwhile".into()))?;
        let patterns = changes.patterns.as_ref().unwrap_or(&current.patterns);
        let placement = changes.placement.as_ref().unwrap_or(&current.placement);
        let scrub_echo = changes.scrub_echo.unwrap_or(current.scrub_echo);
        let sealed = changes.sealed.as_ref().unwrap_or(&current.sealed);
        tx.execute(
            "UPDATE connectors SET patterns = $1, placement = $2, scrub_echo = $3, secret_ciphertext = $4,
                secret_nonce = $5, key_version = $6, updated_at = $7 WHERE id = $8",
            &[
                &patterns_to_json(patterns),
                &placement_to_json(placement),
                &scrub_echo,
                &sealed.ciphertext,
                &sealed.nonce,
                &version_to_sql(sealed.key_version)?,
                &now_millis().max(current.updated_at + 1),
                &connector_id,
            ],
        )
        .await
        .map_err(db_err("updating a connector"))?;
        audit(
            &tx,
            actor,
            "connector.update",
            Some(workspace_id),
            &current.workspace_name,
            Some(&current.name),
            &changes.describe(),
        )
        .await?;
        let rec = connector_by_id(&tx, connector_id).await?.ok_or_else(|| {
            StoreError::backend(BACKEND, "updating a connector", "the row is missing")
        })?;
        tx.commit().await.map_err(db_err("committing"))?;
        Ok(rec)
    }

    async fn delete_connector(
        &self,
        workspace: &str,
        name: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db_err("starting a transaction"))?;
        let rec = connector_by_name(&tx, workspace, name).await?;
        let n = tx
            .execute("DELETE FROM connectors WHERE id = $1", &[&rec.id])
            .await
            .map_err(db_err("deleting a connector"))?;
        if n == 0 {
            return Err(StoreError::connector_not_found(&rec.workspace_name, name));
        }
        audit(
            &tx,
            actor,
            "connector.delete",
            Some(&rec.workspace_id),
            &rec.workspace_name,
            Some(&rec.name),
            "",
        )
        .await?;
        tx.commit().await.map_err(db_err("committing"))
    }

    async fn audit_log(
        &self,
        workspace: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.client().await?;
        let ws_id = match workspace {
            Some(name) => Some(find_workspace(&*client, name).await?.id),
            None => None,
        };
        let rows = client
            .query(
                "SELECT id, at, actor, action, workspace, connector, detail FROM audit_log
                 WHERE ($1::TEXT IS NULL OR workspace_id = $1) ORDER BY id DESC LIMIT $2",
                &[&ws_id, &i64::from(limit)],
            )
            .await
            .map_err(db_err("reading the audit trail"))?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                workspace: r.get(4),
                connector: r.get(5),
                detail: r.get(6),
            })
            .collect())
    }

    async fn key_check(&self, version: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT check_value FROM master_key_checks WHERE version = $1",
                &[&version_to_sql(version)?],
            )
            .await
            .map_err(db_err("reading key checks"))?
            .map(|r| r.get(0)))
    }

    async fn record_key_check(&self, version: u32, check: &[u8]) -> Result<(), StoreError> {
        let v = version_to_sql(version)?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO master_key_checks (version, check_value, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (version) DO NOTHING",
                &[&v, &check, &now_millis()],
            )
            .await
            .map_err(db_err("recording a key check"))?;
        let stored: Vec<u8> = client
            .query_one(
                "SELECT check_value FROM master_key_checks WHERE version = $1",
                &[&v],
            )
            .await
            .map_err(db_err("reading key checks"))?
            .get(0);
        if stored != check {
            return Err(StoreError::KeyMismatch(version));
        }
        Ok(())
    }

    async fn reencrypt_secrets(
        &self,
        rekey: Rekey,
        to_version: u32,
        actor: &str,
    ) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db_err("starting a transaction"))?;
        let rows = tx
            .query(
                "SELECT c.workspace_id, w.name, c.id, c.name, c.secret_ciphertext, c.secret_nonce, c.key_version
                 FROM connectors c JOIN workspaces w ON w.id = c.workspace_id ORDER BY c.id FOR UPDATE OF c",
                &[],
            )
            .await
            .map_err(db_err("reading secrets"))?;
        let mut count = 0u64;
        for r in &rows {
            let key_version: i32 = r.get(6);
            let row = SecretRow {
                workspace_id: r.get(0),
                workspace_name: r.get(1),
                connector_id: r.get(2),
                connector_name: r.get(3),
                sealed: Sealed {
                    ciphertext: r.get(4),
                    nonce: r.get(5),
                    key_version: key_version as u32,
                },
            };
            let sealed = rekey(&row)?;
            tx.execute(
                "UPDATE connectors SET secret_ciphertext = $1, secret_nonce = $2, key_version = $3 WHERE id = $4",
                &[&sealed.ciphertext, &sealed.nonce, &version_to_sql(sealed.key_version)?, &row.connector_id],
            )
            .await
            .map_err(db_err("re-encrypting a secret"))?;
            count += 1;
        }
        audit(
            &tx,
            actor,
            "key.rotate",
            None,
            "",
            None,
            &format!("{count} secret(s) re-encrypted with key version {to_version}"),
        )
        .await?;
        tx.commit()
            .await
            .map_err(db_err("committing the rotation"))?;
        Ok(count)
    }

    async fn create_api_token(
        &self,
        workspace: &str,
        name: &str,
        token_hash: &[u8],
        actor: &str,
    ) -> Result<ApiToken, StoreError> {
        let id = new_id()?;
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db_err("starting a transaction"))?;
        let ws = find_workspace(&tx, workspace).await?;
        let token = ApiToken {
            id,
            workspace_id: ws.id.clone(),
            workspace_name: ws.name.clone(),
            name: name.to_string(),
            created_at: now_millis(),
            last_used_at: None,
            revoked_at: None,
        };
        tx.execute(
            "INSERT INTO api_tokens (id, workspace_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[&token.id, &token.workspace_id, &token.name, &token_hash, &token.created_at],
        )
        .await
        .map_err(db_err("creating a token"))?;
        audit(
            &tx,
            actor,
            "token.create",
            Some(&ws.id),
            &ws.name,
            None,
            &format!("token {} ({:?})", token.id, token.name),
        )
        .await?;
        tx.commit().await.map_err(db_err("committing"))?;
        Ok(token)
    }

    async fn list_api_tokens(&self, workspace: &str) -> Result<Vec<ApiToken>, StoreError> {
        let client = self.client().await?;
        let ws = find_workspace(&*client, workspace).await?;
        let rows = client
            .query(
                &format!("{TOKEN_SELECT} WHERE t.workspace_id = $1 ORDER BY t.created_at, t.id"),
                &[&ws.id],
            )
            .await
            .map_err(db_err("listing tokens"))?;
        Ok(rows.iter().map(token_row).collect())
    }

    async fn authenticate_api_token(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<ApiToken>, StoreError> {
        let client = self.client().await?;
        let mut token = client
            .query_opt(
                &format!("{TOKEN_SELECT} WHERE t.token_hash = $1 AND t.revoked_at IS NULL"),
                &[&token_hash],
            )
            .await
            .map_err(db_err("checking a token"))?
            .map(|r| token_row(&r));
        // A read for every request, a write at most once a minute per token.
        let now = now_millis();
        if let Some(t) = &mut token {
            if t.last_used_at
                .is_none_or(|at| now - at >= super::TOKEN_USE_RESOLUTION_MS)
            {
                client
                    .execute(
                        "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2",
                        &[&now, &t.id],
                    )
                    .await
                    .map_err(db_err("recording a token's use"))?;
                t.last_used_at = Some(now);
            }
        }
        Ok(token)
    }

    async fn revoke_api_token(
        &self,
        workspace: &str,
        token_id: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db_err("starting a transaction"))?;
        let ws = find_workspace(&tx, workspace).await?;
        let n = tx
            .execute(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND workspace_id = $3 AND revoked_at IS NULL",
                &[&now_millis(), &token_id, &ws.id],
            )
            .await
            .map_err(db_err("revoking a token"))?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no live token {token_id:?} in workspace {:?}",
                ws.name
            )));
        }
        audit(
            &tx,
            actor,
            "token.revoke",
            Some(&ws.id),
            &ws.name,
            None,
            &format!("token {token_id}"),
        )
        .await?;
        tx.commit().await.map_err(db_err("committing"))
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
        // One statement for all the rows (arrays unnested in order, so ids follow the slice).
        let at: Vec<i64> = attempts.iter().map(|a| a.at).collect();
        let run_id: Vec<Option<&str>> = attempts.iter().map(|a| a.run_id.as_deref()).collect();
        let connector: Vec<Option<&str>> =
            attempts.iter().map(|a| a.connector.as_deref()).collect();
        let method: Vec<&str> = attempts.iter().map(|a| a.method.as_str()).collect();
        let host: Vec<&str> = attempts.iter().map(|a| a.host.as_str()).collect();
        let path: Vec<&str> = attempts.iter().map(|a| a.path.as_str()).collect();
        let status: Vec<Option<i32>> = attempts.iter().map(|a| a.status.map(i32::from)).collect();
        let error: Vec<Option<&str>> = attempts.iter().map(|a| a.error.as_deref()).collect();
        let blocked: Vec<bool> = attempts.iter().map(|a| a.blocked).collect();
        let redirects: Vec<i32> = attempts
            .iter()
            .map(|a| i32::try_from(a.redirects).unwrap_or(i32::MAX))
            .collect();
        let duration: Vec<f64> = attempts.iter().map(|a| a.duration_ms).collect();
        let outcome: Vec<&str> = attempts.iter().map(|a| a.outcome().as_str()).collect();
        let key: Vec<Option<String>> = attempts.iter().map(FetchAttempt::connector_key).collect();
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db_err("starting a transaction"))?;
        tx.execute(
            "INSERT INTO fetch_attempts (at, workspace_id, run_id, connector, method, host, path, status, error,
                blocked, redirects, duration_ms, outcome, connector_key)
             SELECT a.at, $2, a.run_id, a.connector, a.method, a.host, a.path, a.status, a.error,
                a.blocked, a.redirects, a.duration_ms, a.outcome, a.connector_key
             FROM UNNEST($1::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::INTEGER[],
                $9::TEXT[], $10::BOOLEAN[], $11::INTEGER[], $12::DOUBLE PRECISION[], $13::TEXT[], $14::TEXT[])
                WITH ORDINALITY AS a (at, run_id, connector, method, host, path, status, error, blocked, redirects,
                    duration_ms, outcome, connector_key, n)
             ORDER BY a.n",
            &[
                &at,
                &workspace_id,
                &run_id,
                &connector,
                &method,
                &host,
                &path,
                &status,
                &error,
                &blocked,
                &redirects,
                &duration,
                &outcome,
                &key,
            ],
        )
        .await
        .map_err(db_err("recording fetches"))?;
        // Last, so the bucket rows (shared by every step of the connector in that minute) stay locked
        // only until the commit that follows.
        if let Some(ws) = workspace_id {
            add_bucket_deltas(&tx, ws, &deltas).await?;
        }
        tx.commit().await.map_err(db_err("committing"))
    }

    async fn fetch_attempts(
        &self,
        workspace: &str,
        limit: u32,
    ) -> Result<Vec<FetchAttempt>, StoreError> {
        let client = self.client().await?;
        let ws = find_workspace(&*client, workspace).await?;
        let rows = client
            .query(
                &format!("SELECT {FETCH_COLUMNS} FROM fetch_attempts WHERE workspace_id = $1 ORDER BY id DESC LIMIT $2"),
                &[&ws.id, &i64::from(limit)],
            )
            .await
            .map_err(db_err("reading fetches"))?;
        Ok(rows.iter().map(|r| fetch_attempt_at(r, 0)).collect())
    }

    async fn connector_counts(
        &self,
        workspace: &str,
        since: Millis,
    ) -> Result<HashMap<String, Counts>, StoreError> {
        let client = self.client().await?;
        let ws = find_workspace(&*client, workspace).await?;
        let rows = client
            .query(COUNTS_SQL, &[&ws.id, &window_start(since)])
            .await
            .map_err(db_err("reading counts"))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    Counts {
                        requests: r.get::<_, i64>(1).max(0) as u64,
                        errors: r.get::<_, i64>(2).max(0) as u64,
                    },
                )
            })
            .collect())
    }

    async fn connector_series(
        &self,
        workspace: &str,
        connector: &str,
        since: Millis,
        bucket: Millis,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        dense_series([], since, bucket, now_millis())?;
        let client = self.client().await?;
        let ws = find_workspace(&*client, workspace).await?;
        let rows = client
            .query(
                SERIES_SQL,
                &[&ws.id, &name_key(connector), &window_start(since)],
            )
            .await
            .map_err(db_err("reading a series"))?;
        drop(client);
        dense_series(
            rows.iter().map(|r| {
                (
                    r.get::<_, i64>(0),
                    r.get::<_, i64>(1).max(0) as u64,
                    r.get::<_, i64>(2).max(0) as u64,
                )
            }),
            since,
            bucket,
            now_millis(),
        )
    }

    async fn fetch_log(
        &self,
        workspace: &str,
        q: &FetchLogQuery,
    ) -> Result<FetchLogPage, StoreError> {
        let client = self.client().await?;
        let ws = find_workspace(&*client, workspace).await?;
        let (sql, key, values, page) = fetch_log_sql(q);
        let mut bind: Vec<&(dyn ToSql + Sync)> = vec![&ws.id];
        if let Some(key) = &key {
            bind.push(key);
        }
        bind.extend(values.iter().map(|v| v as &(dyn ToSql + Sync)));
        let rows = client
            .query(&sql, &bind)
            .await
            .map_err(db_err("reading the fetch log"))?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(FetchLogEntry {
                    id: r.get(0),
                    outcome: stored_outcome(r.get(1))?,
                    attempt: fetch_attempt_at(r, 2),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(page_of(items, page))
    }

    async fn blocked_count(&self, workspace: &str, since: Millis) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let ws = find_workspace(&*client, workspace).await?;
        let n: i64 = client
            .query_one(BLOCKED_COUNT_SQL, &[&ws.id, &window_start(since)])
            .await
            .map_err(db_err("reading blocked counts"))?
            .get(0);
        Ok(n.max(0) as u64)
    }

    async fn prune_fetch_attempts(
        &self,
        older_than: Millis,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let batch = i64::from(batch.clamp(1, PRUNE_MAX_BATCH));
        // Each batch is its own statement (its own transaction), and the client is released between
        // batches. Deleting old rows takes row locks only, which inserts of new attempts never wait
        // for; SKIP LOCKED lets two nodes pruning at once split the work instead of queueing.
        let batches = [
            "DELETE FROM fetch_attempts WHERE id IN
                (SELECT id FROM fetch_attempts WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            "DELETE FROM fetch_buckets WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM fetch_buckets WHERE minute < $1 ORDER BY minute LIMIT $2 FOR UPDATE SKIP LOCKED))",
            "DELETE FROM blocked_buckets WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM blocked_buckets WHERE minute < $1 ORDER BY minute LIMIT $2 FOR UPDATE SKIP LOCKED))",
        ];
        let mut deleted = 0u64;
        for (i, sql) in batches.into_iter().enumerate() {
            let cutoff = if i == 0 {
                older_than
            } else {
                minute_of(older_than)
            };
            loop {
                let n = {
                    let client = self.client().await?;
                    client
                        .execute(sql, &[&cutoff, &batch])
                        .await
                        .map_err(db_err("pruning fetch records"))?
                };
                if i == 0 {
                    deleted += n;
                }
                if n < batch as u64 {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

const COUNTS_SQL: &str =
    "SELECT (array_agg(connector ORDER BY minute DESC))[1], SUM(requests)::BIGINT, SUM(errors)::BIGINT
     FROM fetch_buckets WHERE workspace_id = $1 AND minute >= $2 GROUP BY connector_key";
const SERIES_SQL: &str = "SELECT minute, requests, errors FROM fetch_buckets
     WHERE workspace_id = $1 AND connector_key = $2 AND minute >= $3";
const BLOCKED_COUNT_SQL: &str = "SELECT COALESCE(SUM(requests), 0)::BIGINT FROM blocked_buckets
     WHERE workspace_id = $1 AND minute >= $2";

/// The fetch-log statement for `q` (`$1` is the workspace id), the connector key to bind as `$2` if
/// any, the time and cursor values to bind after it, and the page size.
fn fetch_log_sql(q: &FetchLogQuery) -> (String, Option<String>, Vec<i64>, u32) {
    let key = q.connector.as_deref().map(name_key);
    let mut terms = vec!["workspace_id = $1".to_string()];
    if key.is_some() {
        terms.push("connector_key = $2".into());
    }
    let (more, values) = fetch_log_terms(q, |n| format!("${n}"), if key.is_some() { 3 } else { 2 });
    terms.extend(more);
    let page = q.page_size();
    let sql = format!(
        "SELECT id, outcome, {FETCH_COLUMNS} FROM fetch_attempts WHERE {} ORDER BY id DESC LIMIT {}",
        terms.join(" AND "),
        page + 1
    );
    (sql, key, values, page)
}

impl PostgresStore {
    /// The query plans (`EXPLAIN`) of the monitoring reads for `workspace` and `q`, as `(read, plan)`
    /// pairs, for the tests and the benchmark. With `no_seqscan`, sequential scans are discouraged
    /// (as on a table too small for the planner to bother with indexes), which shows whether an index
    /// can serve the query at all.
    #[doc(hidden)]
    pub async fn monitoring_plans(
        &self,
        workspace: &str,
        q: &FetchLogQuery,
        no_seqscan: bool,
    ) -> Result<Vec<(&'static str, String)>, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db_err("starting a transaction"))?;
        if no_seqscan {
            tx.batch_execute("SET LOCAL enable_seqscan = off")
                .await
                .map_err(db_err("explaining"))?;
        }
        let ws = find_workspace(&tx, workspace).await?;
        let (log_sql, key, values, _) = fetch_log_sql(q);
        let series_key = key.clone().unwrap_or_default();
        let since = window_start(now_millis() - 24 * 3_600_000);
        let mut log_bind: Vec<&(dyn ToSql + Sync)> = vec![&ws.id];
        if let Some(key) = &key {
            log_bind.push(key);
        }
        log_bind.extend(values.iter().map(|v| v as &(dyn ToSql + Sync)));
        let reads: Vec<(&'static str, String, Vec<&(dyn ToSql + Sync)>)> = vec![
            ("connector_counts", COUNTS_SQL.into(), vec![&ws.id, &since]),
            (
                "connector_series",
                SERIES_SQL.into(),
                vec![&ws.id, &series_key, &since],
            ),
            (
                "blocked_count",
                BLOCKED_COUNT_SQL.into(),
                vec![&ws.id, &since],
            ),
            ("fetch_log", log_sql, log_bind),
        ];
        let mut out = Vec::new();
        for (name, sql, bind) in reads {
            let rows = tx
                .query(&format!("EXPLAIN {sql}"), &bind)
                .await
                .map_err(db_err("explaining"))?;
            let plan: Vec<String> = rows
                .iter()
                .map(|r| r.get::<_, String>(0).trim().to_string())
                .collect();
            out.push((name, plan.join("; ")));
        }
        tx.rollback().await.map_err(db_err("explaining"))?;
        Ok(out)
    }
}

const FETCH_COLUMNS: &str =
    "at, run_id, connector, method, host, path, status, error, blocked, redirects, duration_ms";

/// A [`FetchAttempt`] from the [`FETCH_COLUMNS`] starting at column `i`.
fn fetch_attempt_at(r: &Row, i: usize) -> FetchAttempt {
    FetchAttempt {
        at: r.get(i),
        run_id: r.get(i + 1),
        connector: r.get(i + 2),
        method: r.get(i + 3),
        host: r.get(i + 4),
        path: r.get(i + 5),
        status: r
            .get::<_, Option<i32>>(i + 6)
            .and_then(|s| u16::try_from(s).ok()),
        error: r.get(i + 7),
        blocked: r.get(i + 8),
        redirects: r.get::<_, i32>(i + 9).max(0) as u32,
        duration_ms: r.get(i + 10),
    }
}

/// Adds one transaction's bucket deltas with atomic upserts: one statement per table, its rows in key
/// order, so concurrent writers lock bucket rows in the same order and cannot deadlock.
async fn add_bucket_deltas<C: GenericClient + Sync>(
    c: &C,
    workspace_id: &str,
    deltas: &BucketDeltas,
) -> Result<(), StoreError> {
    if !deltas.connectors.is_empty() {
        let minute: Vec<i64> = deltas.connectors.keys().map(|(_, m)| *m).collect();
        let key: Vec<&str> = deltas.connectors.keys().map(|(k, _)| k.as_str()).collect();
        let name: Vec<&str> = deltas.connectors.values().map(|v| v.0.as_str()).collect();
        let requests: Vec<i64> = deltas.connectors.values().map(|v| v.1).collect();
        let errors: Vec<i64> = deltas.connectors.values().map(|v| v.2).collect();
        c.execute(
            "INSERT INTO fetch_buckets (workspace_id, minute, connector_key, connector, requests, errors)
             SELECT $1, d.minute, d.connector_key, d.connector, d.requests, d.errors
             FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::BIGINT[])
                WITH ORDINALITY AS d (minute, connector_key, connector, requests, errors, n)
             ORDER BY d.n
             ON CONFLICT (workspace_id, minute, connector_key) DO UPDATE SET
                requests = fetch_buckets.requests + excluded.requests,
                errors = fetch_buckets.errors + excluded.errors,
                connector = excluded.connector",
            &[&workspace_id, &minute, &key, &name, &requests, &errors],
        )
        .await
        .map_err(db_err("counting fetches"))?;
    }
    if !deltas.blocked.is_empty() {
        let minute: Vec<i64> = deltas.blocked.keys().copied().collect();
        let requests: Vec<i64> = deltas.blocked.values().copied().collect();
        c.execute(
            "INSERT INTO blocked_buckets (workspace_id, minute, requests)
             SELECT $1, d.minute, d.requests
             FROM UNNEST($2::BIGINT[], $3::BIGINT[]) WITH ORDINALITY AS d (minute, requests, n)
             ORDER BY d.n
             ON CONFLICT (workspace_id, minute) DO UPDATE SET
                requests = blocked_buckets.requests + excluded.requests",
            &[&workspace_id, &minute, &requests],
        )
        .await
        .map_err(db_err("counting blocked fetches"))?;
    }
    Ok(())
}

const TOKEN_SELECT: &str =
    "SELECT t.id, t.workspace_id, w.name, t.name, t.created_at, t.last_used_at, t.revoked_at
     FROM api_tokens t JOIN workspaces w ON w.id = t.workspace_id";

fn token_row(r: &Row) -> ApiToken {
    ApiToken {
        id: r.get(0),
        workspace_id: r.get(1),
        workspace_name: r.get(2),
        name: r.get(3),
        created_at: r.get(4),
        last_used_at: r.get(5),
        revoked_at: r.get(6),
    }
}
