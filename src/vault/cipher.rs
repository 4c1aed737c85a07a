//! AES-256-GCM sealing of connector secrets.
//!
//! Every encryption takes a fresh random 96-bit nonce. The associated data binds the ciphertext to the
//! workspace id, the connector id and the key version, so a ciphertext copied to another row (or
//! relabelled with another key version) fails to authenticate instead of decrypting.

use std::fmt;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use super::keys::MasterKey;
use super::VaultError;

/// Length of the nonce in bytes (96 bits).
pub const NONCE_LEN: usize = 12;
/// Length of the GCM authentication tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;

const AAD_LABEL: &[u8] = b"codestep connector secret v1";
const RUN_IO_LABEL: &[u8] = b"codestep run io v1";
const CHECK_LABEL: &[u8] = b"codestep master key check v1";

/// Where a sealed secret belongs. Both ids go into the associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecretContext<'a> {
    pub workspace_id: &'a str,
    pub connector_id: &'a str,
}

/// An encrypted secret as the store keeps it. Holds no plaintext, but its `Debug` still shows only sizes.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Ciphertext with the 16-byte GCM tag at the end.
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    pub key_version: u32,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("nonce_len", &self.nonce.len())
            .field("key_version", &self.key_version)
            .finish()
    }
}

/// Where a sealed run input or output belongs: the workspace, the run and which of the two it is.
/// All three go into the associated data, with a label of its own, so a run's input cannot be passed
/// off as its output, as another run's, or as a connector secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunIoContext<'a> {
    pub workspace_id: &'a str,
    pub run_id: &'a str,
    /// `input` or `output`.
    pub field: &'a str,
}

fn aad(ctx: &SecretContext<'_>, key_version: u32) -> Vec<u8> {
    aad_of(
        &[
            AAD_LABEL,
            ctx.workspace_id.as_bytes(),
            ctx.connector_id.as_bytes(),
        ],
        key_version,
    )
}

pub(crate) fn run_io_aad(ctx: &RunIoContext<'_>, key_version: u32) -> Vec<u8> {
    aad_of(
        &[
            RUN_IO_LABEL,
            ctx.workspace_id.as_bytes(),
            ctx.run_id.as_bytes(),
            ctx.field.as_bytes(),
        ],
        key_version,
    )
}

fn aad_of(parts: &[&[u8]], key_version: u32) -> Vec<u8> {
    // Length-prefixed fields, so no two different contexts share an encoding.
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum::<usize>() + 4);
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&key_version.to_be_bytes());
    out
}

fn cipher(key: &MasterKey) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key.bytes()).expect("a master key is 32 bytes")
}

pub(crate) fn seal(
    key: &MasterKey,
    ctx: &SecretContext<'_>,
    plaintext: &[u8],
) -> Result<Sealed, VaultError> {
    seal_with(key, &aad(ctx, key.version()), plaintext)
}

/// Seals `plaintext` under `key` with the associated data `ad` (which must bind the key version).
pub(crate) fn seal_with(
    key: &MasterKey,
    ad: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|e| VaultError::Random(format!("cannot get random bytes for a nonce: {e}")))?;
    let mut buffer: Vec<u8> = Vec::with_capacity(plaintext.len() + TAG_LEN);
    buffer.extend_from_slice(plaintext);
    let result = cipher(key).encrypt_in_place(&Nonce::from(nonce), ad, &mut buffer);
    if result.is_err() {
        zeroize::Zeroize::zeroize(&mut buffer);
        return Err(VaultError::Random(
            "the secret is too long to encrypt".into(),
        ));
    }
    Ok(Sealed {
        ciphertext: buffer,
        nonce: nonce.to_vec(),
        key_version: key.version(),
    })
}

/// Opens `sealed`. Errors say whether the data is malformed (truncated) or fails to authenticate; they
/// never return partial plaintext.
pub(crate) fn open(
    key: &MasterKey,
    ctx: &SecretContext<'_>,
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    open_with(key, &aad(ctx, sealed.key_version), sealed)
}

/// Opens `sealed` under `key` with the associated data `ad`.
pub(crate) fn open_with(
    key: &MasterKey,
    ad: &[u8],
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    debug_assert_eq!(key.version(), sealed.key_version);
    if sealed.nonce.len() != NONCE_LEN {
        return Err(VaultError::Malformed(format!(
            "the stored nonce is {} bytes, not {NONCE_LEN} (the row was truncated or edited)",
            sealed.nonce.len()
        )));
    }
    if sealed.ciphertext.len() < TAG_LEN {
        return Err(VaultError::Malformed(format!(
            "the stored ciphertext is {} bytes, shorter than its {TAG_LEN}-byte authentication tag (the row was truncated)",
            sealed.ciphertext.len()
        )));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sealed.nonce);
    let mut buffer = Zeroizing::new(sealed.ciphertext.clone());
    cipher(key)
        .decrypt_in_place(&Nonce::from(nonce), ad, &mut *buffer)
        .map_err(|_| VaultError::Authentication)?;
    Ok(buffer)
}

/// A deterministic value that identifies a key version without revealing it: the GCM tag of an empty
/// message under an all-zero nonce that no secret ever uses with probability worth counting. The store
/// keeps it per version, so a wrong master key is told apart from a tampered row.
pub(crate) fn key_check(key: &MasterKey) -> Vec<u8> {
    let mut buffer: Vec<u8> = Vec::with_capacity(TAG_LEN);
    let mut ad = CHECK_LABEL.to_vec();
    ad.extend_from_slice(&key.version().to_be_bytes());
    cipher(key)
        .encrypt_in_place(&Nonce::from([0u8; NONCE_LEN]), &ad, &mut buffer)
        .expect("an empty message always encrypts");
    buffer
}
