//! Who is calling, and whether they may. The operator token (from the operator's settings) manages
//! workspaces and may act in any workspace; a workspace token reaches its own workspace only, and only
//! what its scopes allow. Both checks happen here, when a handler takes a [`Caller`], from the rule
//! `api::scopes` gives the route: no handler decides for itself. Tokens are compared by SHA-256, and
//! stored only as that hash.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::http::header;
use axum::http::request::Parts;

use super::access::Who;
use super::error::ApiError;
use super::json::ApiPath;
use super::scopes::{self, Rule};
use super::state::AppState;
use crate::store::{hash_api_token, name_key, Actor, Scopes};

/// An authenticated caller allowed to call the route it called.
#[derive(Clone, Debug)]
pub struct Caller {
    pub kind: CallerKind,
    /// The client's address, for the audit trail.
    pub address: Option<String>,
}

#[derive(Clone, Debug)]
pub enum CallerKind {
    Operator,
    /// A workspace token: its workspace, the label it was created with, and its scopes.
    Workspace {
        name: String,
        label: String,
        scopes: Scopes,
    },
}

impl Caller {
    /// The token's label, for the run history (never the token itself).
    pub fn label(&self) -> &str {
        match &self.kind {
            CallerKind::Operator => "operator",
            CallerKind::Workspace { label, .. } => label,
        }
    }

    /// Who did it, for audit entries: the token's label (never the token) and the client's address.
    pub fn actor(&self) -> Actor {
        let who = match &self.kind {
            CallerKind::Operator => "operator".to_string(),
            CallerKind::Workspace { label, .. } => format!("token {label:?}"),
        };
        Actor::new(who, self.address.clone())
    }

    /// Applies the route's rule. A workspace token naming another workspace gets the same 404 as a
    /// workspace that does not exist, so it learns nothing about other workspaces; within its own,
    /// a missing scope is a 403 that names it.
    fn check(&self, rule: Rule, workspace: Option<&str>) -> Result<(), ApiError> {
        let CallerKind::Workspace { name, scopes, .. } = &self.kind else {
            return Ok(());
        };
        match rule {
            Rule::Public | Rule::AnyToken => Ok(()),
            Rule::Operator => Err(ApiError::forbidden("this needs the operator token")),
            Rule::Workspace(scope) => {
                let ws = workspace.unwrap_or_default();
                // Names are unique regardless of case, and the store finds them so: match as it does.
                if name_key(name) != name_key(ws) {
                    return Err(ApiError::not_found(format!("workspace {ws:?} not found")));
                }
                if !scopes.contains(scope) {
                    return Err(ApiError::forbidden(format!(
                        "this token lacks the `{scope}` scope (it has: {scopes})"
                    )));
                }
                Ok(())
            }
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?;
    value
        .to_str()
        .ok()
        // The scheme is case-insensitive (RFC 9110, section 11.1).
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        let hash = hash_api_token(token);
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip().to_string());
        // For the access log: who called (never the token).
        let who = parts.extensions.get::<Who>().cloned().unwrap_or_default();
        let caller = if hash == state.operator_token_hash {
            who.set("*", "operator");
            Caller {
                kind: CallerKind::Operator,
                address,
            }
        } else {
            let t = state
                .store
                .authenticate_api_token(&hash)
                .await?
                .ok_or_else(ApiError::unauthorized)?;
            who.set(&t.workspace_name, &t.name);
            Caller {
                kind: CallerKind::Workspace {
                    name: t.workspace_name,
                    label: t.name,
                    scopes: t.scopes,
                },
                address,
            }
        };
        // Fail closed: a route without a rule is refused to everyone.
        let route = parts.extensions.get::<MatchedPath>().cloned();
        let rule = route
            .as_ref()
            .and_then(|r| scopes::rule(&parts.method, r.as_str()))
            .ok_or_else(|| ApiError::internal("this operation has no access rule"))?;
        // The same parsing, and the same 400 for a parameter that does not parse, as the handler's.
        let ApiPath(params) =
            ApiPath::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        caller.check(rule, params.get("ws").map(String::as_str))?;
        Ok(caller)
    }
}
