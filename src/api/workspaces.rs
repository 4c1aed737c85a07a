//! Operator endpoints: workspaces and their API tokens. And `/v1/me`, for the dashboard's sign-in.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::json::{ApiJson, ApiPath};
use super::state::AppState;
use crate::store::{self, format_time, Workspace};

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "acme", "created_at": "2026-11-25T14:00:00Z", "keep_run_io": false}))]
pub struct WorkspaceView {
    #[schema(example = "acme")]
    pub name: String,
    #[schema(format = DateTime, example = "2026-11-25T14:00:00Z")]
    pub created_at: String,
    /// Whether runs keep their input and output in the history (encrypted at rest).
    pub keep_run_io: bool,
}

impl From<Workspace> for WorkspaceView {
    fn from(w: Workspace) -> Self {
        WorkspaceView {
            name: w.name,
            created_at: format_time(w.created_at),
            keep_run_io: w.keep_run_io,
        }
    }
}

/// A workspace's settings to change; what is absent stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"keep_run_io": true}))]
pub struct UpdateWorkspace {
    /// Keep each run's input and output in the run history, encrypted at rest like connector
    /// secrets (off by default: then only the output's size is kept). Runs recorded before keep
    /// what they had.
    pub keep_run_io: Option<bool>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"items": [{"name": "acme", "created_at": "2026-11-25T14:00:00Z", "keep_run_io": false}]}))]
pub struct WorkspaceList {
    pub items: Vec<WorkspaceView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "acme"}))]
pub struct CreateWorkspace {
    pub name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"label": "orchestrator"}))]
pub struct CreateToken {
    /// A label for the token, such as what uses it.
    pub label: String,
}

/// The new token, shown this once; only its hash is stored.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "5b1f0c2e9d8a4b7c6e5f4a3b2c1d0e9f", "workspace": "acme", "label": "orchestrator",
    "token": "cst_3q9vX2mK8pL5nR7tW1yZ4bC6dF0gH2jS"}))]
pub struct NewToken {
    pub id: String,
    pub workspace: String,
    pub label: String,
    pub token: String,
}

/// Which kind of token called.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Operator,
    Workspace,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"kind": "workspace", "workspace": "acme"}))]
pub struct Me {
    pub kind: TokenKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

/// Who the calling token is.
#[utoipa::path(get, path = "/v1/me", tag = "auth", operation_id = "get_me",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(match caller {
        Caller::Operator => Me {
            kind: TokenKind::Operator,
            workspace: None,
        },
        Caller::Workspace { name, .. } => Me {
            kind: TokenKind::Workspace,
            workspace: Some(name),
        },
    })
}

/// List workspaces (operator token).
#[utoipa::path(get, path = "/v1/workspaces", tag = "workspaces", operation_id = "list_workspaces",
    responses((status = 200, body = WorkspaceList), (status = 403, body = ErrorBody)), security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<Json<WorkspaceList>, ApiError> {
    caller.require_operator()?;
    let items = st
        .store
        .list_workspaces()
        .await?
        .into_iter()
        .map(WorkspaceView::from)
        .collect();
    Ok(Json(WorkspaceList { items }))
}

/// Create a workspace (operator token).
#[utoipa::path(post, path = "/v1/workspaces", tag = "workspaces", operation_id = "create_workspace",
    request_body = CreateWorkspace,
    responses((status = 201, body = WorkspaceView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("token" = [])))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    caller.require_operator()?;
    store::validate_workspace_name(&body.name)?;
    let ws = st
        .store
        .create_workspace(&body.name, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(ws.into())))
}

/// Delete a workspace with its connectors (operator token).
#[utoipa::path(delete, path = "/v1/workspaces/{ws}", tag = "workspaces", operation_id = "delete_workspace",
    params(("ws" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("token" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_operator()?;
    st.store.delete_workspace(&ws, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change a workspace's settings (operator token or the workspace's own).
#[utoipa::path(patch, path = "/v1/workspaces/{ws}", tag = "workspaces", operation_id = "update_workspace",
    params(("ws" = String, Path, description = "workspace name")),
    request_body = UpdateWorkspace,
    responses((status = 200, body = WorkspaceView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("token" = [])))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateWorkspace>,
) -> Result<Json<WorkspaceView>, ApiError> {
    caller.allow(&ws)?;
    let workspace = match body.keep_run_io {
        Some(keep) => st.store.set_keep_run_io(&ws, keep, &caller.actor()).await?,
        None => st.store.workspace(&ws).await?,
    };
    Ok(Json(workspace.into()))
}

/// Create a workspace token; it is shown once and stored only as a hash.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/tokens", tag = "workspaces", params(("ws" = String, Path)),
    request_body = CreateToken,
    responses((status = 201, body = NewToken), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("token" = [])))]
pub async fn create_token(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<String>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    caller.require_operator()?;
    // The store calls a token's label its name.
    let (token, record) = store::create_api_token(&*st.store, &ws, &body.label, &caller.actor())
        .await
        .map_err(|e| ApiError::from(e).in_body_field("label"))?;
    Ok((
        StatusCode::CREATED,
        Json(NewToken {
            id: record.id,
            workspace: record.workspace_name,
            label: record.name,
            token: token.expose().to_string(),
        }),
    ))
}
