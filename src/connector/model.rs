//! The connector as users write it (`ConnectorSpec`) and as egress uses it (`Connector`).
//!
//! A spec is plain data: it can come from a JSON file, the CLI, the API or the store. It only becomes a
//! `Connector` through `ConnectorSpec::validate`, so every connector the egress path sees obeys the
//! rules of `shared/docs/security-model.md`.
//!
//! Templates name secrets with `{{secret}}` (the secret named `secret`, what a connector with one
//! secret holds) or `{{secret.NAME}}`; a path template also takes `{{path}}`, the path the step asked for.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::secret::Secrets;

/// One header a `header` placement sets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderTemplate {
    /// The header name (an HTTP token).
    #[schema(example = "Authorization")]
    pub name: String,
    /// The value, with `{{secret}}` or `{{secret.NAME}}` where the secret goes.
    #[schema(example = "Bearer {{secret}}")]
    pub template: String,
}

/// How the secrets go into a matching request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlacementKind {
    /// Request headers, each rendered from its template.
    Header { headers: Vec<HeaderTemplate> },
    /// `Authorization: Basic base64(username:password)`; both are templates (a plain username has no
    /// placeholder).
    Basic { username: String, password: String },
    /// A query parameter whose value is rendered from `value` (`{{secret}}` unless given).
    Query { param: String, value: String },
    /// The request path, rendered from `template`; `{{path}}` is the path the step asked for.
    Path { template: String },
    /// AWS Signature Version 4, with the secrets `access_key_id` and `secret_access_key`.
    AwsSigv4 { region: String, service: String },
}

/// Where the secrets go on a matching request, and what else the connector enforces there.
/// Its JSON is `PlacementJson` (one object, tagged by `type`); stored rows from before named secrets
/// read unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PlacementJson", into = "PlacementJson")]
pub struct Placement {
    pub kind: PlacementKind,
    /// Request headers dropped from what JS set, before injection (lowercase once validated).
    pub remove_headers: Vec<String>,
    /// The HTTP methods allowed; empty means any.
    pub methods: Vec<String>,
}

pub(crate) const SECRET_TEMPLATE: &str = "{{secret}}";
/// Where a path template puts the path the step asked for.
pub const PATH_PLACEHOLDER: &str = "{{path}}";

impl Placement {
    pub fn new(kind: PlacementKind) -> Placement {
        Placement {
            kind,
            remove_headers: Vec::new(),
            methods: Vec::new(),
        }
    }

    /// One header rendered from `template`.
    pub fn header(name: String, template: String) -> Placement {
        Placement::new(PlacementKind::Header {
            headers: vec![HeaderTemplate { name, template }],
        })
    }

    /// A query parameter holding the secret named `secret`.
    pub fn query(param: String) -> Placement {
        Placement::new(PlacementKind::Query {
            param,
            value: SECRET_TEMPLATE.into(),
        })
    }

    pub fn with_remove_headers(mut self, names: &[&str]) -> Placement {
        self.remove_headers = names.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn with_methods(mut self, methods: &[&str]) -> Placement {
        self.methods = methods.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The name JSON and messages use for the kind.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            PlacementKind::Header { .. } => "header",
            PlacementKind::Basic { .. } => "basic",
            PlacementKind::Query { .. } => "query",
            PlacementKind::Path { .. } => "path",
            PlacementKind::AwsSigv4 { .. } => "aws_sigv4",
        }
    }
}

fn default_secret_template() -> String {
    SECRET_TEMPLATE.into()
}

fn is_default_secret_template(s: &str) -> bool {
    s == SECRET_TEMPLATE
}

/// A placement as JSON: what the API, the CLI, connector files and the store read and write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[schema(as = Placement, example = json!({"type": "header", "name": "Authorization", "template": "Bearer {{secret}}"}))]
pub enum PlacementJson {
    /// Request headers: one as `name` and `template`, or several as `headers`. Each JS header of the
    /// same name (any case) is replaced.
    #[schema(example = json!({"type": "header", "headers": [
        {"name": "DD-API-KEY", "template": "{{secret.api_key}}"},
        {"name": "DD-APPLICATION-KEY", "template": "{{secret.app_key}}"}]}))]
    Header {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        headers: Option<Vec<HeaderTemplate>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        remove_headers: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        methods: Vec<String>,
    },
    /// `Authorization: Basic …` from a username and a password, each a template.
    #[schema(example = json!({"type": "basic", "username": "{{secret.account_sid}}", "password": "{{secret.auth_token}}"}))]
    Basic {
        username: String,
        #[serde(
            default = "default_secret_template",
            skip_serializing_if = "is_default_secret_template"
        )]
        password: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        remove_headers: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        methods: Vec<String>,
    },
    /// A query parameter; its value is `{{secret}}` unless `value` says otherwise.
    #[schema(example = json!({"type": "query", "param": "key"}))]
    Query {
        param: String,
        #[serde(
            default = "default_secret_template",
            skip_serializing_if = "is_default_secret_template"
        )]
        value: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        remove_headers: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        methods: Vec<String>,
    },
    /// The path sent, from a template; `{{path}}` is the path the step asked for.
    #[schema(example = json!({"type": "path", "template": "/bot{{secret}}{{path}}"}))]
    Path {
        template: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        remove_headers: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        methods: Vec<String>,
    },
    /// AWS Signature Version 4 with the secrets `access_key_id` and `secret_access_key`.
    #[schema(example = json!({"type": "aws_sigv4", "region": "us-east-1", "service": "sts"}))]
    AwsSigv4 {
        region: String,
        service: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        remove_headers: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        methods: Vec<String>,
    },
}

