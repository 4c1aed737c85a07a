//! Versioned schema migrations, embedded from `migrations/` and applied when a store is opened.
//!
//! Each backend has its own SQL dialect but the same version numbers. The applied versions are recorded
//! in `codestep_schema` with the SHA-256 of the SQL that ran, so a migration edited after it was
//! applied is refused by name instead of leaving stores that differ under one version number. Stores
//! from before checksums get theirs recorded on first start. A store whose highest version is above
//! what this build knows was written by a newer codestep, and opening it fails without touching it.
//!
//! Migrating runs under the backend's migration lock (an advisory lock on PostgreSQL, the write lock
//! on SQLite), so nodes starting together migrate once.

use super::db::{job, params, Backend, Dialect, Tx};
use super::error::{Context, StoreError};
use super::now_millis;

/// One migration step.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "tokens_and_fetches",
        sql: include_str!("../../migrations/sqlite/0002_tokens_and_fetches.sql"),
    },
    Migration {
        version: 3,
        name: "monitoring",
        sql: include_str!("../../migrations/sqlite/0003_monitoring.sql"),
    },
    Migration {
        version: 4,
        name: "runs",
        sql: include_str!("../../migrations/sqlite/0004_runs.sql"),
    },
    Migration {
        version: 5,
        name: "token_scopes",
        sql: include_str!("../../migrations/sqlite/0005_token_scopes.sql"),
    },
    Migration {
        version: 6,
        name: "run_io_and_error_excerpts",
        sql: include_str!("../../migrations/sqlite/0006_run_io_and_error_excerpts.sql"),
    },
];

pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "tokens_and_fetches",
        sql: include_str!("../../migrations/postgres/0002_tokens_and_fetches.sql"),
    },
    Migration {
        version: 3,
        name: "monitoring",
        sql: include_str!("../../migrations/postgres/0003_monitoring.sql"),
    },
    Migration {
        version: 4,
        name: "runs",
        sql: include_str!("../../migrations/postgres/0004_runs.sql"),
    },
    Migration {
        version: 5,
        name: "token_scopes",
        sql: include_str!("../../migrations/postgres/0005_token_scopes.sql"),
    },
    Migration {
        version: 6,
        name: "run_io_and_error_excerpts",
        sql: include_str!("../../migrations/postgres/0006_run_io_and_error_excerpts.sql"),
    },
];

/// The schema version this build writes.
pub fn latest(migrations: &[Migration]) -> u32 {
    migrations.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The table recording applied migrations (same DDL on both backends). `checksum` is NULL only for
/// migrations applied before checksums were kept, until the next start records it.
pub const SCHEMA_TABLE_DDL: &str = "CREATE TABLE IF NOT EXISTS codestep_schema (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  BIGINT NOT NULL,
    checksum    TEXT
)";

/// The SHA-256 of a migration's SQL, as lowercase hex.
pub fn checksum(sql: &str) -> String {
    super::sha256_hex(sql.as_bytes())
}

/// Fails if `found` (the store's highest applied version) is newer than this build knows.
pub fn check_not_newer(
    found: u32,
    migrations: &[Migration],
    location: &str,
) -> Result<(), StoreError> {
    let latest = latest(migrations);
    if found > latest {
        return Err(StoreError::Schema(format!(
            "the store at {location} has schema version {found}, but this codestep only knows schema versions up to {latest}: \
             it was written by a newer codestep. Upgrade codestep to use this store (it was left unchanged)."
        )));
    }
    Ok(())
}

/// The migrations still to apply on a store at version `found`, in order.
pub fn pending(found: u32, migrations: &[Migration]) -> Vec<Migration> {
    let mut out: Vec<Migration> = migrations
        .iter()
        .copied()
        .filter(|m| m.version > found)
        .collect();
    out.sort_by_key(|m| m.version);
    out
}

/// One row of `codestep_schema`.
struct Applied {
    version: u32,
    checksum: Option<String>,
}

/// What the applied migrations say about this build's: whether anything needs writing.
struct Review {
    found: u32,
    missing_checksums: bool,
}

