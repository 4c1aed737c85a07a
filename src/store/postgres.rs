//! The PostgreSQL backend, for several codestep nodes sharing one database: a pool of connections
//! (so requests do not queue behind one connection, and retention batches do not hold up
//! authentication), prepared statements cached per connection, and a statement timeout. No TLS
//! (local or trusted networks).
//!
//! Configured on the URL, beside the usual libpq parameters (which are passed on):
//! - `pool_size=N`: connections this node may open (default [`DEFAULT_POOL_SIZE`], or
//!   `CODESTEP_DB_POOL_SIZE`);
//! - `statement_timeout_ms=N`: the server cancels a statement running longer (default
//!   [`DEFAULT_STATEMENT_TIMEOUT_MS`]; 0 turns it off).
//!
//! Durability is the server's: a commit returns once PostgreSQL has it with its own `synchronous_commit`
//! setting (on by default: flushed to the WAL on disk).
//!
//! Migrations run under a transaction-scoped advisory lock, so nodes starting together migrate once.
//! Uniqueness races between nodes are settled by the unique indexes; dropped connections are replaced
//! by the pool on next use.

use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::NoTls;

use super::db::{job, params, Backend, DbError, Dialect, Job, Row, Tx, Value};
use super::error::StoreError;
use super::migrate;
use super::sql_store::SqlStore;
use super::FetchLogQuery;

const BACKEND: &str = "postgres";
/// Key of the advisory lock taken while migrating.
const MIGRATION_LOCK: i64 = 0x636f_6465_7374_6570; // "codestep"
/// Connections per node when neither the URL nor the environment says.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// The statement timeout when the URL does not give one.
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 30_000;
/// Environment variable with the pool size (the URL's `pool_size` wins).
pub const POOL_SIZE_ENV: &str = "CODESTEP_DB_POOL_SIZE";
/// How long a call waits for a free connection before failing.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The PostgreSQL store.
pub type PostgresStore = SqlStore<Postgres>;

pub struct Postgres {
    pool: Pool,
    describe: String,
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

fn db_error(e: tokio_postgres::Error) -> DbError {
    DbError {
        backend: BACKEND,
        unique_violation: e.code() == Some(&SqlState::UNIQUE_VIOLATION),
        message: pg_message(&e),
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> DbError {
        db_error(e)
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// Bind values take the type the server inferred for the parameter (an integer column may be
/// INTEGER or BIGINT), so one [`Value`] serves every column of its kind.
impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(v), &Type::INT8) => v.to_sql(ty, out),
            (Value::Int(v), &Type::INT4) => i32::try_from(*v)?.to_sql(ty, out),
            (Value::Int(v), &Type::INT2) => i16::try_from(*v)?.to_sql(ty, out),
            (Value::Int(v), &Type::FLOAT8) => (*v as f64).to_sql(ty, out),
            (Value::Real(v), &Type::FLOAT8) => v.to_sql(ty, out),
            (Value::Real(v), &Type::FLOAT4) => (*v as f32).to_sql(ty, out),
            (Value::Bool(v), &Type::BOOL) => v.to_sql(ty, out),
            (Value::Text(v), _) if <&str as ToSql>::accepts(ty) => v.as_str().to_sql(ty, out),
            (Value::Blob(v), &Type::BYTEA) => v.as_slice().to_sql(ty, out),
            (v, ty) => Err(format!("cannot bind {v:?} as a {ty} parameter").into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8
                | Type::INT4
                | Type::INT2
                | Type::FLOAT8
                | Type::FLOAT4
                | Type::BOOL
                | Type::BYTEA
        ) || <&str as ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Value, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            _ => Value::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Value, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(ty: &Type) -> bool {
        <Value as ToSql>::accepts(ty)
    }
}

/// The connection a job runs on: in autocommit for reads, in a transaction for writes.
enum PgTx<'a> {
    Client(&'a deadpool_postgres::Client),
    Tx(deadpool_postgres::Transaction<'a>),
}

impl PgTx<'_> {
    async fn statement(&self, sql: &str) -> Result<tokio_postgres::Statement, DbError> {
        match self {
            PgTx::Client(c) => c.prepare_cached(sql).await,
            PgTx::Tx(t) => t.prepare_cached(sql).await,
        }
        .map_err(db_error)
    }
}

fn bind(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

#[async_trait::async_trait]
impl Tx for PgTx<'_> {
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let stmt = self.statement(sql).await?;
        let params = bind(params);
        match self {
            PgTx::Client(c) => c.execute(&stmt, &params).await,
            PgTx::Tx(t) => t.execute(&stmt, &params).await,
        }
        .map_err(db_error)
    }

    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let stmt = self.statement(sql).await?;
        let params = bind(params);
        let rows = match self {
            PgTx::Client(c) => c.query(&stmt, &params).await,
            PgTx::Tx(t) => t.query(&stmt, &params).await,
        }?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<_, Value>(i))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error)
    }

    async fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            PgTx::Client(c) => c.batch_execute(sql).await,
            PgTx::Tx(t) => t.batch_execute(sql).await,
        }
        .map_err(db_error)
    }
}

/// The URL's codestep parameters, taken off before the rest goes to the driver.
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    url: String,
    pool_size: usize,
    statement_timeout_ms: u64,
}

