//! Monitoring reads: per-connector counts over the rolling last 24 hours, an hourly series for the
//! chart, the error log, and the requests blocked by policy. Counts come from per-minute buckets
//! (see `Store::connector_counts`), so they stay cheap with millions of fetch records.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::json::{ApiPath, ApiQuery};
use super::state::AppState;
use crate::store::{
    counts_for, format_time, Counts, FetchLogEntry, FetchLogQuery, Health, Millis, Outcome,
    RecentOutcomes, HEALTH_SAMPLE, MINUTE_MS,
};

const HOUR_MS: Millis = 3_600_000;
const DAY_MS: Millis = 24 * HOUR_MS;
const MAX_PAGE: u32 = 500;

fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// The start of the rolling 24-hour window.
pub fn window_start() -> Millis {
    now_ms() - DAY_MS
}

/// A connector's last 24 hours: counts, error rate, when it last failed and its health.
#[derive(Serialize, ToSchema, Clone)]
#[schema(example = json!(stats_example()))]
pub struct Stats24h {
    /// Requests in the rolling last 24 hours (blocked ones aside).
    #[schema(example = 120)]
    pub requests_24h: u64,
    /// Of those, errors: a status of 400 or more, a network error or a timeout.
    #[schema(example = 3)]
    pub errors_24h: u64,
    /// `errors_24h / requests_24h`, from 0 to 1; 0 without requests.
    #[schema(example = 0.025)]
    pub error_rate_24h: f64,
    /// Set while the connector has errors in the window.
    pub alert: bool,
    pub health: Health,
    /// How many of its newest requests `health` looked at (at most 10), and how many of them failed.
    #[schema(example = 10)]
    pub recent_requests: u32,
    #[schema(example = 1)]
    pub recent_errors: u32,
    /// When it last failed, as far as the records go back; null if never.
    #[schema(format = DateTime, example = "2026-11-25T13:58:00Z")]
    pub last_error_at: Option<String>,
}

fn stats_example() -> serde_json::Value {
    serde_json::json!({
        "requests_24h": 120, "errors_24h": 3, "error_rate_24h": 0.025, "alert": true, "health": "some_errors",
        "recent_requests": 10, "recent_errors": 1, "last_error_at": "2026-11-25T13:58:00Z"
    })
}

impl Stats24h {
    pub fn new(c: Counts, recent: &RecentOutcomes) -> Self {
        let recent_errors = recent.recent.iter().filter(|o| o.is_error()).count() as u32;
        Stats24h {
            requests_24h: c.requests,
            errors_24h: c.errors,
            error_rate_24h: if c.requests == 0 {
                0.0
            } else {
                (c.errors as f64 / c.requests as f64).min(1.0)
            },
            alert: c.alert(),
            health: Health::of(c, &recent.recent),
            recent_requests: recent.recent.len() as u32,
            recent_errors,
            last_error_at: recent.last_error_at.map(format_time),
        }
    }
}

/// The 24 h stats of each of `names` (keyed by the name as given), in two reads.
pub async fn stats_for(
    st: &AppState,
    ws: &str,
    names: &[String],
) -> Result<std::collections::HashMap<String, Stats24h>, ApiError> {
    let since = window_start();
    let counts = st.store.connector_counts(ws, since).await?;
    let recent = st
        .store
        .recent_outcomes(ws, names, since, HEALTH_SAMPLE)
        .await?;
    Ok(names
        .iter()
        .map(|n| {
            let r = recent.get(n).cloned().unwrap_or_default();
            (n.clone(), Stats24h::new(counts_for(&counts, n), &r))
        })
        .collect())
}

