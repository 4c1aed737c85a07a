//! The connector as users write it (`ConnectorSpec`) and as egress uses it (`Connector`).
//!
//! A spec is plain data: it can come from a JSON file, the CLI, the API or the store. It only becomes a
//! `Connector` through `ConnectorSpec::validate`, so every connector the egress path sees obeys the
//! rules of `shared/docs/security-model.md`.

use serde::{Deserialize, Serialize};

use super::secret::Secret;

/// Where the secret goes on a matching request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Placement {
    /// A request header, rendered from a template that contains `{{secret}}`.
    Header { name: String, template: String },
    /// A query parameter whose value is the secret.
    Query { param: String },
}

/// A connector's public definition. It never holds the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSpec {
    pub name: String,
    pub patterns: Vec<String>,
    pub placement: Placement,
    /// Best-effort replacement of the secret in responses (security model, "echo scrubbing").
    #[serde(default)]
    pub scrub_echo: bool,
}

/// A validated connector with its secret, ready for the egress path.
#[derive(Clone, Debug)]
pub struct Connector {
    pub name: String,
    pub patterns: Vec<super::pattern::UrlPattern>,
    pub placement: Placement,
    pub scrub_echo: bool,
    pub secret: Secret,
}
