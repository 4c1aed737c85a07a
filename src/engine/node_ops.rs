//! Ops behind the Node compatibility modules in `js/node/`: module loading for `require()`, hashes,
//! HMAC, RS256/ES256 signatures and zlib. Like `ops.rs`, this file is compiled into `build.rs` too, and
//! every argument is validated here. None of these ops holds a secret: keys are whatever the step itself
//! passed in.

use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::Arc;

use deno_core::{op2, v8, OpState};
use deno_error::JsErrorBox;

/// A step's modules, as `require()` sees them (the engine puts one into `OpState` per step).
pub trait StepModules {
    /// `b:name`, or `c:`/`j:`/`e:` and the id of a CommonJS, JSON or ES module.
    fn require(&self, referrer: &str, specifier: &str) -> Result<String, String>;
    fn source(&self, id: &str) -> Option<String>;
    /// The environment variables the operator passes to steps.
    fn env(&self) -> Vec<(String, String)>;
}

fn modules(state: &OpState) -> Result<Rc<dyn StepModules>, JsErrorBox> {
    state
        .try_borrow::<Rc<dyn StepModules>>()
        .cloned()
        .ok_or_else(|| JsErrorBox::generic("no modules"))
}

#[op2]
#[string]
pub fn op_codestep_require(
    state: &mut OpState,
    #[string] referrer: String,
    #[string] specifier: String,
) -> Result<String, JsErrorBox> {
    modules(state)?
        .require(&referrer, &specifier)
        .map_err(|e| JsErrorBox::new("Error", e))
}

#[op2]
#[string]
pub fn op_codestep_module_source(
    state: &mut OpState,
    #[string] id: String,
) -> Result<String, JsErrorBox> {
    modules(state)?
        .source(&id)
        .ok_or_else(|| JsErrorBox::new("Error", format!("no module {id}")))
}

#[op2]
#[serde]
pub fn op_codestep_env(state: &mut OpState) -> Vec<(String, String)> {
    modules(state).map(|m| m.env()).unwrap_or_default()
}

/// `codestep/VERSION`: `navigator.userAgent`, and the `User-Agent` a step's fetch sends by default.
pub const USER_AGENT: &str = concat!("codestep/", env!("CARGO_PKG_VERSION"));

#[op2]
#[string]
pub fn op_codestep_user_agent() -> &'static str {
    USER_AGENT
}

fn bad(message: impl Into<String>) -> JsErrorBox {
    JsErrorBox::type_error(message.into())
}

/// A digest of `data` by a lowercase Node name.
fn digest(alg: &str, data: &[u8]) -> Result<Vec<u8>, JsErrorBox> {
    use sha2::Digest;
    Ok(match alg {
        "md5" => md5::Md5::digest(data).to_vec(),
        "sha1" => sha1::Sha1::digest(data).to_vec(),
        "sha224" => sha2::Sha224::digest(data).to_vec(),
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha384" => sha2::Sha384::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        _ => return Err(bad(format!("Digest method not supported: {alg}"))),
    })
}

#[op2]
#[buffer]
pub fn op_codestep_hash(
    #[string] alg: String,
    #[buffer] data: &[u8],
) -> Result<Vec<u8>, JsErrorBox> {
    digest(&alg, data)
}

#[op2]
#[buffer]
pub fn op_codestep_hmac(
    #[string] alg: String,
    #[buffer] key: &[u8],
    #[buffer] data: &[u8],
) -> Result<Vec<u8>, JsErrorBox> {
    use hmac::{KeyInit, Mac};
    macro_rules! mac {
        ($d:ty) => {{
            let mut m = hmac::Hmac::<$d>::new_from_slice(key).map_err(|_| bad("Invalid key"))?;
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }};
    }
    Ok(match alg.as_str() {
        "md5" => mac!(md5::Md5),
        "sha1" => mac!(sha1::Sha1),
        "sha224" => mac!(sha2::Sha224),
        "sha256" => mac!(sha2::Sha256),
        "sha384" => mac!(sha2::Sha384),
        "sha512" => mac!(sha2::Sha512),
        _ => return Err(bad(format!("Invalid digest: {alg}"))),
    })
}

