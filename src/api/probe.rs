//! "Test connection" over HTTP: one GET through a stored connector, to a URL the caller gives. The
//! request runs on the egress path in this process, where the secrets are, and is recorded like any
//! other use of the secret.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::json::{ApiJson, ApiPath};
use super::state::AppState;
use crate::egress::probe::{without_query, ProbeReport};
use crate::store::{self, FetchAttempt, StoreError};

/// How long a test may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://api.stripe.com/v1/balance"}))]
pub struct TestConnection {
    /// The URL to GET; it must match one of the connector's patterns. Without it, the check URL of
    /// the preset whose patterns the connector has (for presets without parameters).
    pub url: Option<String>,
}

/// Test a connector: send one GET through it and report the answer (never the secret).
#[utoipa::path(post, path = "/v1/workspaces/{ws}/connectors/{name}/test", tag = "connectors",
    operation_id = "test_connector",
    params(("ws" = String, Path), ("name" = String, Path)), request_body = TestConnection,
    responses((status = 200, body = ProbeReport, description = "the test ran; `ok` says whether the upstream accepted it"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("token" = [])))]
pub async fn test(
    State(st): State<AppState>,
    _caller: Caller,
    ApiPath((ws, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<TestConnection>,
) -> Result<Json<ProbeReport>, ApiError> {
    let (workspace, mut connectors) =
        store::load_run(&*st.store, &st.vault, &ws, std::slice::from_ref(&name)).await?;
    let connector = connectors.remove(0);
    let url = match body.url {
        Some(url) => url,
        None => preset_check_url(&connector).ok_or_else(|| {
            StoreError::invalid(
                "url",
                "give the URL to test: this connector was not made from a preset with a check URL",
            )
        })?,
    };
    let url = url::Url::parse(&url)
        .map_err(|e| StoreError::invalid("url", format!("not a valid URL: {e}")))?;
    if !connector.matches(&url) {
        return Err(StoreError::invalid(
            "url",
            format!(
                "{} matches no pattern of connector {:?}",
                without_query(&url),
                connector.name
            ),
        )
        .into());
    }
    let (report, record) = st.executor.probe(connector, url, PROBE_TIMEOUT).await;
    st.store
        .record_fetch_attempts(
            Some(&workspace.id),
            &[FetchAttempt::from_record(&record, None)],
        )
        .await?;
    Ok(Json(report))
}

/// The check URL of the parameterless preset whose patterns are exactly the connector's.
fn preset_check_url(connector: &crate::connector::Connector) -> Option<String> {
    let patterns: Vec<String> = connector.patterns.iter().map(|p| p.to_string()).collect();
    crate::connector::presets()
        .iter()
        .find(|p| p.params.is_empty() && p.patterns == patterns)
        .and_then(|p| p.check_url.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{preset, ConnectorSpec, Placement, Secret};

    #[test]
    fn a_preset_connector_is_tested_at_its_check_url() {
        let (patterns, placement) = preset("stripe", &Default::default()).unwrap();
        let stripe = ConnectorSpec {
            name: "pay".into(),
            patterns,
            placement,
            scrub_echo: false,
        }
        .validate(Secret::new("sk".into()))
        .unwrap();
        assert_eq!(
            preset_check_url(&stripe).as_deref(),
            Some("https://api.stripe.com/v1/balance")
        );
        let custom = ConnectorSpec {
            name: "own".into(),
            patterns: vec!["https://api.stripe.com/v1/charges/*".into()],
            placement: Placement::header("Authorization".into(), "Bearer {{secret}}".into()),
            scrub_echo: false,
        }
        .validate(Secret::new("sk".into()))
        .unwrap();
        assert_eq!(preset_check_url(&custom), None);
    }
}
