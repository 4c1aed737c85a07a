//! Operations that need both the store and the vault: validate, seal, store; load and decrypt.
//!
//! Secrets are write-only: nothing here returns a secret except [`load_step_connectors`] (for the step
//! that is starting) and [`decrypt_secret`] (for `connector test`), both as [`Secret`].

use std::sync::Arc;

use crate::connector::{Connector, ConnectorSpec, Placement, Secret, Secrets, UrlPattern};
use crate::vault::{RunIoContext, SecretContext, Vault, VaultError};

use super::{
    new_id, ConnectorChanges, ConnectorRecord, NewConnectorRow, RunIoRow, SealedRunIo, SecretRow,
    Store, StoreError, Workspace,
};

/// Workspace names: 1 to 64 characters of ASCII letters, digits, `-`, `_` and `.`, starting with a
/// letter or digit.
pub fn validate_workspace_name(name: &str) -> Result<(), StoreError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 64 || !ok_chars || !ok_start {
        return Err(StoreError::invalid(
            "workspace",
            format!("{name:?} is not a valid workspace name: use 1 to 64 characters of letters, digits, '-', '_' or '.', starting with a letter or digit"),
        ));
    }
    Ok(())
}

fn vault_err(context: impl Into<String>) -> impl FnOnce(VaultError) -> StoreError {
    let context = context.into();
    move |source| StoreError::Vault { context, source }
}

/// Makes sure the vault's current key is the one this store has used for that version before (or
/// records it if the version is new here), so one version never means two keys.
async fn ensure_current_key(store: &dyn Store, vault: &Vault) -> Result<(), StoreError> {
    let version = vault.current_version();
    let check = vault
        .key_check(version)
        .map_err(vault_err("checking the master key"))?;
    match store.record_key_check(version, &check).await {
        Err(StoreError::KeyMismatch(v)) => Err(StoreError::Vault {
            context: "refusing to encrypt".into(),
            source: VaultError::WrongMasterKey {
                version: v,
                origin: vault.origin(),
            },
        }),
        other => other,
    }
}

/// Checks every key version the vault holds against what this store recorded for it, so that a node
/// started with the wrong master key refuses to start instead of failing every run that needs a secret.
pub async fn check_master_keys(store: &dyn Store, vault: &Vault) -> Result<(), StoreError> {
    for version in vault.versions() {
        let Some(recorded) = store.key_check(version).await? else {
            continue;
        };
        let ours = vault
            .key_check(version)
            .map_err(vault_err("checking the master key"))?;
        if recorded != ours {
            return Err(StoreError::Vault {
                context: "checking the master key against the store".into(),
                source: VaultError::WrongMasterKey {
                    version,
                    origin: vault.origin(),
                },
            });
        }
    }
    Ok(())
}

/// Validates `spec` with its secrets (one [`Secret`] is the secret named `secret`), seals them (one
/// ciphertext for the set, see [`Secrets::encode`]) and stores a new connector in `workspace`.
pub async fn create_connector(
    store: &dyn Store,
    vault: &Vault,
    workspace: &str,
    spec: &ConnectorSpec,
    secrets: impl Into<Secrets>,
    actor: &super::Actor,
) -> Result<ConnectorRecord, StoreError> {
    let secrets: Secrets = secrets.into();
    let connector = spec.validate(secrets.clone())?;
    let ws = store.workspace(workspace).await?;
    ensure_current_key(store, vault).await?;
    let id = new_id();
    let sealed = vault
        .seal(
            &SecretContext {
                workspace_id: &ws.id,
                connector_id: &id,
            },
            &secrets.encode(),
        )
        .map_err(vault_err("encrypting the secret"))?;
    let row = NewConnectorRow {
        id,
        workspace_id: ws.id,
        name: spec.name.clone(),
        patterns: normalised_patterns(&connector),
        placement: connector.placement.clone(),
        scrub_echo: connector.scrub_echo,
        sealed,
    };
    store.insert_connector(row, actor).await
}

fn normalised_patterns(connector: &Connector) -> Vec<String> {
    connector.patterns.iter().map(|p| p.to_string()).collect()
}

/// What `connector update` may change. `None` keeps the current value.
#[derive(Debug, Default)]
pub struct ConnectorUpdate {
    pub patterns: Option<Vec<String>>,
    pub placement: Option<Placement>,
    pub scrub_echo: Option<bool>,
    /// The whole new set of secrets: rotation replaces every one.
    pub secrets: Option<Secrets>,
}

impl ConnectorUpdate {
    pub fn is_empty(&self) -> bool {
        self.patterns.is_none()
            && self.placement.is_none()
            && self.scrub_echo.is_none()
            && self.secrets.is_none()
    }
}

