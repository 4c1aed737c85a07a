//! Which token may call which operation: one table, keyed by method and route template, checked by the
//! auth extractor before any handler runs. An operation missing from the table is refused for every
//! token (and a test walks `/openapi.json` so none is ever missing).

use axum::http::Method;

use crate::store::Scope;

/// What an operation needs of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// No token at all (health checks, metrics).
    Public,
    /// Any valid token.
    AnyToken,
    /// The operator token only: managing workspaces.
    Operator,
    /// The operator token, or a token of the workspace in the path (`{ws}`) carrying this scope.
    Workspace(Scope),
}

/// The rules, by method and route template as the router matches them.
const RULES: &[(&str, &str, Rule)] = &[
    ("GET", "/health", Rule::Public),
    ("GET", "/metrics", Rule::Public),
    ("GET", "/v1/me", Rule::AnyToken),
    ("GET", "/v1/presets", Rule::AnyToken),
    ("GET", "/v1/workspaces", Rule::Operator),
    ("POST", "/v1/workspaces", Rule::Operator),
    ("DELETE", "/v1/workspaces/{ws}", Rule::Operator),
    (
        "PATCH",
        "/v1/workspaces/{ws}",
        Rule::Workspace(Scope::Manage),
    ),
    (
        "GET",
        "/v1/workspaces/{ws}/tokens",
        Rule::Workspace(Scope::Manage),
    ),
    (
        "POST",
        "/v1/workspaces/{ws}/tokens",
        Rule::Workspace(Scope::Manage),
    ),
    (
        "DELETE",
        "/v1/workspaces/{ws}/tokens/{id}",
        Rule::Workspace(Scope::Manage),
    ),
    (
        "GET",
        "/v1/workspaces/{ws}/audit",
        Rule::Workspace(Scope::Read),
    ),
    (
        "POST",
        "/v1/workspaces/{ws}/runs",
        Rule::Workspace(Scope::Run),
    ),
    (
        "GET",
        "/v1/workspaces/{ws}/runs",
        Rule::Workspace(Scope::Run),
    ),
    (
        "GET",
        "/v1/workspaces/{ws}/runs/{id}",
        Rule::Workspace(Scope::Run),
    ),
    (
        "GET",
        "/v1/workspaces/{ws}/connectors",
        Rule::Workspace(Scope::Read),
    ),
    (
        "POST",
        "/v1/workspaces/{ws}/connectors",
        Rule::Workspace(Scope::Manage),
    ),
    (
        "GET",
        "/v1/workspaces/{ws}/connectors/{name}",
        Rule::Workspace(Scope::Read),
    ),
    (
        "PATCH",
        "/v1/workspaces/{ws}/connectors/{name}",
        Rule::Workspace(Scope::Manage),
    ),
    (
        "DELETE",
        "/v1/workspaces/{ws}/connectors/{name}",
        Rule::Workspace(Scope::Manage),
    ),
    (
        "POST",
        "/v1/workspaces/{ws}/connectors/{name}/test",
        Rule::Workspace(Scope::Manage),
    ),
    (
        "GET",
        "/v1/workspaces/{ws}/connectors/{name}/stats",
        Rule::Workspace(Scope::Read),
    ),
    (
        "GET",
        "/v1/workspaces/{ws}/connectors/{name}/errors",
        Rule::Workspace(Scope::Read),
    ),
    (
        "GET",
        "/v1/workspaces/{ws}/blocked",
        Rule::Workspace(Scope::Read),
    ),
];

/// The rule of an operation; `None` when the table has none, which the extractor refuses.
pub fn rule(method: &Method, route: &str) -> Option<Rule> {
    RULES
        .iter()
        .find(|(m, r, _)| *m == method.as_str() && *r == route)
        .map(|(_, _, rule)| *rule)
}

/// Every (method, route) the table knows, for the test that matches it against the API document.
#[cfg(test)]
pub fn table() -> impl Iterator<Item = (&'static str, &'static str, Rule)> {
    RULES.iter().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of the API document has exactly one rule, every rule names an operation, and
    /// every workspace rule has the workspace in its path: adding an operation without deciding who
    /// may call it fails here.
    #[test]
    fn every_operation_has_a_rule() {
        let doc = serde_json::to_value(crate::api::openapi()).unwrap();
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    ops.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        for (method, path) in &ops {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            assert!(
                rule(&m, path).is_some(),
                "{method} {path} has no scope rule in api::scopes"
            );
        }
        for (method, route, rule) in table() {
            assert!(
                ops.iter().any(|(m, p)| m == method && p == route),
                "the scope rule for {method} {route} names no operation"
            );
            if let Rule::Workspace(_) = rule {
                assert!(route.starts_with("/v1/workspaces/{ws}"), "{route}");
            }
            let same = table()
                .filter(|(m, r, _)| *m == method && *r == route)
                .count();
            assert_eq!(same, 1, "{method} {route} has {same} rules");
        }
    }
}
