//! Who is calling. The operator token (from the operator's settings) manages workspaces and their
//! tokens and may act in any workspace; a workspace token reaches its own workspace only. Tokens are
//! compared by SHA-256, and stored only as that hash.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::access::Who;
use super::error::ApiError;
use super::state::AppState;
use crate::store::{hash_api_token, name_key};

#[derive(Clone, Debug)]
pub enum Caller {
    Operator,
    /// A workspace token: its workspace, and the label it was created with.
    Workspace {
        name: String,
        label: String,
    },
}

impl Caller {
    /// Lets the call act on `workspace`. A workspace token naming another workspace gets the same 404
    /// as a workspace that does not exist, so it learns nothing about other workspaces.
    pub fn allow(&self, workspace: &str) -> Result<(), ApiError> {
        match self {
            Caller::Operator => Ok(()),
            // Names are unique regardless of case, and the store finds them so: match as it does.
            Caller::Workspace { name, .. } if name_key(name) == name_key(workspace) => Ok(()),
            Caller::Workspace { .. } => Err(ApiError::not_found(format!(
                "workspace {workspace:?} not found"
            ))),
        }
    }

    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self {
            Caller::Operator => Ok(()),
            Caller::Workspace { .. } => Err(ApiError::forbidden("this needs the operator token")),
        }
    }

    /// The token's label, for the run history (never the token itself).
    pub fn label(&self) -> &str {
        match self {
            Caller::Operator => "operator",
            Caller::Workspace { label, .. } => label,
        }
    }

    /// For audit entries: which kind of token did it (never the token itself).
    pub fn actor(&self) -> String {
        match self {
            Caller::Operator => "api:operator".to_string(),
            Caller::Workspace { name, .. } => format!("api:workspace-token:{name}"),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(ApiError::unauthorized)?;
        let token = value
            .to_str()
            .ok()
            // The scheme is case-insensitive (RFC 9110, section 11.1).
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token)
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let hash = hash_api_token(token);
        // For the access log: who called (never the token).
        let who = parts.extensions.get::<Who>().cloned().unwrap_or_default();
        if hash == state.operator_token_hash {
            who.set("*", "operator");
            return Ok(Caller::Operator);
        }
        match state.store.authenticate_api_token(&hash).await? {
            Some(t) => {
                who.set(&t.workspace_name, &t.name);
                Ok(Caller::Workspace {
                    name: t.workspace_name,
                    label: t.name,
                })
            }
            None => Err(ApiError::unauthorized()),
        }
    }
}