#[derive(Serialize, ToSchema)]
pub struct SeriesPointView {
    /// The start of the hour.
    #[schema(format = DateTime, example = "2026-11-25T13:00:00Z")]
    pub start: String,
    #[schema(example = 12)]
    pub requests: u64,
    #[schema(example = 1)]
    pub errors: u64,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "requests_24h": 120, "errors_24h": 3, "error_rate_24h": 0.025, "alert": true, "health": "some_errors",
    "recent_requests": 10, "recent_errors": 1, "last_error_at": "2026-11-25T13:58:00Z",
    "series": [{"start": "2026-11-25T13:00:00Z", "requests": 12, "errors": 1}]
}))]
pub struct ConnectorStats {
    #[serde(flatten)]
    pub totals: Stats24h,
    /// 24 hourly buckets, oldest first.
    pub series: Vec<SeriesPointView>,
}

/// One fetch attempt in the error log or the blocked list: host and path, never the query.
#[derive(Serialize, ToSchema)]
pub struct LogItem {
    #[schema(format = DateTime, example = "2026-11-25T13:58:00Z")]
    pub timestamp: String,
    #[schema(example = 401)]
    pub status: Option<u16>,
    /// The status's text, for a status of 400 or more.
    #[schema(example = "Unauthorized")]
    pub status_text: Option<String>,
    /// The start of the upstream's error body, at most 300 bytes, scrubbed of the connector's secret.
    #[schema(
        example = "{\"error\":{\"message\":\"Invalid API Key provided: sk_live_[redacted]\"}}"
    )]
    pub error_excerpt: Option<String>,
    #[schema(example = "GET")]
    pub method: String,
    #[schema(example = "api.stripe.com")]
    pub host: String,
    #[schema(example = "/v1/charges")]
    pub path: String,
    pub outcome: Outcome,
    #[schema(example = 84.2)]
    pub duration_ms: f64,
    #[schema(example = "stripe")]
    pub connector: Option<String>,
    /// The run that made it: `GET /v1/workspaces/{ws}/runs/{id}`.
    #[schema(example = "3f0c9b6e2d1a4c7e8f9a0b1c2d3e4f50")]
    pub run_id: Option<String>,
}

fn log_item_example() -> serde_json::Value {
    serde_json::json!({
        "timestamp": "2026-11-25T13:58:00Z", "status": 401, "status_text": "Unauthorized",
        "error_excerpt": "{\"error\":{\"message\":\"Invalid API Key provided: sk_live_[redacted]\"}}",
        "method": "GET", "host": "api.stripe.com", "path": "/v1/charges", "outcome": "http_error",
        "duration_ms": 84.2, "connector": "stripe", "run_id": "3f0c9b6e2d1a4c7e8f9a0b1c2d3e4f50"
    })
}

impl From<FetchLogEntry> for LogItem {
    fn from(e: FetchLogEntry) -> Self {
        let a = e.attempt;
        LogItem {
            timestamp: format_time(a.at_ms),
            status: a.status,
            status_text: a.status_text,
            error_excerpt: a.error_excerpt,
            method: a.method,
            host: a.host,
            path: a.path,
            outcome: e.outcome,
            duration_ms: a.duration_ms,
            connector: a.connector,
            run_id: a.run_id,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"items": [log_item_example()], "next": "4127"}))]
pub struct LogPage {
    pub items: Vec<LogItem>,
    /// The `before` cursor of the next page; null on the last page.
    #[schema(example = "4127")]
    pub next: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"count_24h": 2, "items": [{
    "timestamp": "2026-11-25T13:58:00Z", "status": null, "status_text": null, "error_excerpt": null,
    "method": "GET", "host": "evil.example", "path": "/collect", "outcome": "blocked", "duration_ms": 0.1,
    "connector": null, "run_id": "3f0c9b6e2d1a4c7e8f9a0b1c2d3e4f50"}], "next": null}))]
pub struct BlockedPage {
    /// Requests blocked by policy in the rolling last 24 hours.
    #[schema(example = 2)]
    pub count_24h: u64,
    pub items: Vec<LogItem>,
    /// The `before` cursor of the next page; null on the last page.
    #[schema(example = "4127")]
    pub next: Option<String>,
}

