//! Versioned master keys: where they come from and how they are written down.
//!
//! A keyring is a list of `VERSION:BASE64` entries (base64 of exactly 32 bytes), separated by commas or
//! newlines. The highest version is the current one: new secrets are sealed with it, older versions stay
//! only to open what they sealed until `codestep key rotate` has re-encrypted it. `CODESTEP_MASTER_KEY`
//! may also hold one bare base64 key, which is version 1. A key file holds the same text (plus `#`
//! comment lines) and is written with mode 0600.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use zeroize::Zeroizing;

use super::VaultError;

/// Environment variable holding the master key(s) directly.
pub const MASTER_KEY_ENV: &str = "CODESTEP_MASTER_KEY";
/// Environment variable naming the key file (when `CODESTEP_MASTER_KEY` is not set).
pub const KEY_FILE_ENV: &str = "CODESTEP_KEY_FILE";

/// One version of the master key: 32 bytes, zeroed on drop, never shown by `Debug`.
pub struct MasterKey {
    version: u32,
    bytes: Zeroizing<[u8; 32]>,
}

impl MasterKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate(version: u32) -> Result<MasterKey, VaultError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut bytes[..])
            .map_err(|e| VaultError::Random(format!("cannot get random bytes for a key: {e}")))?;
        Ok(MasterKey { version, bytes })
    }

    /// A key from its raw bytes (tests and callers that manage keys themselves).
    pub fn from_bytes(version: u32, bytes: [u8; 32]) -> MasterKey {
        MasterKey {
            version,
            bytes: Zeroizing::new(bytes),
        }
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&self.bytes[..]))
    }
}

impl Clone for MasterKey {
    fn clone(&self) -> Self {
        MasterKey {
            version: self.version,
            bytes: Zeroizing::new(*self.bytes),
        }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("version", &self.version)
            .field("key", &format_args!("[redacted]"))
            .finish()
    }
}

/// All known versions of the master key, ordered by version; the last one is current.
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring from keys with distinct versions (at least one).
    pub fn new(mut keys: Vec<MasterKey>) -> Result<Keyring, VaultError> {
        if keys.is_empty() {
            return Err(VaultError::KeyConfig(
                "a keyring needs at least one key".into(),
            ));
        }
        keys.sort_by_key(|k| k.version);
        for pair in keys.windows(2) {
            if pair[0].version == pair[1].version {
                return Err(VaultError::KeyConfig(format!(
                    "key version {} is given twice",
                    pair[0].version
                )));
            }
        }
        if keys[0].version == 0 {
            return Err(VaultError::KeyConfig(
                "key versions start at 1 (version 0 is not allowed)".into(),
            ));
        }
        Ok(Keyring { keys })
    }

    /// Parses keyring text. `origin` names where it came from, for error messages. Errors never quote
    /// key material.
    pub fn parse(text: &str, origin: &str) -> Result<Keyring, VaultError> {
        let entries: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Err(VaultError::KeyConfig(format!("{origin}: holds no key")));
        }
        let mut keys = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let (version, b64) = match entry.split_once(':') {
                Some((v, k)) => {
                    let version = v.trim().parse::<u32>().ok().filter(|v| *v > 0).ok_or_else(|| {
                        VaultError::KeyConfig(format!(
                            "{origin}: entry {} must look like VERSION:BASE64 with VERSION a whole number from 1",
                            i + 1
                        ))
                    })?;
                    (version, k.trim())
                }
                None if entries.len() == 1 => (1, *entry),
                None => {
                    return Err(VaultError::KeyConfig(format!(
                        "{origin}: with several keys every entry must look like VERSION:BASE64 (entry {} has no version)",
                        i + 1
                    )))
                }
            };
            let decoded = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| {
                        VaultError::KeyConfig(format!(
                            "{origin}: key version {version} is not valid base64 (standard alphabet, with padding)"
                        ))
                    })?,
            );
            if decoded.len() != 32 {
                return Err(VaultError::KeyConfig(format!(
                    "{origin}: key version {version} must be base64 of exactly 32 bytes (it decodes to {} bytes)",
                    decoded.len()
                )));
            }
            let mut bytes = [0u8; 32];
            bytes.copy_from_slice(&decoded);
            let key = MasterKey::from_bytes(version, bytes);
            zeroize::Zeroize::zeroize(&mut bytes);
            keys.push(key);
        }
        Keyring::new(keys).map_err(|e| match e {
            VaultError::KeyConfig(m) => VaultError::KeyConfig(format!("{origin}: {m}")),
            other => other,
        })
    }

    pub fn current(&self) -> &MasterKey {
        self.keys.last().expect("a keyring is never empty")
    }

    pub fn get(&self, version: u32) -> Option<&MasterKey> {
        self.keys.iter().find(|k| k.version == version)
    }

    pub fn versions(&self) -> Vec<u32> {
        self.keys.iter().map(|k| k.version).collect()
    }

    /// Adds a fresh random key one version above the current one, and returns its version.
    pub fn add_generated(&mut self) -> Result<u32, VaultError> {
        let version = self.current().version.checked_add(1).ok_or_else(|| {
            VaultError::KeyConfig("no key version is left above the current one".into())
        })?;
        self.keys.push(MasterKey::generate(version)?);
        Ok(version)
    }

    /// The key file text for this keyring.
    fn to_file_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::from(
            "# codestep master keys: VERSION:BASE64 (32 bytes). The highest version is current.\n\
             # Keep this file private and backed up: without it stored secrets cannot be decrypted.\n",
        ));
        for key in &self.keys {
            text.push_str(&key.version.to_string());
            text.push(':');
            text.push_str(&key.to_base64());
            text.push('\n');
        }
        text
    }
}