fn settings(url: &str, env_pool_size: Option<String>) -> Result<Settings, StoreError> {
    let parse = |name: &str, v: &str| {
        v.parse::<u64>().map_err(|_| {
            StoreError::Config(format!(
                "{name}: {v:?} is not a whole number (in the PostgreSQL URL or {POOL_SIZE_ENV})"
            ))
        })
    };
    let mut pool_size = match env_pool_size.filter(|v| !v.is_empty()) {
        Some(v) => Some(parse("pool_size", &v)?),
        None => None,
    };
    let mut statement_timeout_ms = DEFAULT_STATEMENT_TIMEOUT_MS;
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("pool_size", v)) => pool_size = Some(parse("pool_size", v)?),
            Some(("statement_timeout_ms", v)) => {
                statement_timeout_ms = parse("statement_timeout_ms", v)?
            }
            _ => kept.push(pair),
        }
    }
    let pool_size = pool_size.unwrap_or(DEFAULT_POOL_SIZE as u64);
    if pool_size == 0 || pool_size > 1000 {
        return Err(StoreError::Config(format!(
            "pool_size: {pool_size} is not a pool size; use 1 to 1000"
        )));
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(Settings {
        url,
        pool_size: pool_size as usize,
        statement_timeout_ms,
    })
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

impl Postgres {
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::Config(format!(
                "cannot connect to {}: {}",
                self.describe,
                pg_message(&e)
            )),
            other => StoreError::backend(BACKEND, "waiting for a connection", other),
        })
    }

    /// Runs `job` in a transaction, after `first` (a lock) if given.
    async fn in_transaction<T: Send + 'static>(
        &self,
        first: Option<&str>,
        job: Job<T>,
    ) -> Result<T, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| db_error(e).doing("starting a transaction"))?;
        let mut tx = PgTx::Tx(tx);
        if let Some(sql) = first {
            // Migrations, and waiting for another node's, may take longer than any request may.
            tx.execute("SET LOCAL statement_timeout = 0", &[])
                .await
                .map_err(|e| e.doing("lifting the statement timeout for migrations"))?;
            tx.execute(sql, params![MIGRATION_LOCK])
                .await
                .map_err(|e| e.doing("taking the migration lock"))?;
        }
        let result = job(&mut tx).await;
        let PgTx::Tx(t) = tx else {
            unreachable!("a transaction stays one")
        };
        match result {
            Ok(v) => {
                t.commit()
                    .await
                    .map_err(|e| db_error(e).doing("committing"))?;
                Ok(v)
            }
            Err(e) => {
                // Dropping the transaction rolls it back too; saying so keeps the connection clean
                // for the pool at once.
                let _ = t.rollback().await;
                Err(e)
            }
        }
    }
}

#[async_trait::async_trait]
impl Backend for Postgres {
    const DIALECT: Dialect = Dialect::Postgres;

    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn read<T: Send + 'static>(&self, job: Job<T>) -> Result<T, StoreError> {
        // Autocommit: a read costs no BEGIN/COMMIT round trips.
        let client = self.client().await?;
        let mut tx = PgTx::Client(&client);
        job(&mut tx).await
    }

    async fn write<T: Send + 'static>(&self, job: Job<T>) -> Result<T, StoreError> {
        self.in_transaction(None, job).await
    }

    async fn migrate<T: Send + 'static>(&self, job: Job<T>) -> Result<T, StoreError> {
        self.in_transaction(Some("SELECT pg_advisory_xact_lock($1)"), job)
            .await
    }
}

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://user:password@host:port/db?options=...&pool_size=N`) and migrates.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let s = settings(url, std::env::var(POOL_SIZE_ENV).ok())?;
        let mut config: tokio_postgres::Config = s
            .url
            .parse()
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
        if s.statement_timeout_ms > 0 {
            let options = format!(
                "{} -c statement_timeout={}",
                config.get_options().unwrap_or(""),
                s.statement_timeout_ms
            );
            config.options(options.trim_start());
        }
        let describe = describe_config(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A connection the server closed (restart, idle timeout) is seen as closed and
                // replaced when next taken from the pool.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(s.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StoreError::Config(format!("cannot make a connection pool: {e}")))?;
        SqlStore::migrated(Postgres { pool, describe }, migrate::POSTGRES).await
    }

    /// How many connections the pool may open.
    pub fn pool_size(&self) -> usize {
        self.db.pool.status().max_size
    }

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
        let reads = self.monitoring_reads(workspace, q).await?;
        // In a transaction: SET LOCAL ends with it.
        self.db
            .write(job(move |tx| {
                Box::pin(async move {
                    if no_seqscan {
                        tx.batch("SET LOCAL enable_seqscan = off")
                            .await
                            .map_err(|e| e.doing("explaining"))?;
                    }
                    let mut out = Vec::new();
                    for (name, sql, bind) in reads.into_iter().filter(|(n, ..)| *n != "prune") {
                        let rows = tx
                            .query(&format!("EXPLAIN {sql}"), &bind)
                            .await
                            .map_err(|e| e.doing("explaining"))?;
                        let plan = rows
                            .iter()
                            .map(|r| r.text(0).map(|l| l.trim().to_string()))
                            .collect::<Result<Vec<_>, _>>()?;
                        out.push((name, plan.join("; ")));
                    }
                    Ok(out)
                })
            }))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_settings_come_off_the_url() {
        let s = settings(
            "postgres://u@h:5432/db?options=-csearch_path%3Dx&pool_size=4&statement_timeout_ms=500",
            None,
        )
        .unwrap();
        assert_eq!(s.url, "postgres://u@h:5432/db?options=-csearch_path%3Dx");
        assert_eq!((s.pool_size, s.statement_timeout_ms), (4, 500));
        let s = settings("postgres://u@h/db", Some("7".into())).unwrap();
        assert_eq!((s.url.as_str(), s.pool_size), ("postgres://u@h/db", 7));
        assert_eq!(s.statement_timeout_ms, DEFAULT_STATEMENT_TIMEOUT_MS);
        assert!(settings("postgres://u@h/db?pool_size=0", None).is_err());
        assert!(settings("postgres://u@h/db?pool_size=x", None).is_err());
    }
}