/// Filters of the error log. Times are RFC 3339 (`2026-11-25T14:00:00Z`) or Unix milliseconds.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub before: Option<String>,
    /// Attempts at or after this time.
    #[param(format = DateTime, example = "2026-11-25T14:00:00Z")]
    pub since: Option<String>,
    /// Attempts at or before this time.
    #[param(format = DateTime, example = "2026-11-25T15:00:00Z")]
    pub until: Option<String>,
    /// `http_error`, `network_error` or `timeout`.
    #[param(value_type = Option<Outcome>)]
    pub outcome: Option<String>,
}

fn parse_cursor(c: Option<&str>) -> Result<Option<i64>, ApiError> {
    c.map(|s| {
        s.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "before: {s:?} is not a cursor from a previous page"
            ))
        })
    })
    .transpose()
}

pub(crate) fn parse_limit(l: Option<u32>) -> Result<u32, ApiError> {
    match l {
        None => Ok(50),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit: {n} is out of range 1..={MAX_PAGE}"
        ))),
    }
}

/// RFC 3339 in UTC (`2026-11-25T14:00:00Z`, fractions and offsets allowed) or Unix milliseconds.
pub fn parse_time(field: &str, s: &str) -> Result<Millis, ApiError> {
    if let Ok(ms) = s.parse::<Millis>() {
        return Ok(ms);
    }
    parse_rfc3339(s).ok_or_else(|| {
        ApiError::bad_request(format!("{field}: {s:?} is not a time: use RFC 3339 such as 2026-11-25T14:00:00Z, or Unix milliseconds"))
    })
}

fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            return None;
        }
        millis = format!("{:0<3}", &digits[..digits.len().min(3)])
            .parse()
            .ok()?;
        rest = &frac[digits.len()..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        // Bytes, not string slices: a multi-byte character may sit where the colon goes.
        o if o.len() == 6
            && (o.starts_with('+') || o.starts_with('-'))
            && o.as_bytes()[3] == b':' =>
        {
            let (oh, om) = (o[1..3].parse::<i64>().ok()?, o[4..6].parse::<i64>().ok()?);
            if oh > 23 || om > 59 {
                return None;
            }
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (oh * 60 + om)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + millis)
}

fn page(items: Vec<FetchLogEntry>, next: Option<i64>) -> (Vec<LogItem>, Option<String>) {
    (
        items.into_iter().map(LogItem::from).collect(),
        next.map(|n| n.to_string()),
    )
}

/// The `since` of the hourly series: 24 whole hours ending with the current one. A series starts at
/// the minute after `since`'s (`store::window_start`), so `since` is the last minute before the first
/// hour; passing the hour itself started every point a minute late, and in an hour's first minute gave
/// 23 points.
fn hourly_since(now: Millis) -> Millis {
    now - now.rem_euclid(HOUR_MS) - 23 * HOUR_MS - MINUTE_MS
}

/// A connector's requests and errors over the last 24 hours, with an hourly series.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/connectors/{name}/stats", tag = "monitoring", operation_id = "get_connector_stats",
    params(("ws" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = ConnectorStats), (status = 404, body = ErrorBody)), security(("token" = [])))]
pub async fn stats(
    State(st): State<AppState>,
    _caller: Caller,
    ApiPath((ws, name)): ApiPath<(String, String)>,
) -> Result<Json<ConnectorStats>, ApiError> {
    let connector = st.store.connector(&ws, &name).await?;
    let now = now_ms();
    let totals = stats_for(&st, &ws, std::slice::from_ref(&connector.name))
        .await?
        .remove(&connector.name)
        .unwrap_or_else(|| Stats24h::new(Counts::default(), &RecentOutcomes::default()));
    let series = st
        .store
        .connector_series(&ws, &connector.name, hourly_since(now), HOUR_MS)
        .await?
        .into_iter()
        .map(|p| SeriesPointView {
            start: format_time(p.start),
            requests: p.requests,
            errors: p.errors,
        })
        .collect();
    Ok(Json(ConnectorStats { totals, series }))
}

