//! The vault: encrypts connector secrets at rest with versioned master keys.
//!
//! See `shared/docs/security-model.md`, "Secrets at rest". Keys come from `CODESTEP_MASTER_KEY` or a key
//! file (`CODESTEP_KEY_FILE`, else the default path beside the default store), in the format described in
//! [`keys`]. Secrets only ever leave the vault as [`Secret`], which zeroes itself and redacts `Debug`.

pub mod cipher;
pub mod keys;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::connector::Secret;

pub use cipher::{RunIoContext, Sealed, SecretContext};
pub use keys::{Keyring, MasterKey, KEY_FILE_ENV, MASTER_KEY_ENV};

/// What went wrong in the vault. No variant ever carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The master key configuration is missing or malformed.
    #[error("master key: {0}")]
    KeyConfig(String),
    /// The operating system's random generator failed.
    #[error("{0}")]
    Random(String),
    /// The stored ciphertext or nonce has the wrong shape.
    #[error("stored secret is malformed: {0}")]
    Malformed(String),
    /// The ciphertext does not authenticate under its key version and row.
    #[error("stored secret failed authentication: it was edited, truncated or moved from another row, or the master key is not the one it was encrypted with")]
    Authentication,
    /// The ciphertext names a key version this vault does not have.
    #[error("stored secret is encrypted with master key version {version}, but the keys loaded are versions {available:?}; the old key version may have been removed from {origin}")]
    UnknownKeyVersion {
        version: u32,
        available: Vec<u32>,
        origin: String,
    },
    /// The loaded key for a version is not the key the store's secrets of that version were sealed with.
    #[error("master key version {version} from {origin} is not the key this store's secrets were encrypted with (wrong CODESTEP_MASTER_KEY or key file?)")]
    WrongMasterKey { version: u32, origin: String },
    /// The decrypted secret is not UTF-8 (cannot happen for secrets this vault sealed).
    #[error("stored secret is not valid UTF-8")]
    NotUtf8,
}

/// Where the vault's keys came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `CODESTEP_MASTER_KEY`.
    Env,
    /// A key file.
    File(PathBuf),
    /// Built in memory (tests, embedding).
    Memory,
}

impl KeySource {
    pub fn describe(&self) -> String {
        match self {
            KeySource::Env => MASTER_KEY_ENV.to_string(),
            KeySource::File(p) => format!("key file {}", p.display()),
            KeySource::Memory => "the in-memory keyring".to_string(),
        }
    }
}

struct Inner {
    keyring: Keyring,
    source: KeySource,
}

/// Seals and opens connector secrets. Cheap to clone.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("source", &self.inner.source)
            .field("versions", &self.inner.keyring.versions())
            .finish()
    }
}

/// The outcome of [`Vault::load`].
#[derive(Debug)]
pub struct LoadedVault {
    pub vault: Vault,
    /// Set when a new key file was created (the caller tells the user where).
    pub created_key_file: Option<PathBuf>,
}

impl Vault {
    /// A vault over an in-memory keyring.
    pub fn new(keyring: Keyring) -> Vault {
        Vault::with_source(keyring, KeySource::Memory)
    }

    pub fn with_source(keyring: Keyring, source: KeySource) -> Vault {
        Vault {
            inner: Arc::new(Inner { keyring, source }),
        }
    }

    /// Loads the master keys: `CODESTEP_MASTER_KEY` if set, else the key file named by
    /// `CODESTEP_KEY_FILE`, else `default_key_file`. With `create_if_missing`, a missing key file is
    /// created (mode 0600) with one fresh key, and reported in [`LoadedVault::created_key_file`].
    pub fn load(
        default_key_file: &Path,
        create_if_missing: bool,
    ) -> Result<LoadedVault, VaultError> {
        if let Some(value) = std::env::var_os(MASTER_KEY_ENV) {
            let value = zeroize::Zeroizing::new(value.into_string().map_err(|_| {
                VaultError::KeyConfig(format!("{MASTER_KEY_ENV} is not valid UTF-8"))
            })?);
            if !value.trim().is_empty() {
                let keyring = Keyring::parse(&value, MASTER_KEY_ENV)?;
                return Ok(LoadedVault {
                    vault: Vault::with_source(keyring, KeySource::Env),
                    created_key_file: None,
                });
            }
        }
        let path = match std::env::var_os(KEY_FILE_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => default_key_file.to_path_buf(),
        };
        Vault::load_file(&path, create_if_missing)
    }

