//! Connector management over HTTP. Secrets are write-only: they come in on create and update and
//! never go out. Validation is the same as the CLI's (`store::ops`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::json::{ApiJson, ApiPath};
use super::monitoring::{stats_for, Stats24h};
use super::state::AppState;
use std::collections::BTreeMap;

use crate::connector::{preset, presets, ConnectorSpec, Placement, Preset, Secret, Secrets};
use crate::store::{self, format_time, ConnectorRecord, ConnectorUpdate};

/// A connector as the API shows it: everything but the secret.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "stripe", "patterns": ["https://api.stripe.com/*"],
    "placement": {"type": "header", "name": "Authorization", "template": "Bearer {{secret}}"}, "scrub_echo": false,
    "created_at": "2026-11-25T14:00:00Z", "updated_at": "2026-11-25T14:00:00Z",
    "stats": {"requests_24h": 120, "errors_24h": 3, "error_rate_24h": 0.025, "alert": true, "health": "some_errors",
              "recent_requests": 10, "recent_errors": 1, "last_error_at": "2026-11-25T13:58:00Z"}}))]
pub struct ConnectorView {
    #[schema(example = "stripe")]
    pub name: String,
    pub patterns: Vec<String>,
    #[schema(value_type = crate::connector::PlacementJson)]
    pub placement: Placement,
    pub scrub_echo: bool,
    #[schema(format = DateTime, example = "2026-11-25T14:00:00Z")]
    pub created_at: String,
    #[schema(format = DateTime, example = "2026-11-25T14:00:00Z")]
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats24h>,
}

impl ConnectorView {
    fn new(r: ConnectorRecord, stats: Option<Stats24h>) -> Self {
        ConnectorView {
            name: r.name,
            patterns: r.patterns,
            placement: r.placement,
            scrub_echo: r.scrub_echo,
            created_at: format_time(r.created_at),
            updated_at: format_time(r.updated_at),
            stats,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"items": [{"name": "stripe", "patterns": ["https://api.stripe.com/*"],
    "placement": {"type": "header", "name": "Authorization", "template": "Bearer {{secret}}"}, "scrub_echo": false,
    "created_at": "2026-11-25T14:00:00Z", "updated_at": "2026-11-25T14:00:00Z",
    "stats": {"requests_24h": 120, "errors_24h": 3, "error_rate_24h": 0.025, "alert": true, "health": "some_errors",
              "recent_requests": 10, "recent_errors": 1, "last_error_at": "2026-11-25T13:58:00Z"}}]}))]
pub struct ConnectorList {
    pub items: Vec<ConnectorView>,
}

/// A new connector: a preset (with its `params`), or patterns with a placement; and its secrets, as
/// `secret` (the one secret, named `secret`) or `secrets` (by name), never both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "datadog", "preset": "datadog",
    "secrets": {"api_key": "…", "app_key": "…"}}))]
pub struct CreateConnector {
    pub name: String,
    /// A preset id from `GET /v1/presets`.
    pub preset: Option<String>,
    /// Preset parameters, like `{"region": "us-east-1", "service": "sts"}` for `aws`.
    pub params: Option<BTreeMap<String, String>>,
    pub patterns: Option<Vec<String>>,
    #[schema(value_type = Option<crate::connector::PlacementJson>)]
    pub placement: Option<Placement>,
    /// Write-only: the secret, when the placement uses only `{{secret}}`.
    #[schema(value_type = Option<String>, format = Password)]
    pub secret: Option<SecretInput>,
    /// Write-only: the secrets by name, when the placement uses `{{secret.NAME}}`.
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub secrets: Option<BTreeMap<String, SecretInput>>,
    #[serde(default)]
    pub scrub_echo: bool,
}

/// Changes to a connector; what is absent stays as it is. `secret` or `secrets` alone rotates the
/// secrets (the whole set). Changing `patterns` or `placement` (its methods and removed headers
/// included), or turning `scrub_echo` off, needs the whole set of secrets in the same request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"patterns": ["https://api.stripe.com/v1/*"], "secret": "the-current-secret"}))]
pub struct UpdateConnector {
    pub patterns: Option<Vec<String>>,
    #[schema(value_type = Option<crate::connector::PlacementJson>)]
    pub placement: Option<Placement>,
    #[schema(value_type = Option<String>, format = Password)]
    pub secret: Option<SecretInput>,
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub secrets: Option<BTreeMap<String, SecretInput>>,
    pub scrub_echo: Option<bool>,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message);
    e.field = Some(field.into());
    e
}

/// `secret` or `secrets` as one set; `None` when neither is given.
fn secret_set(
    secret: Option<SecretInput>,
    secrets: Option<BTreeMap<String, SecretInput>>,
) -> Result<Option<Secrets>, ApiError> {
    match (secret, secrets) {
        (Some(_), Some(_)) => Err(invalid("secrets", "give `secret` or `secrets`, not both")),
        (Some(s), None) => Ok(Some(Secrets::single(s.0))),
        (None, Some(map)) => {
            if map.len() > crate::connector::MAX_SECRETS {
                return Err(invalid(
                    "secrets",
                    format!("at most {} secrets", crate::connector::MAX_SECRETS),
                ));
            }
            let mut set = Secrets::new();
            for (name, value) in map {
                set.insert(&name, value.0);
            }
            Ok(Some(set))
        }
        (None, None) => Ok(None),
    }
}