/// Changes a stored connector. The merged definition is validated like a new one; a new secret is
/// sealed with the current key; fields not given stay as they are (the old secret is not decrypted).
pub async fn update_connector(
    store: &dyn Store,
    vault: &Vault,
    workspace: &str,
    name: &str,
    update: ConnectorUpdate,
    actor: &super::Actor,
) -> Result<ConnectorRecord, StoreError> {
    if update.is_empty() {
        return Err(StoreError::invalid(
            "update",
            "nothing to change: give new patterns, a placement, scrub_echo or a new secret",
        ));
    }
    let current = store.connector(workspace, name).await?;
    // Changing where the secret goes needs the secret: the store checks that on the locked row
    // (`ConnectorChanges::check_secret_rule`), so no change landing meanwhile can be undone without it.
    let spec = ConnectorSpec {
        name: current.name.clone(),
        patterns: update
            .patterns
            .clone()
            .unwrap_or_else(|| current.patterns.clone()),
        placement: update
            .placement
            .clone()
            .unwrap_or_else(|| current.placement.clone()),
        scrub_echo: update.scrub_echo.unwrap_or(current.scrub_echo),
    };
    let mut changes = ConnectorChanges {
        patterns: None,
        placement: update.placement.clone(),
        scrub_echo: update.scrub_echo,
        sealed: None,
    };
    match &update.secrets {
        Some(secrets) => {
            let connector = spec.validate(secrets.clone())?;
            if update.patterns.is_some() {
                changes.patterns = Some(normalised_patterns(&connector));
            }
            ensure_current_key(store, vault).await?;
            let sealed = vault
                .seal(
                    &SecretContext {
                        workspace_id: &current.workspace_id,
                        connector_id: &current.id,
                    },
                    &secrets.encode(),
                )
                .map_err(vault_err("encrypting the secret"))?;
            changes.sealed = Some(sealed);
        }
        None => {
            spec.check()?;
            if let Some(patterns) = &update.patterns {
                // `check` passed, so every pattern parses; store them normalised, as `validate` would.
                let normalised = patterns
                    .iter()
                    .map(|p| UrlPattern::parse(p).map(|p| p.to_string()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        StoreError::Invalid(super::Invalid {
                            field: Some("patterns".into()),
                            message: e.to_string(),
                        })
                    })?;
                changes.patterns = Some(normalised);
            }
        }
    }
    store
        .update_connector(&current.workspace_id, &current.id, changes, actor)
        .await
}

/// Decrypts a stored connector's secrets. A failure says whether the master key is wrong or the row
/// does not authenticate; a plaintext that is not a secret set is reported without its content.
pub async fn decrypt_secrets(
    store: &dyn Store,
    vault: &Vault,
    record: &ConnectorRecord,
) -> Result<Secrets, StoreError> {
    let plain = decrypt_secret(store, vault, record).await?;
    Secrets::decode(&plain).map_err(|m| {
        StoreError::invalid(
            "secret",
            format!(
                "connector {:?} in workspace {:?}: {m}",
                record.name, record.workspace_name
            ),
        )
    })
}

/// Decrypts a stored connector's sealed plaintext: for a connector with one secret named `secret`,
/// that secret; otherwise the encoded set ([`decrypt_secrets`] reads it). A failure says whether the master key is wrong (its check
/// value differs from the one recorded for that version) or the row itself does not authenticate.
pub async fn decrypt_secret(
    store: &dyn Store,
    vault: &Vault,
    record: &ConnectorRecord,
) -> Result<Secret, StoreError> {
    let ctx = SecretContext {
        workspace_id: &record.workspace_id,
        connector_id: &record.id,
    };
    match vault.open(&ctx, &record.sealed) {
        Ok(secret) => Ok(secret),
        Err(e) => Err(classify(
            store,
            vault,
            &record.workspace_name,
            &record.name,
            record.sealed.key_version,
            e,
        )
        .await),
    }
}

async fn classify(
    store: &dyn Store,
    vault: &Vault,
    workspace: &str,
    connector: &str,
    version: u32,
    err: VaultError,
) -> StoreError {
    let context = format!("connector {connector:?} in workspace {workspace:?}");
    let err = match err {
        VaultError::Authentication => {
            let recorded = store.key_check(version).await.ok().flatten();
            let loaded = vault.key_check(version).ok();
            match (recorded, loaded) {
                (Some(r), Some(l)) if r != l => VaultError::WrongMasterKey {
                    version,
                    origin: vault.origin(),
                },
                _ => VaultError::Authentication,
            }
        }
        other => other,
    };
    StoreError::Vault {
        context,
        source: err,
    }
}