    /// Loads (or creates) a specific key file, ignoring the environment.
    pub fn load_file(path: &Path, create_if_missing: bool) -> Result<LoadedVault, VaultError> {
        let mut created_key_file = None;
        if !path.exists() {
            if !create_if_missing {
                return Err(VaultError::KeyConfig(format!(
                    "no master key: {MASTER_KEY_ENV} is not set and the key file {} does not exist",
                    path.display()
                )));
            }
            let keyring = Keyring::new(vec![MasterKey::generate(1)?])?;
            if keys::write_key_file(path, &keyring, false)? {
                created_key_file = Some(path.to_path_buf());
            }
        }
        warn_if_readable_by_others(path);
        let keyring = keys::read_key_file(path)?;
        Ok(LoadedVault {
            vault: Vault::with_source(keyring, KeySource::File(path.to_path_buf())),
            created_key_file,
        })
    }

    pub fn source(&self) -> &KeySource {
        &self.inner.source
    }

    pub fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    /// The version new secrets are sealed with.
    pub fn current_version(&self) -> u32 {
        self.inner.keyring.current().version()
    }

    pub fn versions(&self) -> Vec<u32> {
        self.inner.keyring.versions()
    }

    /// Encrypts `secret` for the given row with the current key version.
    pub fn seal(&self, ctx: &SecretContext<'_>, secret: &Secret) -> Result<Sealed, VaultError> {
        cipher::seal(
            self.inner.keyring.current(),
            ctx,
            secret.expose().as_bytes(),
        )
    }

    /// Decrypts a stored secret. Fails (never returns garbage) if the data was edited, truncated, moved
    /// to another row or relabelled with another key version.
    pub fn open(&self, ctx: &SecretContext<'_>, sealed: &Sealed) -> Result<Secret, VaultError> {
        let key = self.key(sealed.key_version)?;
        let plain = cipher::open(key, ctx, sealed)?;
        let text = std::str::from_utf8(&plain).map_err(|_| VaultError::NotUtf8)?;
        Ok(Secret::new(text.to_string()))
    }

    /// Encrypts a run's input or output (JSON text) for the run and field in `ctx`, with the current
    /// key version. Only for workspaces that keep run input and output.
    pub fn seal_run_io(&self, ctx: &RunIoContext<'_>, json: &[u8]) -> Result<Sealed, VaultError> {
        let key = self.inner.keyring.current();
        cipher::seal_with(key, &cipher::run_io_aad(ctx, key.version()), json)
    }

    /// Decrypts what [`Vault::seal_run_io`] sealed for the same run and field.
    pub fn open_run_io(
        &self,
        ctx: &RunIoContext<'_>,
        sealed: &Sealed,
    ) -> Result<Vec<u8>, VaultError> {
        let key = self.key(sealed.key_version)?;
        let plain = cipher::open_with(key, &cipher::run_io_aad(ctx, sealed.key_version), sealed)?;
        Ok(plain.to_vec())
    }

    /// Re-encrypts a sealed secret under the current key version (with a fresh nonce).
    pub fn reseal(&self, ctx: &SecretContext<'_>, sealed: &Sealed) -> Result<Sealed, VaultError> {
        let secret = self.open(ctx, sealed)?;
        self.seal(ctx, &secret)
    }

    /// The check value of a key version (see [`cipher::key_check`]); the store records it so that a wrong
    /// master key is reported as such.
    pub fn key_check(&self, version: u32) -> Result<Vec<u8>, VaultError> {
        Ok(cipher::key_check(self.key(version)?))
    }

    fn key(&self, version: u32) -> Result<&MasterKey, VaultError> {
        self.inner
            .keyring
            .get(version)
            .ok_or_else(|| VaultError::UnknownKeyVersion {
                version,
                available: self.inner.keyring.versions(),
                origin: self.inner.source.describe(),
            })
    }

    /// For a key file: adds a fresh key version to the file (atomically, under a lock, keeping every old
    /// version) and returns the vault with the new keyring. Other sources cannot be changed from here:
    /// for `CODESTEP_MASTER_KEY` the operator adds the new version to the variable.
    pub fn add_key_version(&self) -> Result<Vault, VaultError> {
        let KeySource::File(path) = &self.inner.source else {
            return Err(VaultError::KeyConfig(format!(
                "keys from {} cannot be extended by codestep; add a new VERSION:BASE64 entry to it",
                self.inner.source.describe()
            )));
        };
        let _lock = keys::KeyFileLock::acquire(path)?;
        // Re-read under the lock: another process may have rotated since we loaded.
        let mut keyring = keys::read_key_file(path)?;
        keyring.add_generated()?;
        keys::write_key_file(path, &keyring, true)?;
        Ok(Vault::with_source(keyring, self.inner.source.clone()))
    }

    /// A human description of where the keys come from.
    pub fn origin(&self) -> String {
        self.inner.source.describe()
    }
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "codestep: warning: key file {} is readable by other users; run: chmod 600 {}",
                path.display(),
                path.display()
            );
        }
    }
}
