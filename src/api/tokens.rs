//! A workspace's API tokens: create one with a label, scopes and an optional expiry (shown once, stored
//! only as a hash), list them (never the token), revoke one. Needs `manage` or the operator token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::json::{ApiJson, ApiPath};
use super::monitoring::parse_time;
use super::state::AppState;
use crate::store::{
    self, format_time, ApiToken, Scope, Scopes, StoreError, TokenGrant, TokenState,
};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"label": "orchestrator", "scopes": ["run"], "expires_at": "2027-06-30T00:00:00Z"}))]
pub struct CreateToken {
    /// A label for the token, such as what uses it. The audit trail and the run history name it.
    pub label: String,
    /// What the token may do: `run` (run steps, read runs), `read` (connectors, monitoring, audit),
    /// `manage` (change connectors and tokens). At least one.
    pub scopes: Vec<Scope>,
    /// When the token stops working (RFC 3339); never when absent.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// The new token, shown this once; only its hash is stored.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "5b1f0c2e9d8a4b7c6e5f4a3b2c1d0e9f", "workspace": "acme", "label": "orchestrator",
    "scopes": ["run"], "expires_at": "2027-06-30T00:00:00Z", "token": "cst_3q9vX2mK8pL5nR7tW1yZ4bC6dF0gH2jS"}))]
pub struct NewToken {
    pub id: String,
    pub workspace: String,
    pub label: String,
    pub scopes: Vec<Scope>,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// The token. It is not stored and cannot be shown again.
    pub token: String,
}

/// A token as listed: never the token itself.
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub label: String,
    pub scopes: Vec<Scope>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// To the nearest few minutes; null if never used.
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: TokenState,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        let state = t.state();
        TokenView {
            id: t.id,
            label: t.name,
            scopes: t.scopes.iter().collect(),
            created_at: format_time(t.created_at),
            last_used_at: t.last_used_at.map(format_time),
            expires_at: t.expires_at.map(format_time),
            revoked_at: t.revoked_at.map(format_time),
            state,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"items": [{"id": "5b1f0c2e9d8a4b7c6e5f4a3b2c1d0e9f", "label": "orchestrator",
    "scopes": ["run"], "created_at": "2026-12-01T09:00:00Z", "last_used_at": "2026-12-04T10:05:00Z",
    "expires_at": null, "revoked_at": null, "state": "active"}]}))]
pub struct TokenList {
    pub items: Vec<TokenView>,
}

/// Create a workspace token; it is shown once and stored only as a hash.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/tokens", tag = "tokens", operation_id = "create_token",
    params(("ws" = String, Path)),
    request_body = CreateToken,
    responses((status = 201, body = NewToken), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("token" = [])))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<String>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    let scopes = Scopes::new(body.scopes)?;
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|s| {
            parse_time("expires_at", s).map_err(|e| StoreError::invalid("expires_at", e.message))
        })
        .transpose()?;
    let grant = TokenGrant { scopes, expires_at };
    let (token, record) =
        store::create_api_token(&*st.store, &ws, &body.label, &grant, &caller.actor())
            .await
            .map_err(|e| match e {
                // The store calls a token's label its name.
                StoreError::Invalid(i) if i.field.as_deref() == Some("token name") => {
                    StoreError::invalid("label", i.message)
                }
                e => e,
            })?;
    Ok((
        StatusCode::CREATED,
        Json(NewToken {
            id: record.id,
            workspace: record.workspace_name,
            label: record.name,
            scopes: record.scopes.iter().collect(),
            expires_at: record.expires_at.map(format_time),
            token: token.expose().to_string(),
        }),
    ))
}

/// List a workspace's tokens, revoked and expired ones too (never the tokens themselves).
#[utoipa::path(get, path = "/v1/workspaces/{ws}/tokens", tag = "tokens", operation_id = "list_tokens",
    params(("ws" = String, Path)),
    responses((status = 200, body = TokenList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    _caller: Caller,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<TokenList>, ApiError> {
    let items = st
        .store
        .list_api_tokens(&ws)
        .await?
        .into_iter()
        .map(TokenView::from)
        .collect();
    Ok(Json(TokenList { items }))
}

/// Revoke a token: it stops working at once.
#[utoipa::path(delete, path = "/v1/workspaces/{ws}/tokens/{id}", tag = "tokens", operation_id = "revoke_token",
    params(("ws" = String, Path), ("id" = String, Path, description = "the token's id, as listed")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn revoke(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    st.store.revoke_api_token(&ws, &id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
