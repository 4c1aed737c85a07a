//! Operator endpoints: workspaces. And `/v1/me`, for the dashboard's sign-in.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Caller, CallerKind};
use super::error::{ApiError, ErrorBody};
use super::json::{ApiJson, ApiPath};
use super::state::AppState;
use crate::store::{self, format_time, Scope, Workspace};

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

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"kind": "workspace", "workspace": "acme", "label": "deploy", "scopes": ["read", "manage"]}))]
pub struct Me {
    pub kind: MeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// The token's label (`operator` for the operator token).
    pub label: String,
    /// A workspace token's scopes; absent for the operator token, which may do everything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<Scope>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MeKind {
    Operator,
    Workspace,
}

/// Who the calling token is, and what it may do.
#[utoipa::path(get, path = "/v1/me", tag = "auth", operation_id = "get_me",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)), security(("token" = [])))]
pub async fn me(caller: Caller) -> Json<Me> {
    let label = caller.label().to_string();
    Json(match caller.kind {
        CallerKind::Operator => Me {
            kind: MeKind::Operator,
            workspace: None,
            label,
            scopes: None,
        },
        CallerKind::Workspace { name, scopes, .. } => Me {
            kind: MeKind::Workspace,
            workspace: Some(name),
            label,
            scopes: Some(scopes.iter().collect()),
        },
    })
}

/// List workspaces (operator token).
#[utoipa::path(get, path = "/v1/workspaces", tag = "workspaces", operation_id = "list_workspaces",
    responses((status = 200, body = WorkspaceList), (status = 403, body = ErrorBody)), security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    _caller: Caller,
) -> Result<Json<WorkspaceList>, ApiError> {
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
    st.store.delete_workspace(&ws, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change a workspace's settings.
#[utoipa::path(patch, path = "/v1/workspaces/{ws}", tag = "workspaces", operation_id = "update_workspace",
    params(("ws" = String, Path, description = "workspace name")),
    request_body = UpdateWorkspace,
    responses((status = 200, body = WorkspaceView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("token" = [])))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateWorkspace>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let workspace = match body.keep_run_io {
        Some(keep) => st.store.set_keep_run_io(&ws, keep, &caller.actor()).await?,
        None => st.store.workspace(&ws).await?,
    };
    Ok(Json(workspace.into()))
}
