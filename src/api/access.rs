//! The access log: one event per HTTP request, with a request id the client can quote.
//!
//! The id is the client's `X-Request-Id` when it sends a usable one, else a fresh UUID; either way it
//! is returned in the response's `X-Request-Id`. The event names the route template (never the path
//! with its values), the status, the duration, and who called: the workspace and the token's label,
//! which the auth extractor writes into the request's `Who` slot. Never a token, a query or a body.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use super::state::AppState;

pub const REQUEST_ID: &str = "x-request-id";

/// Who called, as the auth extractor found out; empty for calls without a token.
#[derive(Clone, Default)]
pub struct Who(Arc<Mutex<Option<(String, String)>>>);

impl Who {
    /// Records the caller's workspace (or `*` for the operator) and token label.
    pub fn set(&self, workspace: &str, token: &str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((workspace.to_string(), token.to_string()));
    }

    fn get(&self) -> (String, String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default()
    }
}

/// A client's request id, if it is one we can echo and log: 1 to 128 visible ASCII characters.
fn client_id(value: Option<&HeaderValue>) -> Option<String> {
    let v = value?.to_str().ok()?;
    (!v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| v.to_string())
}

pub async fn log(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = client_id(req.headers().get(REQUEST_ID))
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_string(), |p| p.as_str().to_string());
    let who = Who::default();
    req.extensions_mut().insert(who.clone());
    let mut res = next.run(req).await;
    let (workspace, token) = who.get();
    st.metrics
        .http_request(&method, &route, res.status().as_u16());
    tracing::info!(
        target: "codestep::access",
        request_id = %id,
        method = %method,
        route = %route,
        status = res.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        workspace = %workspace,
        token = %token,
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_echoed_only_when_safe() {
        let ok = HeaderValue::from_static("abc-123");
        assert_eq!(client_id(Some(&ok)).as_deref(), Some("abc-123"));
        let spaced = HeaderValue::from_static("a b");
        assert_eq!(client_id(Some(&spaced)), None);
        let long = HeaderValue::from_str(&"x".repeat(129)).unwrap();
        assert_eq!(client_id(Some(&long)), None);
        assert_eq!(client_id(None), None);
    }
}