impl TryFrom<PlacementJson> for Placement {
    type Error = String;

    fn try_from(j: PlacementJson) -> Result<Placement, String> {
        let (kind, remove_headers, methods) = match j {
            PlacementJson::Header {
                name,
                template,
                headers,
                remove_headers,
                methods,
            } => {
                let headers = match (name, template, headers) {
                    (Some(name), Some(template), None) => vec![HeaderTemplate { name, template }],
                    (None, None, Some(list)) => list,
                    _ => {
                        return Err(
                            "a header placement has either `name` and `template`, or `headers`"
                                .into(),
                        )
                    }
                };
                (PlacementKind::Header { headers }, remove_headers, methods)
            }
            PlacementJson::Basic {
                username,
                password,
                remove_headers,
                methods,
            } => (
                PlacementKind::Basic { username, password },
                remove_headers,
                methods,
            ),
            PlacementJson::Query {
                param,
                value,
                remove_headers,
                methods,
            } => (
                PlacementKind::Query { param, value },
                remove_headers,
                methods,
            ),
            PlacementJson::Path {
                template,
                remove_headers,
                methods,
            } => (PlacementKind::Path { template }, remove_headers, methods),
            PlacementJson::AwsSigv4 {
                region,
                service,
                remove_headers,
                methods,
            } => (
                PlacementKind::AwsSigv4 { region, service },
                remove_headers,
                methods,
            ),
        };
        Ok(Placement {
            kind,
            remove_headers,
            methods,
        })
    }
}

impl From<Placement> for PlacementJson {
    fn from(p: Placement) -> PlacementJson {
        let (remove_headers, methods) = (p.remove_headers, p.methods);
        match p.kind {
            PlacementKind::Header { mut headers } => {
                // One header keeps the form every row had before several were possible.
                if headers.len() == 1 {
                    let h = headers.remove(0);
                    PlacementJson::Header {
                        name: Some(h.name),
                        template: Some(h.template),
                        headers: None,
                        remove_headers,
                        methods,
                    }
                } else {
                    PlacementJson::Header {
                        name: None,
                        template: None,
                        headers: Some(headers),
                        remove_headers,
                        methods,
                    }
                }
            }
            PlacementKind::Basic { username, password } => PlacementJson::Basic {
                username,
                password,
                remove_headers,
                methods,
            },
            PlacementKind::Query { param, value } => PlacementJson::Query {
                param,
                value,
                remove_headers,
                methods,
            },
            PlacementKind::Path { template } => PlacementJson::Path {
                template,
                remove_headers,
                methods,
            },
            PlacementKind::AwsSigv4 { region, service } => PlacementJson::AwsSigv4 {
                region,
                service,
                remove_headers,
                methods,
            },
        }
    }
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

/// A validated connector with its secrets, ready for the egress path.
#[derive(Clone, Debug)]
pub struct Connector {
    pub name: String,
    pub patterns: Vec<super::pattern::UrlPattern>,
    pub placement: Placement,
    pub scrub_echo: bool,
    pub secrets: Secrets,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_json_of_old_rows_reads_and_writes_unchanged() {
        for old in [
            r#"{"type":"header","name":"Authorization","template":"Bearer {{secret}}"}"#,
            r#"{"type":"query","param":"appid"}"#,
        ] {
            let p: Placement = serde_json::from_str(old).unwrap();
            assert_eq!(serde_json::to_string(&p).unwrap(), old);
        }
        let p: Placement = serde_json::from_str(r#"{"type":"query","param":"appid"}"#).unwrap();
        assert_eq!(p, Placement::query("appid".into()));
    }

    #[test]
    fn new_forms_round_trip_and_bad_ones_are_refused() {
        for text in [
            r#"{"type":"header","headers":[{"name":"DD-API-KEY","template":"{{secret.api_key}}"},{"name":"DD-APPLICATION-KEY","template":"{{secret.app_key}}"}]}"#,
            r#"{"type":"header","name":"x-api-key","template":"{{secret}}","remove_headers":["authorization"],"methods":["GET"]}"#,
            r#"{"type":"basic","username":"{{secret.sid}}","password":"{{secret.token}}"}"#,
            r#"{"type":"basic","username":"anystring"}"#,
            r#"{"type":"path","template":"/bot{{secret}}{{path}}"}"#,
            r#"{"type":"aws_sigv4","region":"eu-west-1","service":"s3"}"#,
        ] {
            let p: Placement = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&p).unwrap(), text);
        }
        for bad in [
            r#"{"type":"header","name":"a"}"#,
            r#"{"type":"header","name":"a","template":"{{secret}}","headers":[]}"#,
            r#"{"type":"cookie"}"#,
            r#"{"type":"query","param":"k","colour":1}"#,
        ] {
            assert!(serde_json::from_str::<Placement>(bad).is_err(), "{bad}");
        }
    }
}