/// A connector's error log, newest first, with filters and a cursor.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/connectors/{name}/errors", tag = "monitoring", operation_id = "list_connector_errors",
    params(("ws" = String, Path), ("name" = String, Path), LogParams),
    responses((status = 200, body = LogPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn errors(
    State(st): State<AppState>,
    _caller: Caller,
    ApiPath((ws, name)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<LogParams>,
) -> Result<Json<LogPage>, ApiError> {
    let outcome = match p.outcome.as_deref() {
        None | Some("") => None,
        Some(o) => {
            let parsed = Outcome::ALL
                .into_iter()
                .find(|x| x.as_str() == o && x.is_error());
            Some(parsed.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "outcome: {o:?} is not one of http_error, network_error, timeout"
                ))
            })?)
        }
    };
    let since = p
        .since
        .as_deref()
        .map(|s| parse_time("since", s))
        .transpose()?;
    let until = p
        .until
        .as_deref()
        .map(|s| parse_time("until", s))
        .transpose()?;
    let before = parse_cursor(p.before.as_deref())?;
    let limit = parse_limit(p.limit)?;
    // Parameters first: a bad one is a 400 whether or not the connector exists.
    let connector = st.store.connector(&ws, &name).await?;
    let q = FetchLogQuery {
        connector: Some(connector.name),
        only_errors: true,
        outcome,
        since,
        until,
        before,
        limit,
        ..Default::default()
    };
    let log = st.store.fetch_log(&ws, &q).await?;
    let (items, next) = page(log.items, log.next);
    Ok(Json(LogPage { items, next }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BlockedParams {
    pub limit: Option<u32>,
    pub before: Option<String>,
}

/// Requests of a workspace's steps that no connector allowed, newest first.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/blocked", tag = "monitoring", operation_id = "list_blocked_requests",
    params(("ws" = String, Path), BlockedParams),
    responses((status = 200, body = BlockedPage), (status = 404, body = ErrorBody)), security(("token" = [])))]
pub async fn blocked(
    State(st): State<AppState>,
    _caller: Caller,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(p): ApiQuery<BlockedParams>,
) -> Result<Json<BlockedPage>, ApiError> {
    st.store.workspace(&ws).await?;
    let count_24h = st.store.blocked_count(&ws, window_start()).await?;
    let q = FetchLogQuery {
        blocked_only: true,
        before: parse_cursor(p.before.as_deref())?,
        limit: parse_limit(p.limit)?,
        ..Default::default()
    };
    let log = st.store.fetch_log(&ws, &q).await?;
    let (items, next) = page(log.items, log.next);
    Ok(Json(BlockedPage {
        count_24h,
        items,
        next,
    }))
}

#[cfg(test)]
mod tests {
    use super::{hourly_since, parse_rfc3339, HOUR_MS};

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-11-25T14:00:00Z"),
            Some(1_795_615_200_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-25T15:00:00.250+01:00"),
            Some(1_795_615_200_250)
        );
        assert_eq!(parse_rfc3339("2026-13-25T14:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2026-11-25T14:00:00+0\u{e9}00"), None);
        assert_eq!(parse_rfc3339("2026-11-25T14:00:00+99:99"), None);
    }

    /// Whatever the minute, the hourly series has 24 points, each starting on a whole hour, the last
    /// one holding now.
    #[test]
    fn the_hourly_series_is_24_whole_hours_ending_with_the_current_one() {
        let hour = 1_796_515_200_000; // 2026-12-06T00:00:00Z
        for now in [hour, hour + 30_000, hour + 59 * 60_000, hour + HOUR_MS - 1] {
            let points = crate::store::dense_series([], hourly_since(now), HOUR_MS, now).unwrap();
            assert_eq!(points.len(), 24, "at {now}");
            assert!(points.iter().all(|p| p.start % HOUR_MS == 0), "at {now}");
            assert_eq!(points[23].start, hour, "at {now}");
        }
    }
}
