//! The audit trail of a workspace, readable: who (the token's label, the operator or a CLI user), what,
//! which connector, when and from which address; newest first, a page at a time. Never a secret: the
//! store writes only names of fields that changed.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::json::{ApiPath, ApiQuery};
use super::monitoring::parse_limit;
use super::state::AppState;
use crate::store::{format_time, AuditEntry};

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": 42, "at": "2026-12-04T10:00:00Z", "who": "token \"deploy\"", "address": "203.0.113.7",
    "action": "connector.update", "connector": "stripe", "detail": "patterns, secret"}))]
pub struct AuditView {
    /// The entry's id; pass it as `before` to read older entries.
    pub id: i64,
    #[schema(format = DateTime)]
    pub at: String,
    /// `operator`, `token "LABEL"` or `cli:USER`.
    pub who: String,
    /// The client address of the API call; null for the CLI.
    pub address: Option<String>,
    /// `workspace.create`, `connector.create`, `connector.update`, `connector.delete`,
    /// `token.create`, `token.revoke`, `key.rotate`, …
    pub action: String,
    pub connector: Option<String>,
    /// What changed, by field name; never a value of a secret.
    pub detail: String,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        AuditView {
            id: e.id,
            at: format_time(e.at),
            who: e.actor,
            address: e.address,
            action: e.action,
            connector: e.connector,
            detail: e.detail,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"items": [{"id": 42, "at": "2026-12-04T10:00:00Z", "who": "token \"deploy\"",
    "address": "203.0.113.7", "action": "connector.update", "connector": "stripe", "detail": "patterns, secret"}],
    "next": 41}))]
pub struct AuditList {
    pub items: Vec<AuditView>,
    /// The `before` of the next (older) page; null on the last page.
    pub next: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// Only entries older than this id: the `next` of the previous page.
    pub before: Option<i64>,
}

/// Read a workspace's audit trail, newest first.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/audit", tag = "audit", operation_id = "list_audit_entries",
    params(("ws" = String, Path), AuditParams),
    responses((status = 200, body = AuditList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    _caller: Caller,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Json<AuditList>, ApiError> {
    let limit = parse_limit(p.limit)?;
    // One more than asked, to know whether there is a next page.
    let mut entries = st.store.audit_log(Some(&ws), p.before, limit + 1).await?;
    let next = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(AuditList {
        items: entries.into_iter().map(AuditView::from).collect(),
        next,
    }))
}
