//! The SQLite backend: one file in WAL mode, one writer connection and a few reader connections, so
//! that reads never wait behind a write (a WAL reader sees the last commit while a write is open).
//!
//! Durability: `synchronous=NORMAL`. In WAL mode a commit is in the WAL file when it returns, so
//! nothing is lost when the process is killed; the WAL is synced to disk at checkpoints, so a power
//! loss or an OS crash may lose the last transactions before one (the store stays consistent). That
//! trade keeps an `fsync` off every response path.
//!
//! Each job runs on tokio's blocking pool. The shared logic is async (PostgreSQL needs it), but a
//! SQLite statement never waits on anything but the file, so its futures finish on the first poll and
//! `block_on` drives them on the blocking thread.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;

use super::db::{Backend, DbError, Dialect, Job, Row, Tx, Value};
use super::error::StoreError;
use super::migrate;
use super::sql_store::SqlStore;
use super::FetchLogQuery;

const BACKEND: &str = "sqlite";
/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT_MS: u64 = 30_000;
/// Reader connections: reads run in parallel with each other and with the writer.
const READERS: usize = 4;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// The SQLite store.
pub type SqliteStore = SqlStore<Sqlite>;

/// Connections of one kind (the writer, or the readers): a permit per connection, and the idle ones.
/// A connection lost to a panicking job is opened again on next use.
struct Slot {
    permits: Arc<tokio::sync::Semaphore>,
    idle: Mutex<Vec<Connection>>,
    readonly: bool,
}

impl Slot {
    fn new(size: usize, readonly: bool) -> Slot {
        Slot {
            permits: Arc::new(tokio::sync::Semaphore::new(size)),
            idle: Mutex::new(Vec::new()),
            readonly,
        }
    }

    fn take(&self) -> Option<Connection> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn put(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }
}

pub struct Sqlite {
    path: PathBuf,
    writer: Arc<Slot>,
    readers: Arc<Slot>,
}

fn db_error(e: rusqlite::Error) -> DbError {
    let unique_violation = matches!(&e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation
            && f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE);
    DbError {
        backend: BACKEND,
        message: e.to_string(),
        unique_violation,
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        db_error(e)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::Int(v) => ToSqlOutput::from(*v),
            Value::Real(v) => ToSqlOutput::from(*v),
            Value::Bool(v) => ToSqlOutput::from(*v),
            Value::Text(v) => ToSqlOutput::from(v.as_str()),
            Value::Blob(v) => ToSqlOutput::from(v.as_slice()),
        })
    }
}

fn value_of(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// A connection lent to one job. It owns the connection (which is `Send` but not `Sync`) so that the
/// job's future is `Send`, as the shared logic requires.
struct SqliteTx {
    conn: Connection,
}

impl SqliteTx {
    /// Prepares (from the cache) and binds `params[n - 1]` to `$n`.
    fn prepare(
        &self,
        sql: &str,
        params: &[Value],
    ) -> rusqlite::Result<rusqlite::CachedStatement<'_>> {
        let mut stmt = self.conn.prepare_cached(&numbered_placeholders(sql))?;
        stmt.clear_bindings();
        let count = stmt.parameter_count();
        if count > params.len() {
            return Err(rusqlite::Error::InvalidParameterCount(params.len(), count));
        }
        for (i, v) in params.iter().take(count).enumerate() {
            stmt.raw_bind_parameter(i + 1, v)?;
        }
        Ok(stmt)
    }
}

/// The statement with `$n` written `?n`. SQLite accepts `$n` but treats it as a name, numbered by first
/// appearance (`$2` before `$1` would be parameter 1) and found by a linear search, which makes binding
/// a multi-row INSERT quadratic; `?n` is parameter number n. The store's SQL has no `$` in literals.
fn numbered_placeholders(sql: &str) -> std::borrow::Cow<'_, str> {
    if !sql.contains('$') {
        return sql.into();
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out.into()
}

#[async_trait::async_trait]
impl Tx for SqliteTx {
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut stmt = self.prepare(sql, params)?;
        stmt.raw_execute().map(|n| n as u64).map_err(db_error)
    }

    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.prepare(sql, params)?;
        let width = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(value_of(r.get_ref(i)?));
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    async fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.execute_batch(sql).map_err(db_error)
    }
}

fn open_connection(path: &Path, readonly: bool) -> Result<Connection, StoreError> {
    let location = path.display().to_string();
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Config(format!("cannot open the SQLite store {location}: {e}")))?;
    let setup = |e: rusqlite::Error| db_error(e).doing("setting up a connection");
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
        .map_err(setup)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // A cached statement keeps its plan whatever is bound to it. Without this, SQLite (built with
    // STAT4) marks parameters that could change a plan, and re-prepares the statement whenever one is
    // bound anew: the token check re-prepared its SELECT on every request (3 % of a trivial run's CPU).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(setup)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| StoreError::Config(format!("{location} is not a usable SQLite store: {e}")))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Config(format!(
            "cannot switch {location} to WAL journal mode (it reports {mode:?})"
        )));
    }
    // See the module's comment for what NORMAL means for durability in WAL mode.
    conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
        .map_err(setup)?;
    if readonly {
        // A read job can never write by mistake (it would take the write lock behind the writer's back).
        conn.execute_batch("PRAGMA query_only=ON;").map_err(setup)?;
    }
    Ok(conn)
}

