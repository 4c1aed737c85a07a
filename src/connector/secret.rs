//! The one type that holds a connector secret in memory.

use std::fmt;

use zeroize::Zeroizing;

/// A secret value: zeroed when dropped, and `Debug`/`Display` never show it.
/// It has no `Serialize` on purpose, so it cannot slip into JSON output.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }

    /// The plaintext. Only the egress path (injection, scrubbing) and the vault call this.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The name a connector's only secret has when it is given as `"secret"` (and in `{{secret}}`).
pub const DEFAULT_SECRET_NAME: &str = "secret";

/// Most secrets one connector may hold.
pub const MAX_SECRETS: usize = 8;

/// Marks the sealed form of a set that is not just one secret named `secret`. No secret may hold
/// NUL (validation refuses it), so no plaintext sealed before named secrets existed starts with it.
const SET_MAGIC: &str = "\0codestep-secrets-v2\0";

/// A connector's secrets by name, ordered by name. Names are not secret; values are, and are kept as
/// [`Secret`]s. `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct Secrets(std::collections::BTreeMap<String, Secret>);

impl Secrets {
    pub fn new() -> Self {
        Secrets::default()
    }

    /// One secret named `secret`: what a connector with a single secret holds.
    pub fn single(secret: Secret) -> Self {
        let mut s = Secrets::new();
        s.insert(DEFAULT_SECRET_NAME, secret);
        s
    }

    pub fn insert(&mut self, name: &str, secret: Secret) {
        self.0.insert(name.to_string(), secret);
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn values(&self) -> impl Iterator<Item = &Secret> {
        self.0.values()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The plaintext the vault seals. A set that is exactly one secret named `secret` is sealed as
    /// that secret alone, as every connector was before named secrets, so old and new rows read alike.
    /// Any other set is `SET_MAGIC` then `name NUL value NUL` per secret.
    pub fn encode(&self) -> Secret {
        if self.0.len() == 1 {
            if let Some(only) = self.0.get(DEFAULT_SECRET_NAME) {
                return only.clone();
            }
        }
        let mut out = Zeroizing::new(String::with_capacity(
            SET_MAGIC.len()
                + self
                    .0
                    .iter()
                    .map(|(k, v)| k.len() + v.expose().len() + 2)
                    .sum::<usize>(),
        ));
        out.push_str(SET_MAGIC);
        for (name, value) in &self.0 {
            out.push_str(name);
            out.push('\0');
            out.push_str(value.expose());
            out.push('\0');
        }
        Secret::new(std::mem::take(&mut *out))
    }

    /// Reads what [`Secrets::encode`] wrote, and any secret sealed before named secrets existed (one
    /// secret named `secret`). The error never holds a value.
    pub fn decode(plain: &Secret) -> Result<Secrets, String> {
        let text = plain.expose();
        let Some(rest) = text.strip_prefix(SET_MAGIC) else {
            return Ok(Secrets::single(plain.clone()));
        };
        let Some(body) = rest.strip_suffix('\0') else {
            return Err("the secret set is malformed".into());
        };
        let mut out = Secrets::new();
        let mut parts = body.split('\0');
        while let Some(name) = parts.next() {
            let Some(value) = parts.next() else {
                return Err("the secret set is malformed".into());
            };
            if name.is_empty() {
                return Err("the secret set is malformed".into());
            }
            out.insert(name, Secret::new(value.to_string()));
        }
        if out.is_empty() {
            return Err("the secret set is empty".into());
        }
        Ok(out)
    }
}

impl From<Secret> for Secrets {
    fn from(s: Secret) -> Self {
        Secrets::single(s)
    }
}

impl From<&Secret> for Secrets {
    fn from(s: &Secret) -> Self {
        Secrets::single(s.clone())
    }
}

impl From<&Secrets> for Secrets {
    fn from(s: &Secrets) -> Self {
        s.clone()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "[redacted]")))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_secret_seals_as_before_and_old_plaintexts_read_as_one_secret() {
        let one = Secrets::single(Secret::new("sk_old_format".into()));
        assert!(one.encode().expose() == "sk_old_format");
        let back = Secrets::decode(&Secret::new("sk_old_format".into())).unwrap();
        assert_eq!(back.names().collect::<Vec<_>>(), vec!["secret"]);
        assert!(back.get("secret").unwrap().expose() == "sk_old_format");
    }

    #[test]
    fn a_set_round_trips_and_debug_shows_names_only() {
        let mut s = Secrets::new();
        s.insert("api_key", Secret::new("dd_api_value".into()));
        s.insert("app_key", Secret::new("dd_app_value".into()));
        let sealed = s.encode();
        let back = Secrets::decode(&sealed).unwrap();
        assert_eq!(back.len(), 2);
        assert!(back.get("api_key").unwrap().expose() == "dd_api_value");
        assert!(back.get("app_key").unwrap().expose() == "dd_app_value");
        let shown = format!("{back:?} {sealed:?}");
        assert!(!shown.contains("dd_api_value") && !shown.contains("dd_app_value"));
        assert!(shown.contains("api_key"));
        assert!(Secrets::decode(&Secret::new(format!("{SET_MAGIC}a\0v"))).is_err());
        assert!(Secrets::decode(&Secret::new(SET_MAGIC.into())).is_err());
    }
}
