//! Built-in connector presets: the patterns and placement of well-known APIs, so a user only supplies
//! the name and the secret. Presets are plain specs and go through the same validation as any connector.

use super::model::Placement;

struct Preset {
    name: &'static str,
    patterns: &'static [&'static str],
    header: &'static str,
    template: &'static str,
}

const PRESETS: &[Preset] = &[
    Preset {
        name: "stripe",
        patterns: &["https://api.stripe.com/*"],
        header: "Authorization",
        template: "Bearer {{secret}}",
    },
    Preset {
        name: "github",
        patterns: &["https://api.github.com/*"],
        header: "Authorization",
        template: "Bearer {{secret}}",
    },
    Preset {
        name: "openai",
        patterns: &["https://api.openai.com/*"],
        header: "Authorization",
        template: "Bearer {{secret}}",
    },
    Preset {
        name: "anthropic",
        patterns: &["https://api.anthropic.com/*"],
        header: "x-api-key",
        template: "{{secret}}",
    },
    Preset {
        name: "slack",
        patterns: &["https://slack.com/api/*"],
        header: "Authorization",
        template: "Bearer {{secret}}",
    },
];

/// The patterns and placement of a preset, by name (case-insensitive).
pub fn preset(name: &str) -> Option<(Vec<String>, Placement)> {
    PRESETS
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| {
            (
                p.patterns.iter().map(|s| s.to_string()).collect(),
                Placement::Header {
                    name: p.header.to_string(),
                    template: p.template.to_string(),
                },
            )
        })
}

/// Every preset name, for help texts and error messages.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{ConnectorSpec, Secret};

    #[test]
    fn stripe() {
        let (patterns, placement) = preset("Stripe").unwrap();
        assert_eq!(patterns, vec!["https://api.stripe.com/*".to_string()]);
        assert_eq!(
            placement,
            Placement::Header {
                name: "Authorization".into(),
                template: "Bearer {{secret}}".into()
            }
        );
        assert!(preset("nope").is_none());
    }

    #[test]
    fn every_preset_validates() {
        for name in preset_names() {
            let (patterns, placement) = preset(name).unwrap();
            let spec = ConnectorSpec {
                name: name.to_string(),
                patterns,
                placement,
                scrub_echo: false,
            };
            spec.validate(Secret::new("s".into()))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
