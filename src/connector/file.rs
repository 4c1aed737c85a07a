//! The ad-hoc connectors file: a JSON array of connectors with their secrets, for local runs and tests.
//!
//! ```json
//! [
//!   { "name": "stripe", "preset": "stripe", "secret_env": "STRIPE_KEY" },
//!   { "name": "weather", "patterns": ["https://api.weather.test/v1/*"],
//!     "placement": { "type": "query", "param": "appid" }, "scrub_echo": true,
//!     "secret_file": "weather.key" },
//!   { "name": "dd", "preset": "datadog", "secrets": { "api_key": "…", "app_key": "…" } },
//!   { "name": "aws", "preset": "aws", "params": { "region": "eu-west-1", "service": "sqs" },
//!     "secrets": { "access_key_id": "…", "secret_access_key": "…" } }
//! ]
//! ```
//!
//! Each entry has exactly one of `secret` (inline), `secret_env` (an environment variable name),
//! `secret_file` (a path, relative to the connectors file's directory; one trailing newline is removed)
//! — each the one secret, named `secret` — or `secrets` (named secrets, inline).
//! `preset` fills `patterns` and `placement` when they are absent, with its `params`. Unknown fields and duplicate names
//! (case-insensitive) are refused. Errors name the entry and the field, never a secret value.

use std::cell::Cell;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::model::{Connector, ConnectorSpec, Placement};
use super::presets::preset;
use super::secret::{Secret, Secrets};

/// Why the connectors file could not be loaded.
#[derive(Debug)]
pub struct ConnectorFileError {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for ConnectorFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connectors file {}: {}",
            self.path.display(),
            self.message
        )
    }
}

impl std::error::Error for ConnectorFileError {}

/// Deserialised straight into a zeroizing type, so the inline secret has no unprotected copy.
struct InlineSecret(Secret);

impl<'de> Deserialize<'de> for InlineSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(InlineSecret(Secret::new(String::deserialize(d)?)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(default)]
    patterns: Option<Vec<String>>,
    #[serde(default)]
    placement: Option<Placement>,
    #[serde(default)]
    scrub_echo: bool,
    #[serde(default)]
    preset: Option<String>,
    #[serde(default)]
    secret: Option<InlineSecret>,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    /// Named secrets, inline: `{"api_key": "…", "app_key": "…"}`.
    #[serde(default)]
    secrets: Option<std::collections::BTreeMap<String, InlineSecret>>,
    /// Preset parameters, like `{"region": "us-east-1", "service": "sts"}`.
    #[serde(default)]
    params: std::collections::BTreeMap<String, String>,
}

/// Deserialises the top-level array while remembering which entry is being read, so a syntax or shape
/// error can name it.
struct Entries<'a> {
    current: &'a Cell<usize>,
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = Vec<Entry>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of connector objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Entry>, A::Error> {
        let mut out = Vec::new();
        loop {
            self.current.set(out.len());
            match seq.next_element::<Entry>()? {
                Some(e) => out.push(e),
                None => return Ok(out),
            }
        }
    }
}

/// Loads and validates every connector in the file.
pub fn load_connectors_file(path: &Path) -> Result<Vec<Connector>, ConnectorFileError> {
    let fail = |message: String| ConnectorFileError {
        path: path.to_path_buf(),
        message,
    };
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?,
    );
    let current = Cell::new(usize::MAX);
    let mut de = serde_json::Deserializer::from_str(&text);
    let entries = de
        .deserialize_seq(Entries { current: &current })
        .and_then(|v| de.end().map(|_| v))
        .map_err(|e| match current.get() {
            usize::MAX => fail(format!("invalid JSON: {e}")),
            i => fail(format!("entry [{i}]: {e}")),
        })?;

    let base = path.parent().unwrap_or(Path::new("."));
    let mut out: Vec<Connector> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let name = entry.name.clone();
        let at = |field: &str, message: String| {
            fail(format!("entry [{i}] ({name:?}): {field}: {message}"))
        };
        let connector = build(entry, base, &at).map_err(|e| match e {
            BuildError::Field(err) => err,
            BuildError::Validation(v) => fail(format!("entry [{i}]: {v}")),
        })?;
        if let Some(prev) = out
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(&connector.name))
        {
            return Err(fail(format!(
                "entry [{i}] ({:?}): name: duplicates entry [{prev}] (names are compared case-insensitively)",
                connector.name
            )));
        }
        out.push(connector);
    }
    Ok(out)
}

