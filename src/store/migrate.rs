//! Versioned schema migrations, embedded from `migrations/` and applied when a store is opened.
//!
//! Each backend has its own SQL dialect but the same version numbers. The applied versions are recorded
//! in `codestep_schema`. A store whose highest version is above what this build knows was written by a
//! newer codestep, and opening it fails without touching it.

use super::StoreError;

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
];

/// The schema version this build writes.
pub fn latest(migrations: &[Migration]) -> u32 {
    migrations.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The table recording applied migrations (same DDL on both backends).
pub const SCHEMA_TABLE_DDL: &str = "CREATE TABLE IF NOT EXISTS codestep_schema (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  BIGINT NOT NULL
)";

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