/// The built-in presets.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"items": [{"id": "stripe", "name": "Stripe", "docs_url": "https://docs.stripe.com/keys",
    "key_help": "Create a secret or restricted key under Developers → API keys in the Stripe dashboard.",
    "patterns": ["https://api.stripe.com/*"],
    "placement": {"type": "header", "name": "Authorization", "template": "Bearer {{secret}}"},
    "secrets": [{"name": "secret", "label": "Secret key (sk_… or rk_…)"}], "params": [],
    "check_url": "https://api.stripe.com/v1/balance"}]}))]
pub struct PresetList {
    pub items: Vec<Preset>,
}

/// List the built-in connector presets.
///
/// For each: the patterns and placement it creates, the secrets and parameters it needs, and a URL
/// that checks them. Any valid token may read it.
#[utoipa::path(get, path = "/v1/presets", tag = "connectors", operation_id = "list_presets",
    responses((status = 200, body = PresetList)),
    security(("token" = [])))]
pub async fn list_presets(_caller: Caller) -> Json<PresetList> {
    Json(PresetList {
        items: presets().to_vec(),
    })
}

/// Deserialised straight into the zeroizing secret type.
pub struct SecretInput(Secret);

impl<'de> Deserialize<'de> for SecretInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SecretInput(Secret::new(String::deserialize(d)?)))
    }
}

/// List a workspace's connectors, with their 24 h counts (never their secrets).
#[utoipa::path(get, path = "/v1/workspaces/{ws}/connectors", tag = "connectors", operation_id = "list_connectors",
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 200, body = ConnectorList), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    _caller: Caller,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<ConnectorList>, ApiError> {
    let records = st.store.list_connectors(&ws).await?;
    let names: Vec<String> = records.iter().map(|r| r.name.clone()).collect();
    let mut stats = stats_for(&st, &ws, &names).await?;
    let items = records
        .into_iter()
        .map(|r| {
            let s = stats.remove(&r.name);
            ConnectorView::new(r, s)
        })
        .collect();
    Ok(Json(ConnectorList { items }))
}

/// Get one connector (never its secret).
#[utoipa::path(get, path = "/v1/workspaces/{ws}/connectors/{name}", tag = "connectors", operation_id = "get_connector",
    params(("ws" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = ConnectorView), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn get(
    State(st): State<AppState>,
    _caller: Caller,
    ApiPath((ws, name)): ApiPath<(String, String)>,
) -> Result<Json<ConnectorView>, ApiError> {
    let record = st.store.connector(&ws, &name).await?;
    let stats = stats_for(&st, &ws, std::slice::from_ref(&record.name))
        .await?
        .remove(&record.name);
    Ok(Json(ConnectorView::new(record, stats)))
}

/// Create a connector: patterns and placement (or a preset) and its secret, encrypted at rest.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/connectors", tag = "connectors", operation_id = "create_connector",
    params(("ws" = String, Path)), request_body = CreateConnector,
    responses((status = 201, body = ConnectorView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("token" = [])))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<String>,
    ApiJson(body): ApiJson<CreateConnector>,
) -> Result<(StatusCode, Json<ConnectorView>), ApiError> {
    let params = body.params.unwrap_or_default();
    let (patterns, placement) = match (&body.preset, body.patterns, body.placement) {
        (Some(name), None, None) => {
            preset(name, &params).map_err(|m| invalid("preset", format!("preset: {m}")))?
        }
        (None, Some(_), Some(_)) if !params.is_empty() => {
            return Err(invalid("params", "`params` go with a `preset`"))
        }
        (None, Some(patterns), Some(placement)) => (patterns, placement),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "give either `preset`, or both `patterns` and `placement`",
            ))
        }
    };
    let spec = ConnectorSpec {
        name: body.name,
        patterns,
        placement,
        scrub_echo: body.scrub_echo,
    };
    let secrets = secret_set(body.secret, body.secrets)?
        .ok_or_else(|| invalid("secret", "give `secret` or `secrets`"))?;
    let record =
        store::create_connector(&*st.store, &st.vault, &ws, &spec, secrets, &caller.actor())
            .await?;
    Ok((StatusCode::CREATED, Json(ConnectorView::new(record, None))))
}

/// Change a connector. Changing where its secret goes needs the secret in the same request.
#[utoipa::path(patch, path = "/v1/workspaces/{ws}/connectors/{name}", tag = "connectors", operation_id = "update_connector",
    params(("ws" = String, Path), ("name" = String, Path)), request_body = UpdateConnector,
    responses((status = 200, body = ConnectorView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("token" = [])))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath((ws, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateConnector>,
) -> Result<Json<ConnectorView>, ApiError> {
    let update = ConnectorUpdate {
        patterns: body.patterns,
        placement: body.placement,
        scrub_echo: body.scrub_echo,
        secrets: secret_set(body.secret, body.secrets)?,
    };
    let record =
        store::update_connector(&*st.store, &st.vault, &ws, &name, update, &caller.actor()).await?;
    Ok(Json(ConnectorView::new(record, None)))
}

/// Delete a connector and its secret.
#[utoipa::path(delete, path = "/v1/workspaces/{ws}/connectors/{name}", tag = "connectors", operation_id = "delete_connector",
    params(("ws" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath((ws, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    st.store
        .delete_connector(&ws, &name, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
