//! The vault on its own: sealing, tamper detection, keyrings and key files.

use base64::Engine as _;
use codestep::connector::Secret;
use codestep::vault::{Keyring, MasterKey, Sealed, SecretContext, Vault, VaultError};

const SECRET: &str = "sk_test_vault_0123456789abcdef";

fn key(version: u32, fill: u8) -> MasterKey {
    MasterKey::from_bytes(version, [fill; 32])
}

fn vault(keys: Vec<MasterKey>) -> Vault {
    Vault::new(Keyring::new(keys).expect("keyring"))
}

fn ctx<'a>(ws: &'a str, conn: &'a str) -> SecretContext<'a> {
    SecretContext {
        workspace_id: ws,
        connector_id: conn,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that opening fails, and that the error message does not leak the secret.
fn assert_open_fails(v: &Vault, c: &SecretContext<'_>, sealed: &Sealed) -> VaultError {
    match v.open(c, sealed) {
        Ok(_) => panic!("opening a tampered secret succeeded"),
        Err(e) => {
            assert!(
                !e.to_string().contains(SECRET),
                "error message leaks the secret"
            );
            e
        }
    }
}

#[test]
fn seal_open_roundtrip_with_fresh_nonces() {
    let v = vault(vec![key(1, 7)]);
    let c = ctx("ws1", "c1");
    let mut nonces = std::collections::HashSet::new();
    for _ in 0..500 {
        let sealed = v.seal(&c, &Secret::new(SECRET.into())).unwrap();
        assert_eq!(sealed.nonce.len(), 12);
        assert_eq!(sealed.key_version, 1);
        assert_eq!(sealed.ciphertext.len(), SECRET.len() + 16);
        assert!(!contains(&sealed.ciphertext, SECRET.as_bytes()));
        assert!(nonces.insert(sealed.nonce.clone()), "a nonce repeated");
        assert_eq!(v.open(&c, &sealed).unwrap().expose(), SECRET);
    }
}

#[test]
fn every_bit_flip_is_detected() {
    let v = vault(vec![key(1, 7)]);
    let c = ctx("ws1", "c1");
    let sealed = v.seal(&c, &Secret::new(SECRET.into())).unwrap();
    for byte in 0..sealed.ciphertext.len() {
        for bit in 0..8 {
            let mut t = sealed.clone();
            t.ciphertext[byte] ^= 1 << bit;
            let e = assert_open_fails(&v, &c, &t);
            assert!(matches!(e, VaultError::Authentication), "{e}");
        }
    }
    for byte in 0..sealed.nonce.len() {
        let mut t = sealed.clone();
        t.nonce[byte] ^= 0x80;
        assert!(matches!(
            assert_open_fails(&v, &c, &t),
            VaultError::Authentication
        ));
    }
}

#[test]
fn truncation_is_detected_and_says_so() {
    let v = vault(vec![key(1, 7)]);
    let c = ctx("ws1", "c1");
    let sealed = v.seal(&c, &Secret::new(SECRET.into())).unwrap();
    for len in 0..sealed.ciphertext.len() {
        let mut t = sealed.clone();
        t.ciphertext.truncate(len);
        let e = assert_open_fails(&v, &c, &t);
        if len < 16 {
            assert!(matches!(e, VaultError::Malformed(_)), "{e}");
            assert!(e.to_string().contains("truncated"), "{e}");
        } else {
            assert!(matches!(e, VaultError::Authentication), "{e}");
        }
    }
    let mut t = sealed.clone();
    t.nonce.truncate(8);
    let e = assert_open_fails(&v, &c, &t);
    assert!(e.to_string().contains("nonce"), "{e}");
    // Appending bytes is caught too.
    let mut t = sealed;
    t.ciphertext.push(0);
    assert!(matches!(
        assert_open_fails(&v, &c, &t),
        VaultError::Authentication
    ));
}

#[test]
fn associated_data_binds_workspace_connector_and_version() {
    let v = vault(vec![key(1, 7), key(2, 9)]);
    let sealed = v
        .seal(&ctx("ws1", "c1"), &Secret::new(SECRET.into()))
        .unwrap();
    assert_eq!(sealed.key_version, 2);
    // Moved to another connector, another workspace, or both.
    for c in [
        ctx("ws1", "c2"),
        ctx("ws2", "c1"),
        ctx("ws2", "c2"),
        ctx("ws1c", "1"),
        ctx("", "ws1c1"),
    ] {
        assert!(matches!(
            assert_open_fails(&v, &c, &sealed),
            VaultError::Authentication
        ));
    }
    // Relabelled with another (existing) key version.
    let mut t = sealed.clone();
    t.key_version = 1;
    assert!(matches!(
        assert_open_fails(&v, &ctx("ws1", "c1"), &t),
        VaultError::Authentication
    ));
    // Relabelled with a version that is not loaded.
    let mut t = sealed;
    t.key_version = 5;
    let e = assert_open_fails(&v, &ctx("ws1", "c1"), &t);
    assert!(
        matches!(e, VaultError::UnknownKeyVersion { version: 5, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("version 5"), "{e}");
}

#[test]
fn wrong_master_key_fails_and_key_checks_differ() {
    let right = vault(vec![key(1, 7)]);
    let wrong = vault(vec![key(1, 8)]);
    let c = ctx("ws1", "c1");
    let sealed = right.seal(&c, &Secret::new(SECRET.into())).unwrap();
    assert!(matches!(
        assert_open_fails(&wrong, &c, &sealed),
        VaultError::Authentication
    ));
    assert_ne!(right.key_check(1).unwrap(), wrong.key_check(1).unwrap());
    assert_eq!(
        right.key_check(1).unwrap(),
        vault(vec![key(1, 7)]).key_check(1).unwrap()
    );
}

#[test]
fn old_versions_still_open_after_a_new_one_is_added() {
    let v1 = vault(vec![key(1, 7)]);
    let c = ctx("ws1", "c1");
    let old = v1.seal(&c, &Secret::new(SECRET.into())).unwrap();
    let v2 = vault(vec![key(2, 9), key(1, 7)]);
    assert_eq!(v2.current_version(), 2);
    assert_eq!(v2.open(&c, &old).unwrap().expose(), SECRET);
    let new = v2.reseal(&c, &old).unwrap();
    assert_eq!(new.key_version, 2);
    assert_ne!(new.nonce, old.nonce);
    assert_eq!(v2.open(&c, &new).unwrap().expose(), SECRET);
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn keyring_text_formats() {
    let k1 = b64(&[1u8; 32]);
    let k2 = b64(&[2u8; 32]);
    let ring = Keyring::parse(&k1, "CODESTEP_MASTER_KEY").unwrap();
    assert_eq!(ring.versions(), vec![1]);
    let ring = Keyring::parse(&format!("2:{k2}, 1:{k1}"), "x").unwrap();
    assert_eq!(ring.versions(), vec![1, 2]);
    assert_eq!(ring.current().version(), 2);
    let ring = Keyring::parse(&format!("# comment\n1:{k1}\n\n3:{k2}\n"), "x").unwrap();
    assert_eq!(ring.versions(), vec![1, 3]);

    let cases: Vec<(String, &str)> = vec![
        (String::new(), "holds no key"),
        ("not base64!".into(), "not valid base64"),
        (b64(&[1u8; 16]), "exactly 32 bytes (it decodes to 16 bytes)"),
        (format!("1:{k1},1:{k2}"), "version 1 is given twice"),
        (format!("0:{k1}"), "VERSION:BASE64"),
        (format!("x:{k1}"), "VERSION:BASE64"),
        (
            format!("{k1},2:{k2}"),
            "every entry must look like VERSION:BASE64",
        ),
    ];
    for (text, expected) in cases {
        let err = Keyring::parse(&text, "CODESTEP_MASTER_KEY")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(expected),
            "{err:?} should contain {expected:?}"
        );
        assert!(err.contains("CODESTEP_MASTER_KEY"), "{err}");
        assert!(
            !err.contains(&k1) && !err.contains(&k2),
            "error quotes key material"
        );
    }
}

#[test]
fn debug_output_is_redacted() {
    let k = MasterKey::from_bytes(1, [0xAB; 32]);
    let raw = b64(&[0xAB; 32]);
    let ring = Keyring::new(vec![k.clone()]).unwrap();
    let v = Vault::new(ring.clone());
    for text in [format!("{k:?}"), format!("{ring:?}"), format!("{v:?}")] {
        assert!(!text.contains(&raw), "{text}");
        assert!(!text.to_lowercase().contains("abab"), "{text}");
    }
    assert!(format!("{k:?}").contains("[redacted]"));
    let secret = Secret::new(SECRET.into());
    assert_eq!(format!("{secret:?}"), "[redacted]");
    let sealed = v.seal(&ctx("w", "c"), &secret).unwrap();
    assert!(!format!("{sealed:?}").contains(SECRET));
}

#[test]
fn key_file_is_created_private_once_and_reused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/master.key");
    let missing = Vault::load_file(&path, false).unwrap_err().to_string();
    assert!(
        missing.contains("CODESTEP_MASTER_KEY") && missing.contains("does not exist"),
        "{missing}"
    );

    let first = Vault::load_file(&path, true).unwrap();
    assert_eq!(first.created_key_file.as_deref(), Some(path.as_path()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let c = ctx("ws", "c");
    let sealed = first.vault.seal(&c, &Secret::new(SECRET.into())).unwrap();

    let second = Vault::load_file(&path, true).unwrap();
    assert!(second.created_key_file.is_none());
    assert_eq!(second.vault.open(&c, &sealed).unwrap().expose(), SECRET);

    // Adding a version keeps the old one, in the file too.
    let rotated = second.vault.add_key_version().unwrap();
    assert_eq!(rotated.versions(), vec![1, 2]);
    let reread = Vault::load_file(&path, false).unwrap().vault;
    assert_eq!(reread.versions(), vec![1, 2]);
    assert_eq!(reread.open(&c, &sealed).unwrap().expose(), SECRET);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(names, vec!["master.key".to_string()]);
}

#[test]
fn concurrent_key_file_creation_yields_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let p = path.clone();
            std::thread::spawn(move || Vault::load_file(&p, true).unwrap())
        })
        .collect();
    let loaded: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        loaded
            .iter()
            .filter(|l| l.created_key_file.is_some())
            .count(),
        1
    );
    let check = loaded[0].vault.key_check(1).unwrap();
    assert!(loaded
        .iter()
        .all(|l| l.vault.key_check(1).unwrap() == check));
}

#[test]
fn env_keys_cannot_be_extended_in_place() {
    let v = Vault::with_source(
        Keyring::new(vec![key(1, 1)]).unwrap(),
        codestep::vault::KeySource::Env,
    );
    let err = v.add_key_version().unwrap_err().to_string();
    assert!(
        err.contains("CODESTEP_MASTER_KEY") && err.contains("VERSION:BASE64"),
        "{err}"
    );
}
