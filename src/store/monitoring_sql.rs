//! The monitoring statements: where the dialects differ (counts and series), and the fetch log's
//! statement built from its filters.

use super::db::{Dialect, Value};
use super::rows::FETCH_COLUMNS;
use super::{fetch_log_terms, name_key, FetchLogQuery, ERRORS_SQL};

// SQLite: a bare column beside MAX() takes its value from the row holding the maximum, so each
// connector is named as it was last recorded. PostgreSQL says the same with an ordered aggregate.
const COUNTS_SQLITE: &str =
    "SELECT connector, SUM(requests), SUM(errors), MAX(minute) FROM fetch_buckets
     WHERE workspace_id = $1 AND minute >= $2 GROUP BY connector_key";
const COUNTS_POSTGRES: &str =
    "SELECT (array_agg(connector ORDER BY minute DESC))[1], SUM(requests)::BIGINT, SUM(errors)::BIGINT
     FROM fetch_buckets WHERE workspace_id = $1 AND minute >= $2 GROUP BY connector_key";
// Without statistics SQLite would rather range-scan the primary key (every connector's buckets of the
// window); the connector index reads only this connector's.
const SERIES_SQLITE: &str =
    "SELECT minute, requests, errors FROM fetch_buckets INDEXED BY fetch_buckets_by_connector
     WHERE workspace_id = $1 AND connector_key = $2 AND minute >= $3";
const SERIES_POSTGRES: &str = "SELECT minute, requests, errors FROM fetch_buckets
     WHERE workspace_id = $1 AND connector_key = $2 AND minute >= $3";
pub(crate) const BLOCKED_COUNT_SQL: &str =
    "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) FROM blocked_buckets
     WHERE workspace_id = $1 AND minute >= $2";
/// A connector's newest attempts in the window, blocked ones aside: a backward scan of the connector
/// index that stops after `$4` rows.
pub(crate) const RECENT_OUTCOMES_SQL: &str = "SELECT outcome FROM fetch_attempts
     WHERE workspace_id = $1 AND connector_key = $2 AND at >= $3 AND outcome <> 'blocked'
     ORDER BY id DESC LIMIT $4";

/// When a connector last failed: the newest row of the partial index of errors.
pub(crate) fn last_error_sql() -> String {
    format!(
        "SELECT at FROM fetch_attempts WHERE workspace_id = $1 AND connector_key = $2 AND {ERRORS_SQL}
         ORDER BY id DESC LIMIT 1"
    )
}

pub(crate) const PRUNE_SELECT_SQL: &str =
    "SELECT id FROM fetch_attempts WHERE at < $1 ORDER BY at LIMIT $2";

pub(crate) fn counts_sql(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => COUNTS_SQLITE,
        Dialect::Postgres => COUNTS_POSTGRES,
    }
}

pub(crate) fn series_sql(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => SERIES_SQLITE,
        Dialect::Postgres => SERIES_POSTGRES,
    }
}

/// The fetch-log statement for `q` in workspace `ws_id`, its bind values and the page size.
pub(crate) fn fetch_log_sql(ws_id: String, q: &FetchLogQuery) -> (String, Vec<Value>, u32) {
    let mut terms = vec!["workspace_id = $1".to_string()];
    let mut bind: Vec<Value> = vec![ws_id.into()];
    if let Some(key) = q.connector.as_deref().map(name_key) {
        terms.push("connector_key = $2".into());
        bind.push(key.into());
    }
    let (more, values) = fetch_log_terms(q, bind.len() + 1);
    terms.extend(more);
    bind.extend(values.into_iter().map(Value::from));
    let page = q.page_size();
    let sql = format!(
        "SELECT id, outcome, {FETCH_COLUMNS} FROM fetch_attempts WHERE {} ORDER BY id DESC LIMIT ${}",
        terms.join(" AND "),
        bind.len() + 1
    );
    bind.push(i64::from(page + 1).into());
    (sql, bind, page)
}