enum PrivateKey {
    Rsa(rsa::PrivateKey),
    P256(p256::ecdsa::SigningKey),
}

enum PublicKey {
    Rsa(rsa::PublicKey),
    P256(p256::ecdsa::VerifyingKey),
}

/// Largest RSA modulus the Node layer signs with, in bits (as `rsa` caps public keys and Web Crypto caps
/// generated ones). The `rsa` crate reads private keys of any size, and a private-key operation costs about
/// the cube of the modulus size in native code that the CPU limit cannot interrupt: a crafted 32768-bit key
/// held an in-process step thread for 20 s past a 500 ms CPU limit.
pub const MAX_RSA_BITS: usize = 8192;

/// Longest PEM text a key may be: an 8192-bit RSA private key is about 6.5 KB. Parsing a private key does
/// big-number work proportional to its size before its modulus can be checked.
pub const MAX_KEY_PEM: usize = 16 << 10;

fn rsa_private(key: rsa::PrivateKey) -> Result<PrivateKey, JsErrorBox> {
    use rsa::traits::PublicKeyParts;
    if key.size() * 8 > MAX_RSA_BITS {
        return Err(bad(format!(
            "RSA keys of more than {MAX_RSA_BITS} bits are not supported"
        )));
    }
    Ok(PrivateKey::Rsa(key))
}

fn private_key(pem: &str) -> Result<PrivateKey, JsErrorBox> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    if pem.len() > MAX_KEY_PEM {
        return Err(bad(format!(
            "the key is longer than {MAX_KEY_PEM} bytes of PEM text"
        )));
    }
    if pem.contains("BEGIN RSA PRIVATE KEY") {
        return rsa::PrivateKey::from_pkcs1_pem(pem)
            .map_err(|_| bad("the RSA private key could not be read"))
            .and_then(rsa_private);
    }
    if pem.contains("BEGIN EC PRIVATE KEY") {
        use p256::elliptic_curve::SecretKey;
        return SecretKey::<p256::NistP256>::from_sec1_pem(pem)
            .map(|k| PrivateKey::P256(k.into()))
            .map_err(|_| {
                bad("the EC private key could not be read (only P-256 keys are supported)")
            });
    }
    if pem.contains("BEGIN PRIVATE KEY") {
        if let Ok(k) = rsa::PrivateKey::from_pkcs8_pem(pem) {
            return rsa_private(k);
        }
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::P256(k));
        }
        return Err(bad(
            "the private key could not be read (RSA and P-256 keys are supported)",
        ));
    }
    if pem.contains("ENCRYPTED PRIVATE KEY") {
        return Err(bad("encrypted private keys are not supported"));
    }
    Err(bad("the private key must be PEM text"))
}

fn public_key(pem: &str) -> Result<PublicKey, JsErrorBox> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    if pem.len() > MAX_KEY_PEM {
        return Err(bad(format!(
            "the key is longer than {MAX_KEY_PEM} bytes of PEM text"
        )));
    }
    if pem.contains("PRIVATE KEY") {
        return Ok(match private_key(pem)? {
            PrivateKey::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
        });
    }
    if pem.contains("BEGIN RSA PUBLIC KEY") {
        return rsa::PublicKey::from_pkcs1_pem(pem)
            .map(PublicKey::Rsa)
            .map_err(|_| bad("the RSA public key could not be read"));
    }
    if pem.contains("BEGIN PUBLIC KEY") {
        if let Ok(k) = rsa::PublicKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Rsa(k));
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::P256(k));
        }
        return Err(bad(
            "the public key could not be read (RSA and P-256 keys are supported)",
        ));
    }
    Err(bad("the public key must be PEM text"))
}

