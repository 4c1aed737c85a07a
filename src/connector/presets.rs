//! Built-in connector presets: the patterns and placement of well-known APIs, so a user only supplies
//! the name, the secrets and, for some, a parameter (an AWS region). The list is data
//! (`presets.json`, compiled in); presets are plain specs and go through the same validation as any
//! connector. `{region}`-style parameters are filled in the patterns, the placement and `check_url`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::Placement;

/// A secret a preset needs.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresetSecret {
    /// The secret's name (`secret` when it is the only one).
    #[schema(example = "secret")]
    pub name: String,
    /// What to paste, for a form or a prompt.
    pub label: String,
}

/// A parameter a preset takes when a connector is created from it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresetParam {
    #[schema(example = "region")]
    pub name: String,
    pub label: String,
    #[schema(example = "us-east-1")]
    pub example: String,
    /// Whether a connector cannot be created without it (else it only fills `check_url`).
    pub required: bool,
}

/// A built-in preset.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// What `preset` takes on creation.
    #[schema(example = "stripe")]
    pub id: String,
    /// The display name.
    #[schema(example = "Stripe")]
    pub name: String,
    /// The vendor's page on its API keys.
    pub docs_url: String,
    /// How to get the key, in one sentence.
    pub key_help: String,
    /// URL patterns; `{param}` is filled from the parameters.
    pub patterns: Vec<String>,
    #[schema(value_type = crate::connector::PlacementJson)]
    pub placement: Placement,
    /// The secrets to give, by name.
    pub secrets: Vec<PresetSecret>,
    #[serde(default)]
    pub params: Vec<PresetParam>,
    /// A cheap authenticated GET that tells whether the secrets work, when the API has one.
    pub check_url: Option<String>,
}

static PRESETS: LazyLock<Vec<Preset>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("presets.json")).expect("presets.json is valid")
});

/// Every built-in preset, in a stable order.
pub fn presets() -> &'static [Preset] {
    &PRESETS
}

/// A preset by id (case-insensitive).
pub fn preset_info(id: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.id.eq_ignore_ascii_case(id))
}

/// Every preset id, for help texts and error messages.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.id.as_str()).collect()
}

/// A preset parameter's value: 1 to 63 of `[A-Za-z0-9-]` (regions, service names, data centres,
/// account ids). Nothing that could change the JSON or URL it is put into.
fn check_param(name: &str, value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "parameter {name}: {value:?} must be 1 to 63 of A-Z, a-z, 0-9 and `-`"
        ))
    }
}