/// Reads a key file.
pub fn read_key_file(path: &Path) -> Result<Keyring, VaultError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        VaultError::KeyConfig(format!("cannot read key file {}: {e}", path.display()))
    })?);
    Keyring::parse(&text, &format!("key file {}", path.display()))
}

/// Writes `keyring` to `path` atomically (a 0600 temporary file in the same directory, fsynced, then
/// renamed over it). With `replace == false` the file must not exist yet: if another process created it
/// first, nothing is written and `Ok(false)` is returned.
pub fn write_key_file(path: &Path, keyring: &Keyring, replace: bool) -> Result<bool, VaultError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| {
        VaultError::KeyConfig(format!("cannot create directory {}: {e}", dir.display()))
    })?;
    let tmp = temp_path(path);
    let io = |e: std::io::Error| {
        VaultError::KeyConfig(format!("cannot write key file {}: {e}", path.display()))
    };
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        let text = keyring.to_file_text();
        let result = file
            .write_all(text.as_bytes())
            .and_then(|_| file.sync_all());
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
    }
    let outcome = if replace {
        std::fs::rename(&tmp, path).map(|_| true)
    } else {
        // A hard link fails if the target exists, so two processes creating the file at once cannot
        // overwrite each other's key.
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    };
    if !replace {
        let _ = std::fs::remove_file(&tmp);
    }
    let written = outcome.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(written)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut rand = [0u8; 8];
    let _ = getrandom::fill(&mut rand);
    let suffix: String = rand.iter().map(|b| format!("{b:02x}")).collect();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "key".into());
    path.with_file_name(format!(".{name}.{suffix}.tmp"))
}

/// Holds an exclusive advisory lock on a file beside the key file while it lives, so two rotations
/// do not both add "the next" version.
pub(crate) struct KeyFileLock {
    _file: std::fs::File,
}

impl KeyFileLock {
    pub(crate) fn acquire(key_file: &Path) -> Result<KeyFileLock, VaultError> {
        use std::os::unix::io::AsRawFd;
        let lock_path = key_file.with_file_name(format!(
            "{}.lock",
            key_file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "key".into())
        ));
        if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&lock_path)
                .map_err(|e| {
                    VaultError::KeyConfig(format!("cannot open {}: {e}", lock_path.display()))
                })?
        };
        // SAFETY: flock on a file descriptor we own; it is released when the file is closed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(VaultError::KeyConfig(format!(
                "cannot lock {}: {}",
                lock_path.display(),
                std::io::Error::last_os_error()
            )));
        }
        Ok(KeyFileLock { _file: file })
    }
}