macro_rules! with_rsa_digest {
    ($alg:expr, $d:ident => $body:expr) => {
        match $alg {
            "sha1" => {
                type $d = sha1::Sha1;
                $body
            }
            "sha256" => {
                type $d = sha2::Sha256;
                $body
            }
            "sha384" => {
                type $d = sha2::Sha384;
                $body
            }
            "sha512" => {
                type $d = sha2::Sha512;
                $body
            }
            other => return Err(bad(format!("Digest method not supported for RSA: {other}"))),
        }
    };
}

/// Signs with RSASSA-PKCS1-v1_5 (RSA keys) or ECDSA P-256 (EC keys); `ieee` asks for an ECDSA signature as
/// r||s instead of DER.
#[op2]
#[buffer]
pub fn op_codestep_sign(
    #[string] alg: String,
    #[string] pem: String,
    #[buffer] data: &[u8],
    ieee: bool,
) -> Result<Vec<u8>, JsErrorBox> {
    use rsa::signature::{SignatureEncoding, Signer};
    match private_key(&pem)? {
        PrivateKey::Rsa(key) => with_rsa_digest!(alg.as_str(), D => {
            let signer = rsa::pkcs1v15::SigningKey::<D>::new(key);
            let sig: rsa::pkcs1v15::Signature = signer.try_sign(data).map_err(|_| bad("signing failed"))?;
            Ok(sig.to_vec())
        }),
        PrivateKey::P256(key) => {
            if alg != "sha256" {
                return Err(bad("P-256 keys sign with SHA-256 only here"));
            }
            let sig: p256::ecdsa::Signature =
                key.try_sign(data).map_err(|_| bad("signing failed"))?;
            Ok(if ieee {
                sig.to_bytes().to_vec()
            } else {
                sig.to_der().as_bytes().to_vec()
            })
        }
    }
}

#[op2(fast)]
pub fn op_codestep_verify(
    #[string] alg: String,
    #[string] pem: String,
    #[buffer] data: &[u8],
    #[buffer] signature: &[u8],
    ieee: bool,
) -> Result<bool, JsErrorBox> {
    use rsa::signature::Verifier;
    match public_key(&pem)? {
        PublicKey::Rsa(key) => with_rsa_digest!(alg.as_str(), D => {
            let verifier = rsa::pkcs1v15::VerifyingKey::<D>::new(key);
            let Ok(sig) = rsa::pkcs1v15::Signature::try_from(signature) else { return Ok(false) };
            Ok(verifier.verify(data, &sig).is_ok())
        }),
        PublicKey::P256(key) => {
            if alg != "sha256" {
                return Err(bad("P-256 keys verify with SHA-256 only here"));
            }
            let sig = if ieee {
                p256::ecdsa::Signature::from_slice(signature)
            } else {
                p256::ecdsa::Signature::from_der(signature)
            };
            let Ok(sig) = sig else { return Ok(false) };
            Ok(key.verify(data, &sig).is_ok())
        }
    }
}

/// Most bytes zlib may produce in one call: decompressing a small input must not exhaust the worker.
pub const MAX_ZLIB_OUTPUT: usize = 64 << 20;

/// Native memory the ops make for a step, counted against its memory limit. The engine puts the step's
/// ArrayBuffer budget into `OpState` as a [`SharedBudget`]; where there is none (building the snapshot,
/// preloading packages) nothing is counted.
pub trait NativeBudget: Send + Sync {
    fn reserve(&self, len: usize) -> bool;
    fn release(&self, len: usize);
}

pub type SharedBudget = Arc<dyn NativeBudget>;

/// zlib output, counted against the step's budget while it grows and until V8 frees the ArrayBuffer it
/// becomes (a plain `Vec` return would be memory outside every limit: in-process, a 64 MiB step kept
/// 720 MiB of inflated buffers).
struct Charged {
    bytes: Vec<u8>,
    counted: usize,
    budget: Option<SharedBudget>,
    over_budget: bool,
}