fn fill(text: &str, params: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in params {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

fn unfilled(text: &str, preset: &Preset) -> bool {
    preset
        .params
        .iter()
        .any(|p| text.contains(&format!("{{{}}}", p.name)))
}

impl Preset {
    /// The patterns and placement of a connector made from this preset with `params`. The error names
    /// the parameter that is missing, unknown or invalid.
    pub fn spec(
        &self,
        params: &BTreeMap<String, String>,
    ) -> Result<(Vec<String>, Placement), String> {
        for (name, value) in params {
            if !self.params.iter().any(|p| &p.name == name) {
                let known: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
                return Err(if known.is_empty() {
                    format!("preset {} takes no parameters (got {name})", self.id)
                } else {
                    format!(
                        "preset {} has no parameter {name} (it takes {})",
                        self.id,
                        known.join(", ")
                    )
                });
            }
            check_param(name, value)?;
        }
        for p in &self.params {
            if p.required && !params.contains_key(&p.name) {
                return Err(format!(
                    "preset {} needs the parameter {} ({}, like {})",
                    self.id, p.name, p.label, p.example
                ));
            }
        }
        let patterns = self.patterns.iter().map(|p| fill(p, params)).collect();
        let json = serde_json::to_string(&self.placement).expect("a placement serialises");
        let placement = serde_json::from_str(&fill(&json, params))
            .map_err(|e| format!("preset {}: {e}", self.id))?;
        Ok((patterns, placement))
    }

    /// `check_url` with `params` filled in, when every parameter it uses is given.
    pub fn check_url(&self, params: &BTreeMap<String, String>) -> Option<String> {
        let url = fill(self.check_url.as_deref()?, params);
        (!unfilled(&url, self)).then_some(url)
    }
}

/// The patterns and placement of the preset `id` (case-insensitive) with `params`.
pub fn preset(
    id: &str,
    params: &BTreeMap<String, String>,
) -> Result<(Vec<String>, Placement), String> {
    preset_info(id)
        .ok_or_else(|| {
            format!(
                "unknown preset {id:?} (known: {})",
                preset_names().join(", ")
            )
        })?
        .spec(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{ConnectorSpec, Secret, Secrets};

    fn params(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn stripe() {
        let (patterns, placement) = preset("Stripe", &BTreeMap::new()).unwrap();
        assert_eq!(patterns, vec!["https://api.stripe.com/*".to_string()]);
        assert_eq!(
            placement,
            Placement::header("Authorization".into(), "Bearer {{secret}}".into())
        );
        assert!(preset("nope", &BTreeMap::new())
            .unwrap_err()
            .contains("unknown preset"));
    }

    #[test]
    fn parameters_are_checked_and_filled() {
        let e = preset("aws", &BTreeMap::new()).unwrap_err();
        assert!(e.contains("needs the parameter region"), "{e}");
        let e = preset(
            "aws",
            &params(&[("region", "us-east-1"), ("service", "s3/x")]),
        )
        .unwrap_err();
        assert!(e.contains("parameter service"), "{e}");
        let e = preset("stripe", &params(&[("region", "x")])).unwrap_err();
        assert!(e.contains("takes no parameters"), "{e}");
        let ok = params(&[("region", "eu-west-1"), ("service", "sts")]);
        let (patterns, placement) = preset("aws", &ok).unwrap();
        assert_eq!(patterns[0], "https://sts.eu-west-1.amazonaws.com/*");
        assert_eq!(
            serde_json::to_string(&placement).unwrap(),
            r#"{"type":"aws_sigv4","region":"eu-west-1","service":"sts"}"#
        );
        let aws = preset_info("aws").unwrap();
        assert_eq!(
            aws.check_url(&ok).unwrap(),
            "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
        );
        let mc = preset_info("mailchimp").unwrap();
        assert!(mc.check_url(&BTreeMap::new()).is_none());
        assert!(preset("mailchimp", &BTreeMap::new()).is_ok());
    }

    /// Every preset validates with the secrets it lists, and its check URL (when it has one) is one
    /// of its own patterns' URLs.
    #[test]
    fn every_preset_validates_with_its_secrets() {
        let mut ids = std::collections::HashSet::new();
        for p in presets() {
            assert!(ids.insert(p.id.clone()), "duplicate id {}", p.id);
            let given = params(&[
                ("region", "us-east-1"),
                ("service", "sts"),
                ("dc", "us6"),
                ("account_sid", "AC0123"),
            ]);
            let given: BTreeMap<String, String> = given
                .into_iter()
                .filter(|(k, _)| p.params.iter().any(|q| &q.name == k))
                .collect();
            let (patterns, placement) = p.spec(&given).unwrap();
            let mut secrets = Secrets::new();
            for s in &p.secrets {
                // A whole-path webhook's secret is a path.
                let whole_path = matches!(&placement.kind,
                    crate::connector::PlacementKind::Path { template } if template.starts_with("{{"));
                let value = if whole_path {
                    "/services/T0/B0/x0".to_string()
                } else {
                    "s3cr3t-value".to_string()
                };
                secrets.insert(&s.name, Secret::new(value));
            }
            let c = ConnectorSpec {
                name: p.id.clone(),
                patterns,
                placement,
                scrub_echo: false,
            }
            .validate(secrets)
            .unwrap_or_else(|e| panic!("{}: {e}", p.id));
            if let Some(url) = p.check_url(&given) {
                let url = url::Url::parse(&url).unwrap();
                assert!(c.matches(&url), "{}: check_url outside its patterns", p.id);
            }
        }
        assert!(presets().len() >= 19);
    }
}
