//! The small interface the store's logic is written against, once for both backends: run statements
//! with bind values inside a read or a write transaction, get rows of [`Value`]s back.
//!
//! Statements use `$1`, `$2`, … placeholders, which both PostgreSQL and SQLite accept (the SQLite
//! backend binds them as the numbered `?n` for speed, see `sqlite.rs`). A backend
//! implements [`Backend`] (where reads and writes run: a pool, a writer connection and readers) and
//! [`Tx`] (one statement at a time on a connection it holds).

use futures::future::BoxFuture;

use super::error::StoreError;

/// The SQL dialect of a backend, for the few statements where the two differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A database error as a backend reports it, before the store says what it was doing
/// ([`DbError::doing`], or [`Context::context`](super::error::Context::context) on a result).
#[derive(Debug)]
pub struct DbError {
    pub backend: &'static str,
    pub message: String,
    /// A unique index refused the row: a name taken meanwhile by another writer.
    pub unique_violation: bool,
}

/// A bind value or a column value, whatever the backend.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Bool(_) => "a boolean",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::$variant(v.into())
            }
        }
    )*};
}

value_from!(
    i64 => Int,
    i32 => Int,
    u32 => Int,
    u16 => Int,
    f64 => Real,
    bool => Bool,
    String => Text,
    &str => Text,
    &String => Text,
    Vec<u8> => Blob,
    &[u8] => Blob,
);

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// Bind values: `params![a, b, c]`.
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        &[$($crate::store::db::Value::from($v)),*][..]
    };
}
pub(crate) use params;

/// One result row.
#[derive(Clone, Debug)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Schema(format!("a result row has no column {i}")))
    }

    fn wrong(&self, i: usize, wanted: &str) -> StoreError {
        let found = self.0.get(i).map_or("nothing", Value::kind);
        StoreError::Schema(format!(
            "column {i} of a result row holds {found} where {wanted} was expected"
        ))
    }

    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?.ok_or_else(|| self.wrong(i, "an integer"))
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            Value::Bool(b) => Ok(Some(i64::from(*b))),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    pub fn real(&self, i: usize) -> Result<f64, StoreError> {
        match self.at(i)? {
            Value::Real(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            _ => Err(self.wrong(i, "a real")),
        }
    }

    pub fn bool(&self, i: usize) -> Result<bool, StoreError> {
        match self.at(i)? {
            Value::Bool(b) => Ok(*b),
            // SQLite keeps booleans as integers.
            Value::Int(v) => Ok(*v != 0),
            _ => Err(self.wrong(i, "a boolean")),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?.ok_or_else(|| self.wrong(i, "text"))
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            _ => Err(self.wrong(i, "text")),
        }
    }

    pub fn blob(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        match self.at(i)? {
            Value::Blob(b) => Ok(b.clone()),
            _ => Err(self.wrong(i, "bytes")),
        }
    }
}

/// A connection in use by one job: inside a transaction for writes (and for SQLite reads, which then
/// see one snapshot), or in autocommit for PostgreSQL reads.
#[async_trait::async_trait]
pub trait Tx: Send {
    /// Runs one statement; returns how many rows it changed.
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
    /// Runs one statement and returns its rows.
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;
    /// Runs several statements without bind values (migrations).
    async fn batch(&mut self, sql: &str) -> Result<(), DbError>;

    async fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }
}

/// A unit of work on a connection. The future borrows the connection only.
pub type Job<T> = Box<
    dyn for<'a> FnOnce(&'a mut dyn Tx) -> BoxFuture<'a, Result<T, StoreError>> + Send + 'static,
>;

/// Wraps a closure as a [`Job`] (this is where the closure's higher-ranked type is inferred).
pub fn job<T, F>(f: F) -> Job<T>
where
    F: for<'a> FnOnce(&'a mut dyn Tx) -> BoxFuture<'a, Result<T, StoreError>> + Send + 'static,
{
    Box::new(f)
}

/// Where jobs run. A write job runs in one transaction that commits if the job returns `Ok` and rolls
/// back otherwise. A read job must not write; it never waits for a write in progress.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    const DIALECT: Dialect;

    /// Where the store lives, for messages (never a password).
    fn describe(&self) -> String;

    async fn read<T: Send + 'static>(&self, job: Job<T>) -> Result<T, StoreError>;
    async fn write<T: Send + 'static>(&self, job: Job<T>) -> Result<T, StoreError>;
    /// A write job that also holds the migration lock (only one process migrates at a time).
    async fn migrate<T: Send + 'static>(&self, job: Job<T>) -> Result<T, StoreError>;
}

impl Dialect {
    /// Row locks for a read that is followed by a write of the same rows. PostgreSQL needs them
    /// against other nodes; a SQLite write transaction holds the whole file already.
    pub fn for_update(self, of: &str) -> String {
        match self {
            Dialect::Postgres => format!(" FOR UPDATE OF {of}"),
            Dialect::Sqlite => String::new(),
        }
    }

    /// Keeps a parent row from being deleted by another node until this transaction ends.
    pub fn for_share(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR SHARE",
            Dialect::Sqlite => "",
        }
    }

    /// Lets two nodes pruning at once split the rows instead of queueing on each other's locks.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        }
    }
}