/// Loads the named connectors of `workspace` for a step that is starting, decrypting their secrets.
/// Keeps the given order (the first matching connector wins at egress). An unknown name, a name given
/// twice or a secret that does not decrypt is an error.
pub async fn load_step_connectors(
    store: &dyn Store,
    vault: &Vault,
    workspace: &str,
    names: &[String],
) -> Result<Vec<Connector>, StoreError> {
    Ok(load_run(store, vault, workspace, names).await?.1)
}

/// [`load_step_connectors`] with the workspace, read in one round trip with the connectors.
/// Most connectors one step may be given.
pub const MAX_RUN_CONNECTORS: usize = 64;

pub async fn load_run(
    store: &dyn Store,
    vault: &Vault,
    workspace: &str,
    names: &[String],
) -> Result<(Workspace, Vec<Connector>), StoreError> {
    // Bounded before any query: each list length is its own statement, cached per connection.
    if names.len() > MAX_RUN_CONNECTORS {
        return Err(StoreError::invalid(
            "connectors",
            format!(
                "{} connectors listed; a step may have at most {MAX_RUN_CONNECTORS}",
                names.len()
            ),
        ));
    }
    // Read first, so that an unknown workspace is reported as such whatever the names.
    let (ws, records) = store.connectors_for_run(workspace, names).await?;
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    for name in names {
        if !seen.insert(super::name_key(name)) {
            return Err(StoreError::invalid(
                "connector",
                format!("{name:?} is listed more than once for this step"),
            ));
        }
    }
    let mut out: Vec<Connector> = Vec::with_capacity(names.len());
    for (name, record) in names.iter().zip(records) {
        let record = record.ok_or_else(|| StoreError::connector_not_found(&ws.name, name))?;
        let secret = decrypt_secrets(store, vault, &record).await?;
        let spec = ConnectorSpec {
            name: record.name.clone(),
            patterns: record.patterns.clone(),
            placement: record.placement.clone(),
            scrub_echo: record.scrub_echo,
        };
        let connector = spec.validate(secret).map_err(|e| {
            StoreError::Invalid(crate::store::Invalid {
                field: Some(e.field.clone()),
                message: format!(
                    "stored connector {:?} no longer passes validation: {e}",
                    record.name
                ),
            })
        })?;
        out.push(connector);
    }
    Ok((ws, out))
}

/// What [`rotate_keys`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationReport {
    /// Whether a new key version was generated (key files only).
    pub added_version: bool,
    /// The version every secret is now sealed with.
    pub version: u32,
    pub reencrypted: u64,
    /// Runs whose kept input and output were re-encrypted.
    pub runs_reencrypted: u64,
}

/// `codestep key rotate`: for a key file, adds a new key version to the file first (keeping every old
/// version); then re-encrypts every secret under the current version in one transaction. If the
/// process dies at any point, every secret still decrypts: either the transaction committed, or the
/// secrets still use versions that the key file still holds.
///
/// `fail_after` is for tests: the re-encryption fails after that many secrets (and rolls back).
pub async fn rotate_keys(
    store: &dyn Store,
    vault: &Vault,
    actor: &super::Actor,
    fail_after: Option<u64>,
) -> Result<(Vault, RotationReport), StoreError> {
    // Refuse early if a loaded key version is not the one the store knows for that version.
    for version in vault.versions() {
        let check = vault
            .key_check(version)
            .map_err(vault_err("checking the master key"))?;
        if let Some(recorded) = store.key_check(version).await? {
            if recorded != check {
                return Err(StoreError::Vault {
                    context: "refusing to rotate".into(),
                    source: VaultError::WrongMasterKey {
                        version,
                        origin: vault.origin(),
                    },
                });
            }
        }
    }
    let (vault, added_version) = match vault.source() {
        crate::vault::KeySource::File(_) => (
            vault
                .add_key_version()
                .map_err(vault_err("adding a key version"))?,
            true,
        ),
        _ => (vault.clone(), false),
    };
    let version = vault.current_version();
    ensure_current_key(store, &vault).await?;
    let rekey_vault = vault.clone();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rekey: super::Rekey = Arc::new(move |row: &SecretRow| {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if fail_after.is_some_and(|limit| n >= limit) {
            return Err(StoreError::invalid(
                "rotation",
                "interrupted (test fault injection)",
            ));
        }
        let ctx = SecretContext {
            workspace_id: &row.workspace_id,
            connector_id: &row.connector_id,
        };
        rekey_vault
            .reseal(&ctx, &row.sealed)
            .map_err(|source| StoreError::Vault {
                context: format!(
                    "connector {:?} in workspace {:?}",
                    row.connector_name, row.workspace_name
                ),
                source,
            })
    });
    let reencrypted = store.reencrypt_secrets(rekey, version, actor).await?;
    // Then the runs' kept input and output, in a transaction of their own: until it commits they
    // are still sealed with versions the keys still hold.
    let io_vault = vault.clone();
    let rekey_io: super::RekeyRunIo = Arc::new(move |row: &RunIoRow| {
        let reseal = |field: &str, sealed: &crate::vault::Sealed| {
            let ctx = RunIoContext {
                workspace_id: &row.workspace_id,
                run_id: &row.run_id,
                field,
            };
            let plain = io_vault.open_run_io(&ctx, sealed)?;
            io_vault.seal_run_io(&ctx, &plain)
        };
        let wrap = |source| StoreError::Vault {
            context: format!("the input or output of run {:?}", row.run_id),
            source,
        };
        Ok(SealedRunIo {
            input: reseal("input", &row.io.input).map_err(wrap)?,
            output: row
                .io
                .output
                .as_ref()
                .map(|o| reseal("output", o))
                .transpose()
                .map_err(wrap)?,
        })
    });
    let runs_reencrypted = store.reencrypt_run_io(rekey_io).await?;
    Ok((
        vault,
        RotationReport {
            added_version,
            version,
            reencrypted,
            runs_reencrypted,
        },
    ))
}