enum BuildError {
    Field(ConnectorFileError),
    Validation(super::validate::ValidationError),
}

fn build(
    entry: Entry,
    base: &Path,
    at: &dyn Fn(&str, String) -> ConnectorFileError,
) -> Result<Connector, BuildError> {
    let field = |f: &str, m: String| BuildError::Field(at(f, m));

    let (mut patterns, mut placement) = (entry.patterns, entry.placement);
    if let Some(name) = &entry.preset {
        let (p, pl) = preset(name, &entry.params).map_err(|m| field("preset", m))?;
        patterns.get_or_insert(p);
        placement.get_or_insert(pl);
    }
    let patterns =
        patterns.ok_or_else(|| field("patterns", "missing (give patterns or a preset)".into()))?;
    let placement = placement
        .ok_or_else(|| field("placement", "missing (give placement or a preset)".into()))?;

    let sources = [
        entry.secret.is_some(),
        entry.secret_env.is_some(),
        entry.secret_file.is_some(),
        entry.secrets.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(field(
            "secret",
            "give exactly one of secret, secret_env, secret_file, secrets".into(),
        ));
    }
    let secrets: Secrets = if let Some(map) = entry.secrets {
        let mut set = Secrets::new();
        for (name, InlineSecret(value)) in map {
            set.insert(&name, value);
        }
        set
    } else if let Some(InlineSecret(s)) = entry.secret {
        s.into()
    } else if let Some(var) = &entry.secret_env {
        match std::env::var(var) {
            Ok(v) => Secret::new(v).into(),
            Err(std::env::VarError::NotPresent) => {
                return Err(field(
                    "secret_env",
                    format!("environment variable {var:?} is not set"),
                ))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(field(
                    "secret_env",
                    format!("environment variable {var:?} is not valid UTF-8"),
                ))
            }
        }
    } else if let Some(file) = &entry.secret_file {
        let full = base.join(file);
        let mut text = std::fs::read_to_string(&full).map_err(|e| {
            field(
                "secret_file",
                format!("cannot read {}: {e}", full.display()),
            )
        })?;
        // Editors add a final newline; only one is removed so a secret that really ends in one stays
        // refused by validation rather than silently changed.
        if text.ends_with("\r\n") {
            text.truncate(text.len() - 2);
        } else if text.ends_with('\n') {
            text.truncate(text.len() - 1);
        }
        Secret::new(text).into()
    } else {
        unreachable!("exactly one secret source was checked above")
    };

    ConnectorSpec {
        name: entry.name,
        patterns,
        placement,
        scrub_echo: entry.scrub_echo,
    }
    .validate(secrets)
    .map_err(BuildError::Validation)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("codestep-connfile-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn load_err(tag: &str, json: &str) -> String {
        let d = TempDir::new(tag);
        let e = load_connectors_file(&d.write("c.json", json))
            .expect_err("should fail")
            .to_string();
        assert!(!e.contains("sk_file_secret"), "error leaks a secret");
        e
    }

    #[test]
    fn loads_all_sources_and_presets() {
        let d = TempDir::new("ok");
        d.write("weather.key", "wk_123\n");
        // PATH rather than a variable of our own: setting variables races with other test threads.
        let path_var = std::env::var("PATH").unwrap();
        let path = d.write(
            "c.json",
            r#"[
              {"name": "stripe", "preset": "stripe", "secret": "sk_file_secret"},
              {"name": "weather", "patterns": ["https://API.weather.test/v1/*"],
               "placement": {"type": "query", "param": "appid"}, "scrub_echo": true,
               "secret_file": "weather.key"},
              {"name": "gh", "preset": "github", "patterns": ["https://api.github.com/repos/*"],
               "secret_env": "PATH"}
            ]"#,
        );
        let cs = load_connectors_file(&path).unwrap();
        assert_eq!(cs.len(), 3);
        assert_eq!(cs[0].patterns[0].to_string(), "https://api.stripe.com/*");
        assert!(cs[0].secrets.get("secret").unwrap().expose() == "sk_file_secret");
        assert!(cs[1].secrets.get("secret").unwrap().expose() == "wk_123");
        assert!(cs[1].scrub_echo);
        assert_eq!(
            cs[1].patterns[0].to_string(),
            "https://api.weather.test/v1/*"
        );
        assert!(cs[2].secrets.get("secret").unwrap().expose() == path_var);
        assert_eq!(
            cs[2].patterns[0].to_string(),
            "https://api.github.com/repos/*"
        );
        assert_eq!(cs[2].placement.type_name(), "header");
    }

    #[test]
    fn errors_name_entry_and_field() {
        let e = load_err(
            "unknown",
            r#"[{"name":"a","preset":"stripe","secret":"sk_file_secret","colour":1}]"#,
        );
        assert!(e.contains("entry [0]") && e.contains("colour"), "{e}");

        let e = load_err(
            "dup",
            r#"[{"name":"a","preset":"stripe","secret":"sk_file_secret"},
                {"name":"A","preset":"stripe","secret":"sk_file_secret"}]"#,
        );
        assert!(
            e.contains("entry [1]") && e.contains("duplicates entry [0]"),
            "{e}"
        );

        let e = load_err(
            "two",
            r#"[{"name":"a","preset":"stripe","secret":"sk_file_secret","secret_env":"X"}]"#,
        );
        assert!(e.contains("exactly one"), "{e}");
        let e = load_err("none", r#"[{"name":"a","preset":"stripe"}]"#);
        assert!(e.contains("exactly one"), "{e}");

        let e = load_err(
            "preset",
            r#"[{"name":"a","preset":"nope","secret":"sk_file_secret"}]"#,
        );
        assert!(e.contains("unknown preset") && e.contains("stripe"), "{e}");

        let e = load_err(
            "nopat",
            r#"[{"name":"a","secret":"sk_file_secret","placement":{"type":"query","param":"k"}}]"#,
        );
        assert!(e.contains(r#"entry [0] ("a"): patterns: missing"#), "{e}");

        let e = load_err(
            "badpat",
            r#"[{"name":"ok","preset":"stripe","secret":"sk_file_secret"},
                {"name":"b","patterns":["https://a.com","http://x"],"placement":{"type":"query","param":"k"},"secret":"sk_file_secret"}]"#,
        );
        assert!(
            e.contains(r#"entry [1]: connector "b": patterns[1]: "http://x" must use https"#),
            "{e}"
        );

        let e = load_err(
            "env",
            r#"[{"name":"a","preset":"stripe","secret_env":"CODESTEP_TEST_SURELY_UNSET_VAR"}]"#,
        );
        assert!(e.contains("secret_env") && e.contains("not set"), "{e}");

        let e = load_err(
            "file",
            r#"[{"name":"a","preset":"stripe","secret_file":"missing.key"}]"#,
        );
        assert!(
            e.contains("secret_file") && e.contains("cannot read"),
            "{e}"
        );

        let e = load_err("syntax", r#"[{"name":"a"} "#);
        assert!(e.contains("connectors file"), "{e}");

        let e = load_err("notarray", r#"{"name":"a"}"#);
        assert!(e.contains("invalid JSON"), "{e}");

        let e = load_err(
            "badplacement",
            r#"[{"name":"a","patterns":["https://a.com"],"placement":{"type":"cookie"},"secret":"sk_file_secret"}]"#,
        );
        assert!(e.contains("entry [0]"), "{e}");
    }

    #[test]
    fn secret_file_keeps_all_but_one_newline() {
        let d = TempDir::new("nl");
        d.write("k", "abc\n\n");
        let path = d.write(
            "c.json",
            r#"[{"name":"a","preset":"stripe","secret_file":"k"}]"#,
        );
        // A second newline stays and is then refused by validation, without echoing the value.
        let e = load_connectors_file(&path).unwrap_err().to_string();
        assert!(e.contains("CR, LF or NUL") && !e.contains("abc"), "{e}");
    }
}