/// Checks the applied migrations against this build's: refuses a newer store and an edited migration.
fn review(
    applied: &[Applied],
    migrations: &[Migration],
    location: &str,
) -> Result<Review, StoreError> {
    let found = applied.iter().map(|a| a.version).max().unwrap_or(0);
    check_not_newer(found, migrations, location)?;
    let mut missing_checksums = false;
    for a in applied {
        let Some(m) = migrations.iter().find(|m| m.version == a.version) else {
            continue;
        };
        match &a.checksum {
            None => missing_checksums = true,
            Some(recorded) if *recorded != checksum(m.sql) => {
                return Err(StoreError::Schema(format!(
                    "migration {} ({}) was edited after it was applied to {location}: its SQL no longer \
                     matches the checksum recorded when it ran. Restore the migration as it was; a schema \
                     change needs a new migration.",
                    m.version, m.name
                )))
            }
            Some(_) => {}
        }
    }
    Ok(Review {
        found,
        missing_checksums,
    })
}

async fn read_applied(tx: &mut dyn Tx) -> Result<Vec<Applied>, StoreError> {
    tx.query("SELECT version, checksum FROM codestep_schema", &[])
        .await
        .context("reading the applied migrations")?
        .iter()
        .map(|r| {
            Ok(Applied {
                version: r.int(0)? as u32,
                checksum: r.opt_text(1)?,
            })
        })
        .collect()
}

/// Brings the store to this build's schema: applies pending migrations, records missing checksums,
/// refuses a newer store or an edited migration.
pub(crate) async fn run<B: Backend>(
    db: &B,
    migrations: &'static [Migration],
    location: String,
) -> Result<(), StoreError> {
    // Fast path, without the lock: a store that is up to date needs only this read. A store without
    // the table (or without the checksum column) fails the read and takes the slow path.
    let loc = location.clone();
    let quick = db
        .read(job(move |tx| {
            Box::pin(async move { review(&read_applied(tx).await?, migrations, &loc) })
        }))
        .await;
    match quick {
        Ok(r) if !r.missing_checksums && pending(r.found, migrations).is_empty() => return Ok(()),
        Err(e @ StoreError::Schema(_)) => return Err(e),
        _ => {}
    }
    db.migrate(job(move |tx| {
        Box::pin(async move {
            tx.batch(SCHEMA_TABLE_DDL)
                .await
                .context("creating the schema table")?;
            add_checksum_column(tx, B::DIALECT).await?;
            let applied = read_applied(tx).await?;
            let r = review(&applied, migrations, &location)?;
            for a in applied.iter().filter(|a| a.checksum.is_none()) {
                if let Some(m) = migrations.iter().find(|m| m.version == a.version) {
                    tx.execute(
                        "UPDATE codestep_schema SET checksum = $1 WHERE version = $2",
                        params![checksum(m.sql), m.version],
                    )
                    .await
                    .context("recording a migration's checksum")?;
                }
            }
            for m in pending(r.found, migrations) {
                tx.batch(m.sql).await.map_err(|e| {
                    StoreError::Schema(format!(
                        "migration {} ({}) failed on {location}: {}",
                        m.version, m.name, e.message
                    ))
                })?;
                tx.execute(
                    "INSERT INTO codestep_schema (version, name, applied_at, checksum) VALUES ($1, $2, $3, $4)",
                    params![m.version, m.name, now_millis(), checksum(m.sql)],
                )
                .await
                .context("recording a migration")?;
            }
            Ok(())
        })
    }))
    .await
}

/// Stores from before checksums have a `codestep_schema` without the column: add it.
async fn add_checksum_column(tx: &mut dyn Tx, dialect: Dialect) -> Result<(), StoreError> {
    let has_column = match dialect {
        Dialect::Sqlite => {
            "SELECT COUNT(*) FROM pragma_table_info('codestep_schema') WHERE name = 'checksum'"
        }
        Dialect::Postgres => {
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema()
             AND table_name = 'codestep_schema' AND column_name = 'checksum'"
        }
    };
    let n = tx
        .query(has_column, &[])
        .await
        .context("reading the schema table")?
        .first()
        .map(|r| r.int(0))
        .transpose()?
        .unwrap_or(0);
    if n == 0 {
        tx.batch("ALTER TABLE codestep_schema ADD COLUMN checksum TEXT")
            .await
            .context("adding migration checksums")?;
    }
    Ok(())
}

/// The store's highest applied version.
pub(crate) async fn current_version(tx: &mut dyn Tx) -> Result<u32, StoreError> {
    let row = tx
        .query_opt("SELECT COALESCE(MAX(version), 0) FROM codestep_schema", &[])
        .await
        .context("reading the schema version")?;
    Ok(row.map(|r| r.int(0)).transpose()?.unwrap_or(0) as u32)
}
