//! Web Crypto (`crypto.subtle`, deno_crypto) against two references: published test vectors (RFCs and
//! NIST), and Node's own Web Crypto, which is an independent implementation (OpenSSL). The interop
//! test runs one script in both: each side makes keys, signatures, ciphertexts and derived bits, and
//! checks what the other side made.

use std::process::Command;
use std::time::{Duration, Instant};

use codestep::engine::{ErrorKind, Executor, ExecutorConfig, StepRequest};
use serde_json::{json, Value};

use crate::node_compat::{executor, output};
use crate::support::process_mode;

/// Runs an ES module in Node with `input` on stdin (as JSON) and returns what it prints (as JSON).
fn node(script: &str, input: &Value) -> Value {
    let mut node = Command::new("node");
    node.args(["--input-type=module", "-e", script]);
    crate::support::reference(
        node,
        input,
        "node, the reference implementation (it comes with npm)",
    )
}

#[test]
fn web_crypto_matches_published_test_vectors() {
    let v = output(
        r#"export default async () => {
        const s = crypto.subtle;
        const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
        const unhex = (h) => new Uint8Array(h.match(/../g).map((x) => parseInt(x, 16)));
        const te = new TextEncoder();
        const out = {};
        out.sha256 = hex(await s.digest("SHA-256", te.encode("abc")));
        out.sha384 = hex(await s.digest({ name: "SHA-384" }, te.encode("abc")));
        // RFC 4231, test case 2.
        const hk = await s.importKey("raw", te.encode("Jefe"), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
        out.hmac = hex(await s.sign("HMAC", hk, te.encode("what do ya want for nothing?")));
        // RFC 6070, c = 2.
        const pk = await s.importKey("raw", te.encode("password"), "PBKDF2", false, ["deriveBits"]);
        out.pbkdf2 = hex(await s.deriveBits({ name: "PBKDF2", hash: "SHA-1", salt: te.encode("salt"), iterations: 2 }, pk, 160));
        // RFC 5869, test case 1.
        const ikm = await s.importKey("raw", new Uint8Array(22).fill(0x0b), "HKDF", false, ["deriveBits"]);
        out.hkdf = hex(await s.deriveBits({ name: "HKDF", hash: "SHA-256", salt: unhex("000102030405060708090a0b0c"), info: unhex("f0f1f2f3f4f5f6f7f8f9") }, ikm, 42 * 8));
        // NIST SP 800-38A, F.2.1 (CBC) and F.5.1 (CTR), first block.
        const k128 = unhex("2b7e151628aed2a6abf7158809cf4f3c");
        const p1 = unhex("6bc1bee22e409f96e93d7e117393172a");
        const cbc = await s.importKey("raw", k128, "AES-CBC", false, ["encrypt"]);
        out.cbc = hex(await s.encrypt({ name: "AES-CBC", iv: unhex("000102030405060708090a0b0c0d0e0f") }, cbc, p1)).slice(0, 32);
        const ctr = await s.importKey("raw", k128, "AES-CTR", false, ["encrypt"]);
        out.ctr = hex(await s.encrypt({ name: "AES-CTR", counter: unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"), length: 64 }, ctr, p1));
        // The GCM specification, test case 3.
        const gcm = await s.importKey("raw", unhex("feffe9928665731c6d6a8f9467308308"), "AES-GCM", false, ["encrypt"]);
        out.gcm = hex(await s.encrypt({ name: "AES-GCM", iv: unhex("cafebabefacedbaddecaf888") }, gcm, unhex(
          "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")));
        // RFC 3394, 4.1.
        const kek = await s.importKey("raw", unhex("000102030405060708090a0b0c0d0e0f"), "AES-KW", false, ["wrapKey"]);
        const inner = await s.importKey("raw", unhex("00112233445566778899aabbccddeeff"), "AES-GCM", true, ["encrypt"]);
        out.kw = hex(await s.wrapKey("raw", inner, kek, "AES-KW"));
        // RFC 8032, 7.1, test 1: the empty message.
        const edPriv = await s.importKey("pkcs8", unhex("302e020100300506032b657004220420" +
          "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"), "Ed25519", true, ["sign"]);
        out.ed25519 = hex(await s.sign("Ed25519", edPriv, new Uint8Array(0)));
        const edPub = await s.importKey("raw", unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"), "Ed25519", true, ["verify"]);
        out.ed25519Verified = await s.verify("Ed25519", edPub, unhex(out.ed25519), new Uint8Array(0));
        // RFC 6979, A.2.5: P-256, SHA-256, "sample" (ECDSA signs with a random k; the known one verifies).
        const ecPub = await s.importKey("raw", unhex("04" +
          "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6" +
          "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299"), { name: "ECDSA", namedCurve: "P-256" }, true, ["verify"]);
        const rs = unhex("efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716" +
          "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8");
        out.ecdsaKnown = await s.verify({ name: "ECDSA", hash: "SHA-256" }, ecPub, rs, te.encode("sample"));
        out.ecdsaOther = await s.verify({ name: "ECDSA", hash: "SHA-256" }, ecPub, rs, te.encode("samplf"));
        out.jwk = await s.exportKey("jwk", ecPub);
        // The same objects through node:crypto.
        const nc = await import("node:crypto");
        out.nodeSame = nc.webcrypto === globalThis.crypto && nc.subtle === crypto.subtle;
        out.nodePbkdf2 = await new Promise((ok, no) =>
          nc.pbkdf2("password", "salt", 2, 20, "sha1", (e, k) => (e ? no(e) : ok(k.toString("hex")))));
        out.types = [typeof CryptoKey, typeof SubtleCrypto, crypto instanceof Crypto, String(edPub), edPub.algorithm.name, edPub.usages];
        return out;
        };"#,
        json!(null),
    );
    assert_eq!(
        v["sha256"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(v["sha384"], "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7");
    assert_eq!(
        v["hmac"],
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(v["pbkdf2"], "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957");
    assert_eq!(v["nodePbkdf2"], "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957");
    assert_eq!(
        v["hkdf"],
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    );
    assert_eq!(v["cbc"], "7649abac8119b246cee98e9b12e9197d");
    assert_eq!(v["ctr"], "874d6191b620e3261bef6864990db6ce");
    assert_eq!(
        v["gcm"],
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa05\
         1ba30b396a0aac973d58e091473f5985\
         4d5c2af327cd64a62cf35abd2ba6fab4"
    );
    assert_eq!(v["kw"], "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5");
    assert_eq!(
        v["ed25519"],
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b\
         d25bf5f0595bbe24655141438e7a100b"
    );
    assert_eq!(v["ed25519Verified"], true);
    assert_eq!(v["ecdsaKnown"], true);
    assert_eq!(v["ecdsaOther"], false);
    assert_eq!(v["jwk"]["kty"], "EC");
    assert_eq!(v["jwk"]["crv"], "P-256");
    assert_eq!(v["jwk"]["x"], "YP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Y");
    assert_eq!(v["nodeSame"], true);
    assert_eq!(
        v["types"],
        json!([
            "function",
            "function",
            true,
            "[object CryptoKey]",
            "Ed25519",
            ["verify"]
        ])
    );
}

/// Run by both codestep and Node: `make(keys)` makes artifacts with this side's Web Crypto;
/// `check(theirs, keys)` checks the other side's and returns what failed (and how many checks ran).
const INTEROP: &str = r#"
const s = crypto.subtle;
const te = new TextEncoder();
const MSG = te.encode("codestep and node agree on this message");
const b64 = (buf) => { let t = ""; for (const x of new Uint8Array(buf)) t += String.fromCharCode(x); return btoa(t); };
const unb64 = (t) => Uint8Array.from(atob(t), (c) => c.charCodeAt(0));
const same = (a, b) => b64(a) === b64(b);

async function rsaKeys(keys, name, hash, usePriv, usePub) {
  const alg = { name, hash };
  return {
    priv: await s.importKey("pkcs8", unb64(keys.pkcs8), alg, true, [usePriv]),
    pub: await s.importKey("spki", unb64(keys.spki), alg, true, [usePub]),
  };
}

async function make(keys) {
  const a = {};
  const pkcs1 = await rsaKeys(keys, "RSASSA-PKCS1-v1_5", "SHA-256", "sign", "verify");
  a.pkcs1 = b64(await s.sign("RSASSA-PKCS1-v1_5", pkcs1.priv, MSG));
  const pss = await rsaKeys(keys, "RSA-PSS", "SHA-384", "sign", "verify");
  a.pss = b64(await s.sign({ name: "RSA-PSS", saltLength: 48 }, pss.priv, MSG));
  const oaep = await rsaKeys(keys, "RSA-OAEP", "SHA-256", "decrypt", "encrypt");
  a.oaep = b64(await s.encrypt({ name: "RSA-OAEP", label: te.encode("label") }, oaep.pub, MSG));
  a.rsaJwk = await s.exportKey("jwk", pkcs1.pub);
  for (const [curve, hash] of [["P-256", "SHA-256"], ["P-384", "SHA-384"]]) {
    const k = await s.generateKey({ name: "ECDSA", namedCurve: curve }, true, ["sign", "verify"]);
    a[`ecdsa${curve}`] = {
      sig: b64(await s.sign({ name: "ECDSA", hash }, k.privateKey, MSG)),
      spki: b64(await s.exportKey("spki", k.publicKey)),
      jwk: await s.exportKey("jwk", k.publicKey),
      pkcs8: b64(await s.exportKey("pkcs8", k.privateKey)),
    };
    const k1 = await s.generateKey({ name: "ECDH", namedCurve: curve }, true, ["deriveBits"]);
    const k2 = await s.generateKey({ name: "ECDH", namedCurve: curve }, true, ["deriveBits"]);
    a[`ecdh${curve}`] = {
      pub1: b64(await s.exportKey("raw", k1.publicKey)),
      priv2: b64(await s.exportKey("pkcs8", k2.privateKey)),
      priv2Jwk: await s.exportKey("jwk", k2.privateKey),
      bits: b64(await s.deriveBits({ name: "ECDH", public: k2.publicKey }, k1.privateKey, curve === "P-256" ? 256 : 384)),
    };
  }
  const ed = await s.generateKey("Ed25519", true, ["sign", "verify"]);
  a.ed25519 = {
    sig: b64(await s.sign("Ed25519", ed.privateKey, MSG)),
    raw: b64(await s.exportKey("raw", ed.publicKey)),
    jwk: await s.exportKey("jwk", ed.privateKey),
    spki: b64(await s.exportKey("spki", ed.publicKey)),
  };
  const hmac = await s.generateKey({ name: "HMAC", hash: "SHA-512" }, true, ["sign", "verify"]);
  a.hmac = { jwk: await s.exportKey("jwk", hmac), mac: b64(await s.sign("HMAC", hmac, MSG)) };
  const gcm = await s.generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt", "decrypt"]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const gcmParams = { name: "AES-GCM", iv, additionalData: te.encode("aad"), tagLength: 128 };
  a.gcm = { raw: b64(await s.exportKey("raw", gcm)), iv: b64(iv), ct: b64(await s.encrypt(gcmParams, gcm, MSG)) };
  const cbc = await s.generateKey({ name: "AES-CBC", length: 128 }, true, ["encrypt", "decrypt"]);
  const cbcIv = crypto.getRandomValues(new Uint8Array(16));
  a.cbc = { jwk: await s.exportKey("jwk", cbc), iv: b64(cbcIv), ct: b64(await s.encrypt({ name: "AES-CBC", iv: cbcIv }, cbc, MSG)) };
  const ctr = await s.generateKey({ name: "AES-CTR", length: 256 }, true, ["encrypt", "decrypt"]);
  const counter = crypto.getRandomValues(new Uint8Array(16));
  a.ctr = { raw: b64(await s.exportKey("raw", ctr)), counter: b64(counter), ct: b64(await s.encrypt({ name: "AES-CTR", counter, length: 64 }, ctr, MSG)) };
  const kw = await s.generateKey({ name: "AES-KW", length: 256 }, true, ["wrapKey", "unwrapKey"]);
  a.kw = { raw: b64(await s.exportKey("raw", kw)), wrapped: b64(await s.wrapKey("raw", gcm, kw, "AES-KW")) };
  const ikm = await s.importKey("raw", te.encode("input keying material"), "HKDF", false, ["deriveBits", "deriveKey"]);
  a.hkdf = b64(await s.deriveBits({ name: "HKDF", hash: "SHA-384", salt: te.encode("salt"), info: te.encode("info") }, ikm, 256));
  const derived = await s.deriveKey({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: te.encode("key") }, ikm, { name: "HMAC", hash: "SHA-256", length: 256 }, true, ["sign"]);
  a.hkdfKey = b64(await s.exportKey("raw", derived));
  const pw = await s.importKey("raw", te.encode("correct horse"), "PBKDF2", false, ["deriveBits"]);
  a.pbkdf2 = b64(await s.deriveBits({ name: "PBKDF2", hash: "SHA-512", salt: te.encode("pepper"), iterations: 1000 }, pw, 512));
  a.digest = b64(await s.digest("SHA-512", MSG));
  return a;
}

async function check(t, keys) {
  const failed = [];
  let checks = 0;
  const ok = (name, cond) => { checks++; if (cond !== true) failed.push(name); };
  const step = async (name, fn) => {
    try { await fn(); } catch (e) { failed.push(`${name}: ${e && e.name}: ${e && e.message}`); }
  };
  const mine = await make(keys);
  await step("pkcs1", async () => {
    const k = await rsaKeys(keys, "RSASSA-PKCS1-v1_5", "SHA-256", "sign", "verify");
    ok("pkcs1 verifies", await s.verify("RSASSA-PKCS1-v1_5", k.pub, unb64(t.pkcs1), MSG));
    ok("pkcs1 is deterministic: the same bytes on both sides", t.pkcs1 === mine.pkcs1);
    ok("pkcs1 refuses another message", !(await s.verify("RSASSA-PKCS1-v1_5", k.pub, unb64(t.pkcs1), te.encode("x"))));
    const fromJwk = await s.importKey("jwk", t.rsaJwk, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, true, ["verify"]);
    ok("rsa jwk", await s.verify("RSASSA-PKCS1-v1_5", fromJwk, unb64(t.pkcs1), MSG));
  });
  await step("pss", async () => {
    const k = await rsaKeys(keys, "RSA-PSS", "SHA-384", "sign", "verify");
    ok("pss verifies", await s.verify({ name: "RSA-PSS", saltLength: 48 }, k.pub, unb64(t.pss), MSG));
  });
  await step("oaep", async () => {
    const k = await rsaKeys(keys, "RSA-OAEP", "SHA-256", "decrypt", "encrypt");
    ok("oaep decrypts", same(await s.decrypt({ name: "RSA-OAEP", label: te.encode("label") }, k.priv, unb64(t.oaep)), MSG));
  });
  for (const [curve, hash, bits] of [["P-256", "SHA-256", 256], ["P-384", "SHA-384", 384]]) {
    await step(`ecdsa ${curve}`, async () => {
      const e = t[`ecdsa${curve}`];
      const alg = { name: "ECDSA", namedCurve: curve };
      const spki = await s.importKey("spki", unb64(e.spki), alg, true, ["verify"]);
      const jwk = await s.importKey("jwk", e.jwk, alg, true, ["verify"]);
      ok(`ecdsa ${curve} spki`, await s.verify({ name: "ECDSA", hash }, spki, unb64(e.sig), MSG));
      ok(`ecdsa ${curve} jwk`, await s.verify({ name: "ECDSA", hash }, jwk, unb64(e.sig), MSG));
      const priv = await s.importKey("pkcs8", unb64(e.pkcs8), alg, true, ["sign"]);
      ok(`ecdsa ${curve} pkcs8 signs`, await s.verify({ name: "ECDSA", hash }, spki, await s.sign({ name: "ECDSA", hash }, priv, MSG), MSG));
    });
    await step(`ecdh ${curve}`, async () => {
      const e = t[`ecdh${curve}`];
      const alg = { name: "ECDH", namedCurve: curve };
      const pub1 = await s.importKey("raw", unb64(e.pub1), alg, true, []);
      const priv2 = await s.importKey("pkcs8", unb64(e.priv2), alg, true, ["deriveBits"]);
      const priv2j = await s.importKey("jwk", e.priv2Jwk, alg, true, ["deriveBits"]);
      ok(`ecdh ${curve} pkcs8`, same(await s.deriveBits({ name: "ECDH", public: pub1 }, priv2, bits), unb64(e.bits)));
      ok(`ecdh ${curve} jwk`, same(await s.deriveBits({ name: "ECDH", public: pub1 }, priv2j, bits), unb64(e.bits)));
    });
  }
  await step("ed25519", async () => {
    const raw = await s.importKey("raw", unb64(t.ed25519.raw), "Ed25519", true, ["verify"]);
    const spki = await s.importKey("spki", unb64(t.ed25519.spki), "Ed25519", true, ["verify"]);
    const priv = await s.importKey("jwk", t.ed25519.jwk, "Ed25519", true, ["sign"]);
    ok("ed25519 raw", await s.verify("Ed25519", raw, unb64(t.ed25519.sig), MSG));
    ok("ed25519 spki", await s.verify("Ed25519", spki, unb64(t.ed25519.sig), MSG));
    ok("ed25519 jwk is deterministic", same(await s.sign("Ed25519", priv, MSG), unb64(t.ed25519.sig)));
  });
  await step("hmac", async () => {
    const k = await s.importKey("jwk", t.hmac.jwk, { name: "HMAC", hash: "SHA-512" }, false, ["verify"]);
    ok("hmac", await s.verify("HMAC", k, unb64(t.hmac.mac), MSG));
  });
  await step("aes", async () => {
    const gcm = await s.importKey("raw", unb64(t.gcm.raw), "AES-GCM", false, ["decrypt"]);
    const gcmParams = { name: "AES-GCM", iv: unb64(t.gcm.iv), additionalData: te.encode("aad") };
    ok("aes-gcm", same(await s.decrypt(gcmParams, gcm, unb64(t.gcm.ct)), MSG));
    let tampered = false;
    const bad = unb64(t.gcm.ct); bad[0] ^= 1;
    try { await s.decrypt(gcmParams, gcm, bad); } catch (e) { tampered = e.name === "OperationError"; }
    ok("aes-gcm refuses a changed ciphertext", tampered);
    const cbc = await s.importKey("jwk", t.cbc.jwk, "AES-CBC", false, ["decrypt"]);
    ok("aes-cbc", same(await s.decrypt({ name: "AES-CBC", iv: unb64(t.cbc.iv) }, cbc, unb64(t.cbc.ct)), MSG));
    const ctr = await s.importKey("raw", unb64(t.ctr.raw), "AES-CTR", false, ["decrypt"]);
    ok("aes-ctr", same(await s.decrypt({ name: "AES-CTR", counter: unb64(t.ctr.counter), length: 64 }, ctr, unb64(t.ctr.ct)), MSG));
    const kw = await s.importKey("raw", unb64(t.kw.raw), "AES-KW", false, ["unwrapKey"]);
    const unwrapped = await s.unwrapKey("raw", unb64(t.kw.wrapped), kw, "AES-KW", "AES-GCM", false, ["decrypt"]);
    ok("aes-kw", same(await s.decrypt(gcmParams, unwrapped, unb64(t.gcm.ct)), MSG));
  });
  ok("hkdf", t.hkdf === mine.hkdf);
  ok("hkdf deriveKey", t.hkdfKey === mine.hkdfKey);
  ok("pbkdf2", t.pbkdf2 === mine.pbkdf2);
  ok("digest", t.digest === mine.digest);
  return { failed, checks, mine };
}
"#;

#[test]
fn web_crypto_interoperates_with_nodes_in_both_directions() {
    // Node makes the RSA key (codestep's debug build makes RSA keys slowly), both sides use it.
    let keys = node(
        r#"
        const k = await crypto.subtle.generateKey({ name: "RSASSA-PKCS1-v1_5", modulusLength: 2048,
          publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, true, ["sign", "verify"]);
        const b64 = (b) => Buffer.from(b).toString("base64");
        console.log(JSON.stringify({
          pkcs8: b64(await crypto.subtle.exportKey("pkcs8", k.privateKey)),
          spki: b64(await crypto.subtle.exportKey("spki", k.publicKey)),
        }));
        "#,
        &json!(null),
    );
    let from_node = node(
        &format!(
            "{INTEROP}\nconst input = JSON.parse(require_stdin());\nconsole.log(JSON.stringify(await make(input)));"
        )
        .replace(
            "require_stdin()",
            "await new Promise((ok) => { let d = \"\"; process.stdin.on(\"data\", (c) => d += c); process.stdin.on(\"end\", () => ok(d)); })",
        ),
        &keys,
    );
    let ours = output(
        &format!(
            "{INTEROP}\nexport default async ({{ keys, theirs }}) => {{ const r = await check(theirs, keys); return {{ failed: r.failed, checks: r.checks, made: r.mine }}; }};"
        ),
        json!({"keys": keys, "theirs": from_node}),
    );
    assert_eq!(ours["failed"], json!([]), "codestep checking Node's work");
    assert!(ours["checks"].as_u64().unwrap() >= 25, "{}", ours["checks"]);
    let theirs = node(
        &format!(
            "{INTEROP}\nconst input = JSON.parse(await new Promise((ok) => {{ let d = \"\"; process.stdin.on(\"data\", (c) => d += c); process.stdin.on(\"end\", () => ok(d)); }}));\nconst r = await check(input.made, input.keys);\nconsole.log(JSON.stringify({{ failed: r.failed, checks: r.checks }}));"
        ),
        &json!({"keys": keys, "made": ours["made"]}),
    );
    assert_eq!(theirs["failed"], json!([]), "Node checking codestep's work");
    assert_eq!(theirs["checks"], ours["checks"]);
}

#[test]
fn web_crypto_refuses_bad_input_with_the_standard_errors() {
    let v = output(
        r#"export default async () => {
          const s = crypto.subtle;
          const name = async (p) => { try { await p; return "resolved"; } catch (e) { return e.name; } };
          const k = await s.generateKey({ name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
          return {
            unknown: await name(s.digest("SHA-3", new Uint8Array(1))),
            usage: await name(s.verify("HMAC", k, new Uint8Array(32), new Uint8Array(1))),
            extract: await name(s.exportKey("raw", k)),
            badKey: await name(s.importKey("raw", new Uint8Array(7), "AES-GCM", false, ["encrypt"])),
            missingArgument: await name(s.digest()),
            illegal: (() => { try { new CryptoKey(); return "constructed"; } catch (e) { return e.constructor.name; } })(),
            floats: (() => { try { crypto.getRandomValues(new Float32Array(1)); return "filled"; } catch (e) { return e instanceof DOMException && e.name; } })(),
            tooMany: (() => { try { crypto.getRandomValues(new Uint8Array(65537)); return "filled"; } catch (e) { return e instanceof DOMException && e.name; } })(),
            gcm: await (async () => {
              const g = await s.generateKey({ name: "AES-GCM", length: 128 }, false, ["encrypt", "decrypt"]);
              const iv = new Uint8Array(12);
              const ct = new Uint8Array(await s.encrypt({ name: "AES-GCM", iv }, g, new Uint8Array(5)));
              ct[0] ^= 1;
              return name(s.decrypt({ name: "AES-GCM", iv }, g, ct));
            })(),
          };
        };"#,
        json!(null),
    );
    assert_eq!(v["unknown"], "NotSupportedError");
    assert_eq!(v["usage"], "InvalidAccessError");
    assert_eq!(v["extract"], "InvalidAccessError");
    assert_eq!(v["badKey"], "DataError");
    // A rejection, not a throw, as every SubtleCrypto method returns a promise.
    assert_eq!(v["missingArgument"], "TypeError");
    assert_eq!(v["illegal"], "TypeError");
    assert_eq!(v["floats"], "TypeMismatchError");
    assert_eq!(v["tooMany"], "QuotaExceededError");
    assert_eq!(v["gcm"], "OperationError");
}

/// Web Crypto runs its algorithms on a blocking thread of the worker, not on the step's thread. That
/// CPU time is the step's all the same: the supervisor counts the worker's whole process.
#[test]
fn web_crypto_work_off_the_step_thread_counts_against_its_cpu_time() {
    let mut req = StepRequest::new(
        r#"export default async () => {
          const s = crypto.subtle;
          const pw = await s.importKey("raw", new TextEncoder().encode("pw"), "PBKDF2", false, ["deriveBits"]);
          // Several jobs at once, each seconds of work (the most iterations codestep allows).
          await Promise.all([1, 2, 3, 4].map((i) =>
            s.deriveBits({ name: "PBKDF2", hash: "SHA-512", salt: new Uint8Array([i]), iterations: 10000000 }, pw, 512)));
          return "finished";
        };"#,
        json!(null),
    );
    req.limits.cpu_time_ms = Some(400);
    req.limits.timeout_ms = Some(30_000);
    let started = Instant::now();
    let r = executor().run_blocking(req);
    let took = started.elapsed();
    assert!(!r.ok, "{:?}", r.output_value());
    let e = r.error.expect("an error");
    assert_eq!(e.kind, ErrorKind::Timeout, "{}", e.message);
    assert!(e.message.contains("CPU time"), "{}", e.message);
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    // The executor goes on: the next step runs.
    assert_eq!(output("export default () => 1", json!(null)), json!(1));
}

/// deno_crypto keeps the brand symbols of the isolate that last loaded Web Crypto in thread-local
/// state. A worker runs one isolate after another on one thread, so nothing a step can reach may make a
/// key before its own isolate has registered its symbols, and the internal constructors of deno_crypto's
/// classes are not left for steps to call.
#[test]
fn web_crypto_in_one_step_leaves_nothing_for_the_next_in_the_same_worker() {
    for exec in both_modes() {
        let step = r#"export default async ({ first }) => {
          if (first) {
            await crypto.subtle.generateKey({ name: "AES-GCM", length: 128 }, true, ["encrypt"]);
            return "used";
          }
          const internals = [typeof CryptoKey.importSync, typeof CryptoKey.exportNodeMaterial, typeof Crypto.create,
                             typeof Crypto.registerSymbols, typeof SubtleCrypto.create, typeof CryptoKey.fromCloneData];
          // Clone data as a real AES key's, the first key this isolate makes.
          const data = { type: "CryptoKey", keyType: "secret", extractable: true, usages: ["encrypt"],
                         algorithm: { name: "AES-GCM", length: 128 }, keyData: { type: "secret", data: new Uint8Array(16) } };
          const k = structuredClone({ [Symbol.for("Deno.core.hostObject")]: () => data });
          return {
            internals,
            clone: [String(k), k.algorithm.name, k instanceof CryptoKey],
            usable: (await crypto.subtle.exportKey("raw", k)).byteLength,
          };
        };"#;
        for _ in 0..3 {
            let r = exec.run_blocking(StepRequest::new(step, json!({ "first": true })));
            assert!(r.ok, "{:?}", r.error);
            let r = exec.run_blocking(StepRequest::new(step, json!({ "first": false })));
            assert!(r.ok, "{:?}", r.error);
            assert_eq!(
                r.output_value().unwrap(),
                json!({
                    "internals": ["undefined", "undefined", "undefined", "undefined", "undefined", "undefined"],
                    "clone": ["[object CryptoKey]", "AES-GCM", true],
                    "usable": 16,
                })
            );
        }
    }
}

/// Executors of both modes, each with one worker, so that a step that crashes the engine is followed
/// by one that must still run on it.
/// Runs `step` in both modes and checks its output, then that the executor still runs a step.
fn in_both_modes_outputs(step: &str, expected: Value) {
    for exec in both_modes() {
        let r = exec.run_blocking(StepRequest::new(step, json!(null)));
        assert!(r.ok, "{:?}", r.error);
        assert_eq!(r.output_value().unwrap(), expected);
        let r = exec.run_blocking(StepRequest::new("export default () => 1", json!(null)));
        assert_eq!(r.output_value(), Some(json!(1)), "{:?}", r.error);
    }
}

fn both_modes() -> Vec<Executor> {
    [process_mode(), codestep::engine::Mode::InProcess]
        .into_iter()
        .map(|mode| {
            Executor::new(ExecutorConfig {
                workers: 1,
                mode,
                ..Default::default()
            })
            .expect("executor")
        })
        .collect()
}

/// Any object can claim to be a host object (`Symbol.for("Deno.core.hostObject")`) and say what is
/// cloned for it. deno_core's `structuredClone` then panicked inside V8 on a `type` nothing had
/// registered (the worker, or in process the whole server, aborted), and ran the step's getters where
/// V8 forbids JavaScript (a fatal V8 error). Each of these is now a `DataCloneError`, and real host
/// objects still clone.
#[test]
fn structured_clone_of_crafted_host_objects_is_refused_not_a_crash() {
    let step = r#"export default async () => {
      const B = Symbol.for("Deno.core.hostObject");
      const name = (f) => { try { f(); return "cloned"; } catch (e) { return e.name; } };
      const out = {
        unregistered: name(() => structuredClone({ [B]: () => ({ type: "nope" }) })),
        primitive: name(() => structuredClone({ [B]: () => "text" })),
        noType: name(() => structuredClone({ [B]: () => ({}) })),
        objectType: name(() => structuredClone({ [B]: () => ({ type: { toString() { return "DOMException"; } } }) })),
        brandOnEveryObject: name(() => { Object.prototype[B] = () => ({ type: "nope" }); try { structuredClone({}); } finally { delete Object.prototype[B]; } }),
      };
      Object.defineProperty(Object.prototype, "type", { configurable: true, get() { return "nope"; } });
      out.typeFromAGetter = name(() => structuredClone({ [B]: () => ({}) }));
      delete Object.prototype.type;
      // Response.clone() of a stream tees it, cloning each chunk for the second branch.
      const teed = new Response(new ReadableStream({ start(c) { c.enqueue({ [B]: () => ({ type: "nope" }) }); c.close(); } })).clone();
      out.teedChunk = await teed.text().then(() => "read", (e) => e.name);
      out.real = [structuredClone(new DOMException("m", "SyntaxError")).name, structuredClone(new Blob(["abc"])).size,
                  structuredClone({ a: [1, new Map([[1, 2]])] }).a[1].get(1)];
      return out;
    };"#;
    let refused = "DataCloneError";
    in_both_modes_outputs(
        step,
        json!({
            "unregistered": refused, "primitive": refused, "noType": refused, "objectType": refused,
            "brandOnEveryObject": refused, "typeFromAGetter": refused, "teedChunk": refused,
            "real": ["SyntaxError", 3, 2],
        }),
    );
}

/// Clone data is what a step writes, and deno_crypto's Rust side trusted its shape: key data of the
/// wrong form for the algorithm reached an `unreachable!()`, which in a job was an `Error` naming a
/// panic and in `getPublicKey` (run synchronously, inside V8) aborted the worker, or in process the
/// server. Such data is refused when cloned; real keys of every family still clone and work.
#[test]
fn crypto_key_clone_data_must_be_a_real_keys() {
    let step = r#"export default async () => {
      const s = crypto.subtle;
      const B = Symbol.for("Deno.core.hostObject");
      const clone = (algorithm, keyType, keyData, usages) => structuredClone({ [B]: () => (
        { type: "CryptoKey", keyType, extractable: true, usages, algorithm, keyData }) });
      const seeded = { privateKey: new Uint8Array(32) };
      const name = async (f) => { try { await f(); return "done"; } catch (e) { return e.name; } };
      const msg = new Uint8Array([1, 2, 3]);
      const out = {
        getPublicKey: await name(() => s.getPublicKey(clone({ name: "Ed25519" }, "private", seeded, ["sign"]), ["verify"])),
        exportKey: await name(() => s.exportKey("raw", clone({ name: "AES-GCM", length: 128 }, "secret", seeded, ["encrypt"]))),
        sign: await name(() => s.sign("HMAC", clone({ name: "HMAC", hash: "SHA-256" }, "secret", seeded, ["sign"]), msg)),
        ecFromSecret: await name(() => s.exportKey("spki", clone({ name: "ECDSA", namedCurve: "P-256" }, "public", { type: "secret", data: new Uint8Array(65) }, ["verify"]))),
        wrongType: await name(() => clone({ name: "AES-GCM", length: 128 }, "private", { type: "secret", data: new Uint8Array(16) }, [])),
        unknownAlgorithm: await name(() => clone({ name: "AES-XTS" }, "secret", { type: "secret", data: new Uint8Array(16) }, [])),
        crypto: [typeof CryptoKey.fromCloneData],
      };
      const real = {};
      const k = await s.generateKey({ name: "AES-GCM", length: 128 }, false, ["encrypt", "decrypt"]);
      const iv = new Uint8Array(12);
      real.aes = (await s.decrypt({ name: "AES-GCM", iv }, structuredClone(k), await s.encrypt({ name: "AES-GCM", iv }, k, msg))).byteLength;
      const ec = await s.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, ["sign", "verify"]);
      real.ec = await s.verify({ name: "ECDSA", hash: "SHA-384" }, structuredClone(ec.publicKey),
        await s.sign({ name: "ECDSA", hash: "SHA-384" }, structuredClone(ec.privateKey), msg), msg);
      const ed = await s.generateKey("Ed25519", true, ["sign", "verify"]);
      real.ed = String(await s.getPublicKey(structuredClone(ed.privateKey), ["verify"]));
      const kem = await s.generateKey("ML-KEM-768", true, ["encapsulateBits", "decapsulateBits"]);
      const e = await s.encapsulateBits("ML-KEM-768", structuredClone(kem.publicKey));
      real.mlkem = (await s.decapsulateBits("ML-KEM-768", structuredClone(kem.privateKey), e.ciphertext)).byteLength;
      const h = await s.generateKey({ name: "HMAC", hash: "SHA-384" }, true, ["sign"]);
      real.hmac = [structuredClone(h).algorithm.hash.name, structuredClone(h).algorithm.length];
      out.real = real;
      return out;
    };"#;
    let refused = "DataCloneError";
    in_both_modes_outputs(
        step,
        json!({
            "getPublicKey": refused, "exportKey": refused, "sign": refused, "ecFromSecret": refused,
            "wrongType": refused, "unknownAlgorithm": refused, "crypto": ["undefined"],
            "real": { "aes": 3, "ec": true, "ed": "[object CryptoKey]", "mlkem": 32, "hmac": ["SHA-384", 1024] },
        }),
    );
}

/// Sizes and work factors a step chooses are capped (`WEB_CRYPTO_CAPS` in js/00_globals.js): deno_crypto
/// takes any, and does the work on a blocking thread with native memory, which in-process mode would
/// not count against the step. Each dictionary member is read once, so a getter cannot pass the check
/// with one value and reach deno_crypto with another.
#[test]
fn web_crypto_refuses_work_past_its_caps() {
    for exec in both_modes() {
        let started = Instant::now();
        let r = exec.run_blocking(StepRequest::new(
            r#"export default async () => {
              const s = crypto.subtle;
              const te = new TextEncoder();
              const refusal = async (p) => { try { await p; return "accepted"; } catch (e) { return `${e.name}: ${e.message}`; } };
              const pw = await s.importKey("raw", te.encode("pw"), "PBKDF2", false, ["deriveBits"]);
              const pbkdf2 = (over) => ({ name: "PBKDF2", hash: "SHA-256", salt: te.encode("s"), iterations: 1000, ...over });
              let reads = 0;
              const sneaky = pbkdf2({});
              Object.defineProperty(sneaky, "iterations", { get: () => (reads++ ? 2000000000 : 1000), enumerable: true });
              return {
                length: await refusal(s.deriveBits(pbkdf2({}), pw, 2 ** 32 - 8)),
                iterations: await refusal(s.deriveBits(pbkdf2({ iterations: 1e9 }), pw, 256)),
                rsa: await refusal(s.generateKey({ name: "RSA-PSS", modulusLength: 1 << 20, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, false, ["sign"])),
                hmac: await refusal(s.generateKey({ name: "HMAC", hash: "SHA-256", length: 1 << 30 }, false, ["sign"])),
                sneaky: (await s.deriveBits(sneaky, pw, 256)).byteLength,
                reads,
                fine: (await s.deriveBits(pbkdf2({}), pw, 512)).byteLength,
              };
            };"#,
            json!(null),
        ));
        assert!(r.ok, "{:?}", r.error);
        let v = r.output_value().unwrap();
        assert_eq!(
            v["length"],
            "NotSupportedError: length is 4294967288; codestep allows at most 65536"
        );
        assert_eq!(
            v["iterations"],
            "NotSupportedError: iterations is 1000000000; codestep allows at most 10000000"
        );
        assert_eq!(
            v["rsa"],
            "NotSupportedError: modulusLength is 1048576; codestep allows at most 8192"
        );
        assert_eq!(
            v["hmac"],
            "NotSupportedError: length is 1073741824; codestep allows at most 65536"
        );
        assert_eq!(v["sneaky"], 32);
        assert_eq!(v["reads"], 1);
        assert_eq!(v["fine"], 64);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }
}