/// A transaction-control statement (BEGIN, COMMIT, ROLLBACK), prepared once per connection: parsing
/// it on every job showed in a profile of trivial runs.
fn control(conn: &Connection, sql: &'static str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

impl Sqlite {
    /// Runs `job` on a connection of `slot` inside `begin` … COMMIT (ROLLBACK if the job fails).
    ///
    /// The permit and the connection go with the blocking task, and come back when it ends: if the
    /// caller stops waiting (a request cancelled), no other job gets the connection while it is busy.
    async fn run<T: Send + 'static>(
        &self,
        readers: bool,
        begin: &'static str,
        job: Job<T>,
    ) -> Result<T, StoreError> {
        let slot = if readers { &self.readers } else { &self.writer }.clone();
        let permit = slot
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StoreError::backend(BACKEND, "waiting for a connection", e))?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match slot.take() {
                Some(c) => c,
                None => open_connection(&path, slot.readonly)?,
            };
            let mut tx = SqliteTx { conn };
            let result = match control(&tx.conn, begin) {
                Err(e) => Err(db_error(e).doing("starting a transaction")),
                Ok(()) => {
                    let result = futures::executor::block_on(job(&mut tx));
                    let end = match &result {
                        Ok(_) => control(&tx.conn, "COMMIT"),
                        Err(_) => control(&tx.conn, "ROLLBACK"),
                    };
                    match end {
                        Ok(()) => result,
                        Err(e) => {
                            let _ = control(&tx.conn, "ROLLBACK");
                            result.and(Err(db_error(e).doing("committing")))
                        }
                    }
                }
            };
            slot.put(tx.conn);
            result
        })
        .await
        .map_err(|e| StoreError::backend(BACKEND, "running a query", e))?
    }
}

#[async_trait::async_trait]
impl Backend for Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;

    fn describe(&self) -> String {
        format!("SQLite file {}", self.path.display())
    }

    async fn read<T: Send + 'static>(&self, job: Job<T>) -> Result<T, StoreError> {
        // A deferred transaction: the job's statements see one snapshot, and take no lock.
        self.run(true, "BEGIN", job).await
    }

    async fn write<T: Send + 'static>(&self, job: Job<T>) -> Result<T, StoreError> {
        // IMMEDIATE takes the write lock first, so a transaction never fails upgrading a read lock.
        self.run(false, "BEGIN IMMEDIATE", job).await
    }

    async fn migrate<T: Send + 'static>(&self, job: Job<T>) -> Result<T, StoreError> {
        // The write lock is the migration lock: another process opening the file waits for it.
        self.write(job).await
    }
}

impl SqlStore<Sqlite> {
    /// Opens (creating the file if needed, in a directory that must exist) the SQLite file at `path`
    /// and migrates it.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        let p = path.clone();
        // Open the writer first: it creates the file (private to its owner) and sets WAL mode.
        let writer = tokio::task::spawn_blocking(move || {
            create_file(&p)?;
            open_connection(&p, false)
        })
        .await
        .map_err(|e| StoreError::backend(BACKEND, "opening the store", e))??;
        let db = Sqlite {
            path,
            writer: Arc::new(Slot::new(1, false)),
            readers: Arc::new(Slot::new(READERS, true)),
        };
        db.writer.put(writer);
        SqlStore::migrated(db, migrate::SQLITE).await
    }

    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// The query plans (`EXPLAIN QUERY PLAN`) of the monitoring reads for `workspace` and `q`, as
    /// `(read, plan)` pairs: for the tests and the benchmark to check that they are index scans.
    #[doc(hidden)]
    pub async fn monitoring_plans(
        &self,
        workspace: &str,
        q: &FetchLogQuery,
    ) -> Result<Vec<(&'static str, String)>, StoreError> {
        let reads = self.monitoring_reads(workspace, q).await?;
        self.db
            .read(super::db::job(move |tx| {
                Box::pin(async move {
                    let mut out = Vec::new();
                    for (name, sql, bind) in reads {
                        let rows = tx
                            .query(&format!("EXPLAIN QUERY PLAN {sql}"), &bind)
                            .await
                            .map_err(|e| e.doing("explaining"))?;
                        let plan = rows
                            .iter()
                            .map(|r| r.text(3))
                            .collect::<Result<Vec<_>, _>>()?
                            .join("; ");
                        out.push((name, plan));
                    }
                    Ok(out)
                })
            }))
            .await
    }
}

/// Creates the directory and the file, private to its owner (it holds sealed secrets), before SQLite
/// opens it.
fn create_file(path: &Path) -> Result<(), StoreError> {
    // A path into a directory that does not exist is a mistake to report, not a tree to make.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(StoreError::Config(format!(
                "the store's directory {} does not exist: check the path, or create the directory first",
                dir.display()
            )));
        }
    }
    if !path.exists() {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_parameters() {
        assert_eq!(
            numbered_placeholders("SELECT $2, $1 FROM t WHERE a = $10"),
            "SELECT ?2, ?1 FROM t WHERE a = ?10"
        );
        assert_eq!(numbered_placeholders("SELECT 1"), "SELECT 1");
    }

    /// A cached statement is used as prepared whatever is bound to it: the request path's token check
    /// (a unique index, and a bound time) was re-prepared by SQLite on every request.
    #[tokio::test]
    async fn cached_statements_are_not_prepared_again_when_rebound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        SqlStore::<Sqlite>::open(&path).await.unwrap();
        let tx = SqliteTx {
            conn: open_connection(&path, true).unwrap(),
        };
        let sql = format!(
            "{} WHERE t.token_hash = $1 AND t.revoked_at IS NULL
             AND (t.expires_at IS NULL OR t.expires_at > $2)",
            super::super::rows::TOKEN_SELECT
        );
        for now in [1_i64, 2, 3] {
            let params = [Value::Blob(vec![now as u8; 32]), Value::Int(now)];
            let mut stmt = tx.prepare(&sql, &params).unwrap();
            assert!(stmt.raw_query().next().unwrap().is_none());
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "bound {now}"
            );
        }
    }
}