impl Charged {
    fn new(budget: Option<SharedBudget>) -> Self {
        Charged {
            bytes: Vec::new(),
            counted: 0,
            budget,
            over_budget: false,
        }
    }
}

impl Write for Charged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let needed = self.bytes.len().saturating_add(buf.len());
        if needed > self.counted {
            let grown = self
                .counted
                .saturating_mul(2)
                .clamp(64 << 10, MAX_ZLIB_OUTPUT + 1);
            let want = needed.max(grown);
            if let Some(budget) = &self.budget {
                if !budget.reserve(want - self.counted) {
                    self.over_budget = true;
                    return Err(std::io::Error::other("over the memory limit"));
                }
            }
            self.counted = want;
            self.bytes.reserve_exact(want - self.bytes.len());
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl AsMut<[u8]> for Charged {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

impl Drop for Charged {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.release(self.counted);
        }
    }
}

/// 0 gzip, 1 gunzip, 2 deflate (zlib), 3 inflate (zlib), 4 deflateRaw, 5 inflateRaw, 6 unzip (gzip or zlib).
#[op2]
pub fn op_codestep_zlib<'s>(
    state: &mut OpState,
    scope: &mut v8::PinScope<'s, '_>,
    #[smi] mode: u32,
    #[buffer] data: &[u8],
    #[smi] level: i32,
) -> Result<v8::Local<'s, v8::Uint8Array>, JsErrorBox> {
    use flate2::{read, write, Compression};
    let level = if (0..=9).contains(&level) {
        Compression::new(level as u32)
    } else {
        Compression::default()
    };
    let mut out = Charged::new(state.try_borrow::<SharedBudget>().cloned());
    let result = match mode {
        0 => {
            let mut e = write::GzEncoder::new(&mut out, level);
            e.write_all(data).and_then(|_| e.finish().map(drop))
        }
        2 => {
            let mut e = write::ZlibEncoder::new(&mut out, level);
            e.write_all(data).and_then(|_| e.finish().map(drop))
        }
        4 => {
            let mut e = write::DeflateEncoder::new(&mut out, level);
            e.write_all(data).and_then(|_| e.finish().map(drop))
        }
        1 | 3 | 5 | 6 => {
            let reader: Box<dyn Read> = match mode {
                1 => Box::new(read::MultiGzDecoder::new(data)),
                3 => Box::new(read::ZlibDecoder::new(data)),
                5 => Box::new(read::DeflateDecoder::new(data)),
                _ if data.first() == Some(&0x1f) => Box::new(read::MultiGzDecoder::new(data)),
                _ => Box::new(read::ZlibDecoder::new(data)),
            };
            let mut limited = reader.take(MAX_ZLIB_OUTPUT as u64 + 1);
            std::io::copy(&mut limited, &mut out).map(drop)
        }
        _ => return Err(bad("unknown zlib mode")),
    };
    if out.over_budget {
        return Err(JsErrorBox::range_error(
            "the zlib output does not fit in the step's memory limit",
        ));
    }
    if let Err(e) = result {
        let msg = e.to_string();
        return Err(if matches!(mode, 0 | 2 | 4) {
            bad(msg)
        } else {
            JsErrorBox::new(
                "Error",
                if msg.is_empty() {
                    "invalid compressed data".to_string()
                } else {
                    msg
                },
            )
        });
    }
    if out.bytes.len() > MAX_ZLIB_OUTPUT {
        return Err(JsErrorBox::range_error(format!(
            "the decompressed data is over {MAX_ZLIB_OUTPUT} bytes"
        )));
    }
    let len = out.bytes.len();
    let store = v8::ArrayBuffer::new_backing_store_from_bytes(Box::new(out)).make_shared();
    let buffer = v8::ArrayBuffer::with_backing_store(scope, &store);
    v8::Uint8Array::new(scope, buffer, 0, len).ok_or_else(|| bad("could not make the zlib output"))
}