/// Seals a run's input and output (their JSON text) for a workspace that keeps them. Records the
/// current key's check value first, as sealing a secret does, so one version never means two keys.
pub async fn seal_run_io(
    store: &dyn Store,
    vault: &Vault,
    workspace_id: &str,
    run_id: &str,
    input: &str,
    output: Option<&str>,
) -> Result<SealedRunIo, StoreError> {
    ensure_current_key(store, vault).await?;
    let seal = |field: &str, text: &str| {
        let ctx = RunIoContext {
            workspace_id,
            run_id,
            field,
        };
        vault
            .seal_run_io(&ctx, text.as_bytes())
            .map_err(vault_err(format!("sealing the {field} of run {run_id:?}")))
    };
    Ok(SealedRunIo {
        input: seal("input", input)?,
        output: output.map(|o| seal("output", o)).transpose()?,
    })
}

/// A run's kept input and output, decrypted: their JSON text (the output `None` when the run had
/// none). Fails if the stored data was edited or moved to another run.
pub fn open_run_io(
    vault: &Vault,
    run: &super::RunRecord,
    io: &SealedRunIo,
) -> Result<(String, Option<String>), StoreError> {
    let open = |field: &str, sealed: &crate::vault::Sealed| {
        let ctx = RunIoContext {
            workspace_id: &run.workspace_id,
            run_id: &run.id,
            field,
        };
        let bytes = vault
            .open_run_io(&ctx, sealed)
            .map_err(vault_err(format!("the {field} of run {:?}", run.id)))?;
        String::from_utf8(bytes).map_err(|_| {
            StoreError::Schema(format!("the {field} of run {:?} is not UTF-8", run.id))
        })
    };
    Ok((
        open("input", &io.input)?,
        io.output.as_ref().map(|o| open("output", o)).transpose()?,
    ))
}

/// The SHA-256 of an API token: what the store keeps and looks tokens up by.
pub fn hash_api_token(token: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

/// Makes a new API token for `workspace` (`cst_` and 43 base64url characters: 256 random bits),
/// stores its hash, and returns the token (to show once) with its record.
pub async fn create_api_token(
    store: &dyn Store,
    workspace: &str,
    name: &str,
    grant: &super::TokenGrant,
    actor: &super::Actor,
) -> Result<(Secret, super::ApiToken), StoreError> {
    use base64::Engine as _;
    if name.is_empty() || name.len() > 64 || name.contains(['\r', '\n', '\0']) {
        return Err(StoreError::invalid(
            "token name",
            "must be 1 to 64 characters without CR, LF or NUL",
        ));
    }
    if grant.expires_at.is_some_and(|at| at <= super::now_millis()) {
        return Err(StoreError::invalid("expires_at", "must be in the future"));
    }
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut bytes[..]).map_err(|e| StoreError::backend("os", "making a token", e))?;
    let token = Secret::new(format!(
        "cst_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..])
    ));
    let record = store
        .create_api_token(
            workspace,
            name,
            &hash_api_token(token.expose()),
            grant,
            actor,
        )
        .await?;
    Ok((token, record))
}
