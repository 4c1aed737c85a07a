//! The PostgreSQL store, for several codestep nodes sharing one database. No TLS (local or trusted
//! networks). Migrations run under a transaction-scoped advisory lock, so nodes starting together
//! migrate once. Uniqueness races between nodes are settled by the unique indexes.

use async_trait::async_trait;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient, NoTls, Row};

use super::migrate;
use super::{
    name_key, new_id, now_millis, patterns_from_json, patterns_to_json, placement_from_json,
    placement_to_json, ApiToken, AuditEntry, ConnectorChanges, ConnectorRecord, FetchAttempt,
    NewConnectorRow, Rekey, SecretRow, Store, StoreError, Workspace,
};
use crate::vault::Sealed;

const BACKEND: &str = "postgres";
/// Key of the advisory lock taken while migrating.
const MIGRATION_LOCK: i64 = 0x636f_6465_7374_6570; // "codestep"

pub struct PostgresStore {
    client: tokio::sync::Mutex<Client>,
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
        let (mut client, connection) = config.connect(NoTls).await.map_err(|e| {
            StoreError::Config(format!("cannot connect to {describe}: {}", pg_message(&e)))
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("codestep: PostgreSQL connection closed: {}", pg_message(&e));
            }
        });
        migrate_pg(&mut client, &describe).await?;
        Ok(PostgresStore {
            client: tokio::sync::Mutex::new(client),
            describe,
        })
    }
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
        let client = self.client.lock().await;
        current_version(&*client).await
    }

    async fn create_workspace(&self, name: &str, actor: &str) -> Result<Workspace, StoreError> {
        let ws = Workspace {
            id: new_id()?,
            name: name.to_string(),
            created_at: now_millis(),
        };
        let mut client = self.client.lock().await;
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
        let client = self.client.lock().await;
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
        let client = self.client.lock().await;
        find_workspace(&*client, name).await
    }

    async fn delete_workspace(&self, name: &str, actor: &str) -> Result<u64, StoreError> {
        let mut client = self.client.lock().await;
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
        let mut client = self.client.lock().await;
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
        let client = self.client.lock().await;
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
        let client = self.client.lock().await;
        connector_by_name(&*client, workspace, name).await
    }

    async fn update_connector(
        &self,
        workspace_id: &str,
        connector_id: &str,
        changes: ConnectorChanges,
        actor: &str,
    ) -> Result<ConnectorRecord, StoreError> {
        let mut client = self.client.lock().await;
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
        let mut client = self.client.lock().await;
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
        let client = self.client.lock().await;
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
        let client = self.client.lock().await;
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
        let client = self.client.lock().await;
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
        let mut client = self.client.lock().await;
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
        let mut client = self.client.lock().await;
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
        let client = self.client.lock().await;
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
        let client = self.client.lock().await;
        let n = client
            .execute(
                "UPDATE api_tokens SET last_used_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
                &[&now_millis(), &token_hash],
            )
            .await
            .map_err(db_err("checking a token"))?;
        if n == 0 {
            return Ok(None);
        }
        Ok(client
            .query_opt(
                &format!("{TOKEN_SELECT} WHERE t.token_hash = $1 AND t.revoked_at IS NULL"),
                &[&token_hash],
            )
            .await
            .map_err(db_err("checking a token"))?
            .map(|r| token_row(&r)))
    }

    async fn revoke_api_token(
        &self,
        workspace: &str,
        token_id: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut client = self.client.lock().await;
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
        let mut client = self.client.lock().await;
        let tx = client
            .transaction()
            .await
            .map_err(db_err("starting a transaction"))?;
        let stmt = tx
            .prepare(
                "INSERT INTO fetch_attempts (at, workspace_id, run_id, connector, method, host, path, status, error,
                    blocked, redirects, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .await
            .map_err(db_err("recording fetches"))?;
        for a in attempts {
            let status = a.status.map(i32::from);
            let redirects = i32::try_from(a.redirects).unwrap_or(i32::MAX);
            tx.execute(
                &stmt,
                &[
                    &a.at,
                    &workspace_id,
                    &a.run_id,
                    &a.connector,
                    &a.method,
                    &a.host,
                    &a.path,
                    &status,
                    &a.error,
                    &a.blocked,
                    &redirects,
                    &a.duration_ms,
                ],
            )
            .await
            .map_err(db_err("recording fetches"))?;
        }
        tx.commit().await.map_err(db_err("committing"))
    }

    async fn fetch_attempts(
        &self,
        workspace: &str,
        limit: u32,
    ) -> Result<Vec<FetchAttempt>, StoreError> {
        let client = self.client.lock().await;
        let ws = find_workspace(&*client, workspace).await?;
        let rows = client
            .query(
                "SELECT at, run_id, connector, method, host, path, status, error, blocked, redirects, duration_ms
                 FROM fetch_attempts WHERE workspace_id = $1 ORDER BY id DESC LIMIT $2",
                &[&ws.id, &i64::from(limit)],
            )
            .await
            .map_err(db_err("reading fetches"))?;
        Ok(rows
            .iter()
            .map(|r| FetchAttempt {
                at: r.get(0),
                run_id: r.get(1),
                connector: r.get(2),
                method: r.get(3),
                host: r.get(4),
                path: r.get(5),
                status: r
                    .get::<_, Option<i32>>(6)
                    .and_then(|s| u16::try_from(s).ok()),
                error: r.get(7),
                blocked: r.get(8),
                redirects: r.get::<_, i32>(9).max(0) as u32,
                duration_ms: r.get(10),
            })
            .collect())
    }
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
