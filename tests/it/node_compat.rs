//! The Node compatibility layer (`js/node/`), against Node's documented behaviour: published test
//! vectors (SHA-2 of "abc", HMAC from RFC 4231), examples from Node's docs (path, util, url,
//! querystring), and signatures checked by a reference, Node itself (`node`, which `npm` brings).

use std::io::Write;
use std::process::Command;
use std::sync::OnceLock;

use codestep::engine::{
    ErrorKind, Executor, ExecutorConfig, LimitOverrides, StepRequest, StepResult,
};
use serde_json::{json, Value};

use crate::support::process_mode;

pub(crate) fn executor() -> &'static Executor {
    static EXEC: OnceLock<Executor> = OnceLock::new();
    EXEC.get_or_init(|| {
        Executor::new(ExecutorConfig {
            workers: 2,
            mode: process_mode(),
            ..Default::default()
        })
        .expect("executor")
    })
}

pub(crate) fn run(code: &str, input: Value) -> StepResult {
    executor().run_blocking(StepRequest::new(code, input))
}

pub(crate) fn output(code: &str, input: Value) -> Value {
    let r = run(code, input);
    assert!(r.ok, "{:?}", r.error);
    r.output_value().unwrap()
}

/// Runs a script in Node with `input` on stdin (as JSON) and returns what it prints (as JSON).
fn node(script: &str, input: &Value) -> Value {
    let mut node = Command::new("node");
    node.args(["-e", script]);
    crate::support::reference(
        node,
        input,
        "node, the reference implementation (it comes with npm)",
    )
}

#[test]
fn hashes_and_hmac_match_published_vectors() {
    let v = output(
        r#"
        import { createHash, createHmac, hash } from "node:crypto";
        const key = Buffer.alloc(20, 0x0b);
        export default () => ({
          md5: createHash("md5").update("").digest("hex"),
          sha1: createHash("sha1").update("abc").digest("hex"),
          sha256: createHash("sha256").update("a").update("bc").digest("hex"),
          sha384: createHash("SHA384").update(Buffer.from("abc")).digest("hex"),
          sha512: createHash("sha512").update("abc").digest("base64"),
          oneShot: hash("sha256", "abc"),
          hmac1: createHmac("sha256", key).update("Hi There").digest("hex"),
          hmac1_512: createHmac("sha512", key).update("Hi There").digest("hex"),
          hmac2: createHmac("sha256", "Jefe").update("what do ya want for nothing?").digest("hex"),
        });
        "#,
        Value::Null,
    );
    assert_eq!(
        v,
        json!({
            "md5": "d41d8cd98f00b204e9800998ecf8427e",
            "sha1": "a9993e364706816aba3e25717850c26c9cd0d89d",
            "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "sha384": "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
            "sha512": "3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==",
            "oneShot": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            // RFC 4231, test cases 1 and 2.
            "hmac1": "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            "hmac1_512": "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            "hmac2": "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        })
    );
}

#[test]
fn rs256_and_es256_jwts_verify_in_node_and_nodes_verify_here() {
    // Node makes the keys and signs a reference JWT of each kind.
    let keys = node(
        r#"
        const c = require("crypto");
        const b64u = (b) => Buffer.from(b).toString("base64url");
        const rsa = c.generateKeyPairSync("rsa", { modulusLength: 2048 });
        const ec = c.generateKeyPairSync("ec", { namedCurve: "P-256" });
        const input = b64u('{"alg":"RS256"}') + "." + b64u('{"sub":"node"}');
        console.log(JSON.stringify({
          rsaPkcs8: rsa.privateKey.export({ type: "pkcs8", format: "pem" }),
          rsaPkcs1: rsa.privateKey.export({ type: "pkcs1", format: "pem" }),
          rsaPub: rsa.publicKey.export({ type: "spki", format: "pem" }),
          ecPriv: ec.privateKey.export({ type: "pkcs8", format: "pem" }),
          ecSec1: ec.privateKey.export({ type: "sec1", format: "pem" }),
          ecPub: ec.publicKey.export({ type: "spki", format: "pem" }),
          nodeInput: input,
          nodeRs256: b64u(c.sign("sha256", Buffer.from(input), rsa.privateKey)),
          nodeEs256: b64u(c.sign("sha256", Buffer.from(input), { key: ec.privateKey, dsaEncoding: "ieee-p1363" })),
        }));
        "#,
        &Value::Null,
    );
    let v = output(
        r#"
        import crypto from "crypto";
        const b64u = (b) => Buffer.from(b).toString("base64url");
        export default (k) => {
          const input = b64u('{"alg":"RS256","typ":"JWT"}') + "." + b64u('{"sub":"codestep"}');
          const rs = crypto.createSign("RSA-SHA256").update(input).sign(k.rsaPkcs8, "base64url");
          const rs1 = crypto.createSign("SHA256").update(input).sign(k.rsaPkcs1, "base64url");
          const es = crypto.sign("sha256", Buffer.from(input), { key: k.ecPriv, dsaEncoding: "ieee-p1363" }).toString("base64url");
          const esDer = crypto.createSign("sha256").update(input).sign(crypto.createPrivateKey(k.ecSec1));
          return {
            input, rs, rs1, es, esDer: esDer.toString("base64"),
            // Node's signatures, verified here.
            nodeRs: crypto.createVerify("RSA-SHA256").update(k.nodeInput).verify(k.rsaPub, k.nodeRs256, "base64url"),
            nodeEs: crypto.verify("sha256", Buffer.from(k.nodeInput), { key: k.ecPub, dsaEncoding: "ieee-p1363" }, Buffer.from(k.nodeEs256, "base64url")),
            tampered: crypto.createVerify("RSA-SHA256").update(k.nodeInput + "x").verify(k.rsaPub, k.nodeRs256, "base64url"),
            ownEsDer: crypto.createVerify("sha256").update(input).verify(k.ecPub, esDer),
          };
        };
        "#,
        keys.clone(),
    );
    assert_eq!(
        (&v["nodeRs"], &v["nodeEs"], &v["tampered"], &v["ownEsDer"]),
        (&json!(true), &json!(true), &json!(false), &json!(true))
    );
    assert_eq!(
        v["rs"], v["rs1"],
        "RS256 is deterministic: both key forms sign alike"
    );
    // Node, the reference, verifies what the step signed.
    let verified = node(
        r#"
        const c = require("crypto");
        let d = ""; process.stdin.on("data", (x) => (d += x)).on("end", () => {
          const { v, k } = JSON.parse(d);
          console.log(JSON.stringify({
            rs: c.verify("sha256", Buffer.from(v.input), k.rsaPub, Buffer.from(v.rs, "base64url")),
            es: c.verify("sha256", Buffer.from(v.input), { key: k.ecPub, dsaEncoding: "ieee-p1363" }, Buffer.from(v.es, "base64url")),
            esDer: c.verify("sha256", Buffer.from(v.input), k.ecPub, Buffer.from(v.esDer, "base64")),
          }));
        });
        "#,
        &json!({ "v": v, "k": keys }),
    );
    assert_eq!(verified, json!({ "rs": true, "es": true, "esDer": true }));
}

#[test]
fn random_and_timing_safe_equal() {
    let v = output(
        r#"
        import { randomBytes, randomUUID, randomInt, timingSafeEqual, webcrypto } from "node:crypto";
        export default () => {
          let lengthError;
          try { timingSafeEqual(Buffer.from("a"), Buffer.from("ab")); } catch (e) { lengthError = e.code; }
          const ints = Array.from({ length: 200 }, () => randomInt(3, 7));
          return {
            len: randomBytes(32).length, differ: randomBytes(16).equals(randomBytes(16)) === false,
            uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(randomUUID()),
            inRange: ints.every((i) => i >= 3 && i < 7), allSeen: new Set(ints).size === 4,
            same: timingSafeEqual(Buffer.from("abc"), Buffer.from("abc")),
            notSame: timingSafeEqual(Buffer.from("abc"), Buffer.from("abd")),
            lengthError, webcrypto: webcrypto === globalThis.crypto,
          };
        };
        "#,
        Value::Null,
    );
    assert_eq!(
        v,
        json!({ "len": 32, "differ": true, "uuid": true, "inRange": true, "allSeen": true,
                "same": true, "notSame": false, "lengthError": "ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH",
                "webcrypto": true })
    );
}

#[test]
fn buffer_encodings_round_trip() {
    let v = output(
        r#"
        export default () => {
          const text = "héllo wörld ✓ 😀";
          const b = Buffer.from(text);
          const out = {};
          for (const enc of ["utf8", "hex", "base64", "base64url", "latin1", "utf16le"]) {
            out[enc] = Buffer.from(b.toString(enc), enc).equals(b) || enc === "latin1";
          }
          const num = Buffer.alloc(8);
          num.writeUInt32BE(0xdeadbeef, 0);
          num.writeInt16LE(-2, 4);
          return {
            ...out,
            hex: Buffer.from("hello").toString("hex"),
            b64: Buffer.from("hello world").toString("base64"),
            b64url: Buffer.from([0xfb, 0xff]).toString("base64url"),
            lenient: Buffer.from("aGVs bG8=\n", "base64").toString(),
            utf8Length: Buffer.byteLength(text), strLength: text.length,
            concat: Buffer.concat([Buffer.from("ab"), Buffer.from("cd")]).toString(),
            slice: Buffer.from("abcdef").subarray(1, 3).toString(),
            json: JSON.stringify(Buffer.from([1, 2])),
            read: [num.readUInt32BE(0), num.readInt16LE(4)],
            isBuffer: Buffer.isBuffer(b) && !Buffer.isBuffer(new Uint8Array(2)),
            compare: Buffer.compare(Buffer.from("a"), Buffer.from("b")),
            indexOf: Buffer.from("hello world").indexOf("world"),
            fill: Buffer.alloc(5, "ab").toString(),
            inspect: Buffer.from("hi")[Symbol.for("nodejs.util.inspect.custom")](),
            ranges: ((r) => [r.toString("latin1", 0, 1e12), r.toString("utf8", -5, 2), r.toString("utf8", 2.7, 3.9),
                             r.toString("utf8", 3, 1), r.toString("utf8", 10), r.toString("utf8", NaN, "3"),
                             r.toString(undefined, 1)])(Buffer.from("abcd")),
          };
        };
        "#,
        Value::Null,
    );
    assert_eq!(
        v,
        json!({
            "utf8": true, "hex": "68656c6c6f", "base64": true, "base64url": true, "latin1": true, "utf16le": true,
            "b64": "aGVsbG8gd29ybGQ=", "b64url": "-_8", "lenient": "hello",
            "utf8Length": 22, "strLength": 16, "concat": "abcd", "slice": "bc", "json": "{\"type\":\"Buffer\",\"data\":[1,2]}",
            "read": [3735928559u32, -2], "isBuffer": true, "compare": -1, "indexOf": 6, "fill": "ababa",
            "inspect": "<Buffer 68 69>",
            // What Node prints for the same calls.
            "ranges": ["abcd", "ab", "c", "", "", "abc", "bcd"],
        })
    );
}

#[test]
fn events_order_once_and_errors() {
    let v = output(
        r#"
        import EventEmitter, { once } from "node:events";
        export default async () => {
          const e = new EventEmitter();
          const seen = [];
          e.on("x", (a) => seen.push("first " + a));
          e.prependListener("x", (a) => seen.push("prepended " + a));
          e.once("x", (a) => seen.push("once " + a));
          e.emit("x", 1);
          e.emit("x", 2);
          let unhandled;
          try { e.emit("error", new Error("bad")); } catch (err) { unhandled = err.message; }
          setTimeout(() => e.emit("later", 42), 1);
          const [later] = await once(e, "later");
          return { seen, count: e.listenerCount("x"), unhandled, later, names: e.eventNames() };
        };
        "#,
        Value::Null,
    );
    assert_eq!(
        v,
        json!({
            "seen": ["prepended 1", "first 1", "once 1", "prepended 2", "first 2"],
            "count": 2, "unhandled": "bad", "later": 42, "names": ["x"],
        })
    );
}

#[test]
fn util_path_url_querystring_and_string_decoder_follow_nodes_docs() {
    let v = output(
        r#"
        import util from "node:util";
        import path from "path";
        import url from "url";
        import qs from "querystring";
        import { StringDecoder } from "string_decoder";
        export default async () => {
          const sleep = util.promisify((ms, cb) => setTimeout(() => cb(null, ms), ms));
          const d = new StringDecoder("utf8");
          const euro = Buffer.from("€");
          const parsed = url.parse("https://user:pw@example.com:8080/p/a/t/h?query=string#hash", true);
          function Base() {} function Derived() {} util.inherits(Derived, Base);
          return {
            inspect: util.inspect({ a: 1, b: "x", c: [1, 2] }),
            format: util.format("%s is %d years and %j", "Bob", 42, { a: 1 }),
            formatExtra: util.format("a", "b", 3),
            promisified: await sleep(1),
            inherits: new Derived() instanceof Base,
            types: [util.types.isPromise(Promise.resolve()), util.types.isDate(new Date()), util.types.isRegExp(/x/)],
            join: path.join("/foo", "bar", "baz/asdf", "quux", ".."),
            resolve: [path.resolve("/foo/bar", "./baz"), path.resolve("/foo/bar", "/tmp/file/")],
            relative: path.relative("/data/orandea/test/aaa", "/data/orandea/impl/bbb"),
            normalize: path.normalize("/foo/bar//baz/asdf/quux/.."),
            basename: path.basename("/foo/bar/baz/asdf/quux.html", ".html"),
            extname: [path.extname("index.coffee.md"), path.extname("index."), path.extname("index"), path.extname(".index")],
            dirname: path.dirname("/foo/bar/baz/asdf/quux"),
            parse: path.parse("/home/user/dir/file.txt"),
            url: [parsed.protocol, parsed.auth, parsed.hostname, parsed.port, parsed.pathname, parsed.query.query, parsed.hash],
            format2: url.format({ protocol: "https", hostname: "example.com", pathname: "/some/path", query: { page: 1, format: "json" } }),
            fileURL: (() => { try { url.fileURLToPath("file:///etc/passwd"); return "read"; } catch (e) { return "refused"; } })(),
            qs: qs.stringify({ foo: "bar", baz: ["qux", "quux"], corge: "" }),
            qsParse: { ...qs.parse("foo=bar&abc=xyz&abc=123&sp=a+b") },
            decoder: d.write(euro.subarray(0, 1)) + "|" + d.write(euro.subarray(1)) + "|" + d.end(),
          };
        };
        "#,
        Value::Null,
    );
    assert_eq!(
        v,
        json!({
            "inspect": "{ a: 1, b: \"x\", c: [ 1, 2 ] }",
            "format": "Bob is 42 years and {\"a\":1}",
            "formatExtra": "a b 3",
            "promisified": 1,
            "inherits": true,
            "types": [true, true, true],
            "join": "/foo/bar/baz/asdf",
            "resolve": ["/foo/bar/baz", "/tmp/file"],
            "relative": "../../impl/bbb",
            "normalize": "/foo/bar/baz/asdf",
            "basename": "quux",
            "extname": [".md", ".", "", ""],
            "dirname": "/foo/bar/baz/asdf",
            "parse": { "root": "/", "dir": "/home/user/dir", "base": "file.txt", "ext": ".txt", "name": "file" },
            "url": ["https:", "user:pw", "example.com", "8080", "/p/a/t/h", "string", "#hash"],
            "format2": "https://example.com/some/path?page=1&format=json",
            "fileURL": "refused",
            "qs": "foo=bar&baz=qux&baz=quux&corge=",
            "qsParse": { "foo": "bar", "abc": ["xyz", "123"], "sp": "a b" },
            "decoder": "|€|",
        })
    );
}

#[test]
fn zlib_round_trips_and_reads_what_flate2_wrote() {
    use std::io::Read;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"compressed by Rust").unwrap();
    let from_rust = base64_std(&gz.finish().unwrap());
    let v = output(
        r#"
        import zlib from "node:zlib";
        import { pipeline } from "node:stream/promises";
        import { Readable, Writable } from "node:stream";
        export default async ({ fromRust }) => {
          const text = "hello ".repeat(100);
          const chunks = [];
          await pipeline(Readable.from([Buffer.from(text)]), zlib.createGzip(), zlib.createGunzip(),
            new Writable({ write(c, _e, cb) { chunks.push(c); cb(); } }));
          let bad;
          try { zlib.inflateSync(Buffer.from("not deflate")); } catch (e) { bad = typeof e.message; }
          return {
            gzip: zlib.gunzipSync(zlib.gzipSync(text)).toString() === text,
            deflate: zlib.inflateSync(zlib.deflateSync(text)).toString() === text,
            raw: zlib.inflateRawSync(zlib.deflateRawSync(text)).toString() === text,
            unzip: zlib.unzipSync(zlib.deflateSync("z")).toString(),
            smaller: zlib.gzipSync(text).length < text.length,
            fromRust: zlib.gunzipSync(Buffer.from(fromRust, "base64")).toString(),
            stream: Buffer.concat(chunks).toString() === text,
            forRust: zlib.gzipSync("compressed by codestep").toString("base64"),
            bad,
          };
        };
        "#,
        json!({ "fromRust": from_rust }),
    );
    let gz = base64_decode(v["forRust"].as_str().unwrap());
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "compressed by codestep");
    assert_eq!(
        (
            &v["gzip"],
            &v["deflate"],
            &v["raw"],
            &v["unzip"],
            &v["smaller"],
            &v["fromRust"],
            &v["stream"],
            &v["bad"]
        ),
        (
            &json!(true),
            &json!(true),
            &json!(true),
            &json!("z"),
            &json!(true),
            &json!("compressed by Rust"),
            &json!(true),
            &json!("string")
        )
    );
}

/// zlib output is native memory the op hands to V8: it counts against the step's memory limit like
/// any ArrayBuffer, in both modes (in-process, before, a 64 MiB step kept 720 MiB of inflated buffers;
/// worker mode had only the resident-memory backstop).
#[test]
fn zlib_output_counts_against_the_memory_limit() {
    let step = r#"
        import zlib from "node:zlib";
        export default () => {
          const bomb = zlib.deflateSync(new Uint8Array(48 << 20));
          const keep = [];
          for (let i = 0; i < 12; i++) keep.push(zlib.inflateSync(bomb));
          return keep.length;
        };"#;
    for mode in [process_mode(), codestep::engine::Mode::InProcess] {
        let exec = Executor::new(ExecutorConfig {
            workers: 1,
            mode: mode.clone(),
            ..Default::default()
        })
        .expect("executor");
        let mut req = StepRequest::new(step, json!(null));
        req.limits = LimitOverrides {
            memory_mb: Some(64),
            ..Default::default()
        };
        let r = exec.run_blocking(req);
        assert_eq!(
            r.error.as_ref().map(|e| e.kind),
            Some(ErrorKind::Memory),
            "{mode:?}: {:?}",
            r.error
        );
        // What fits still works, and a caught refusal leaves the step running.
        let r = exec.run_blocking(StepRequest::new(
            r#"import zlib from "node:zlib";
            export default () => {
              let refused;
              try { zlib.inflateSync(zlib.deflateSync(new Uint8Array(60 << 20))); } catch (e) { refused = e.message; }
              return [zlib.gunzipSync(zlib.gzipSync("abc")).toString(), refused];
            };"#,
            json!(null),
        ));
        assert!(r.ok, "{mode:?}: {:?}", r.error);
        let v = r.output_value().unwrap();
        assert_eq!(v[0], json!("abc"));
        assert!(v[1].is_null(), "{v}");
    }
}

/// RSA private keys are read by a crate that takes any size, and signing costs about the cube of the
/// modulus in native code the CPU limit cannot interrupt: a crafted 32768-bit key (no real primes needed:
/// the crate checks that they multiply to n and that d inverts e modulo each p-1) held an in-process step
/// thread 20 s past its 500 ms CPU limit. Keys over 8192 bits are refused, and so is PEM text too long to
/// hold one, before any big-number work.
#[test]
fn oversized_rsa_keys_are_refused_before_any_big_number_work() {
    let step = r#"
        import crypto from "node:crypto";
        const gcd = (a, b) => { while (b) [a, b] = [b, a % b]; return a; };
        const inverse = (a, m) => {
          let [r0, r1, s0, s1] = [a, m, 1n, 0n];
          while (r1) { const q = r0 / r1; [r0, r1, s0, s1] = [r1, r0 - q * r1, s1, s0 - q * s1]; }
          return r0 === 1n ? ((s0 % m) + m) % m : null;
        };
        const der = (tag, bytes) => {
          const n = bytes.length;
          const len = n < 128 ? [n] : n < 256 ? [0x81, n] : [0x82, n >> 8, n & 255];
          return [tag, ...len, ...bytes];
        };
        const int = (x) => {
          let hex = x.toString(16);
          if (hex.length % 2) hex = "0" + hex;
          const bytes = hex.match(/../g).map((h) => parseInt(h, 16));
          return der(2, bytes[0] & 0x80 ? [0, ...bytes] : bytes);
        };
        // A PKCS#1 key of `bits` bits whose factors are odd numbers that pass the crate's checks.
        const fakeKey = (bits) => {
          const e = 65537n, top = 3n << BigInt(bits / 2 - 2);
          for (let i = 1n; ; i += 2n) {
            const p = top + i, q = top + i + 2n * 1000003n;
            if (gcd(p, q) !== 1n) continue;
            const l = ((p - 1n) * (q - 1n)) / gcd(p - 1n, q - 1n);
            const d = inverse(e, l);
            if (d === null) continue;
            const body = [0n, p * q, e, d, p, q, d % (p - 1n), d % (q - 1n), inverse(q, p)].flatMap(int);
            const b64 = btoa(String.fromCharCode(...der(0x30, body)));
            return `-----BEGIN RSA PRIVATE KEY-----\n${b64.match(/.{1,64}/g).join("\n")}\n-----END RSA PRIVATE KEY-----\n`;
          }
        };
        const refusal = (pem) => {
          const out = [];
          try { crypto.createSign("RSA-SHA256").update("x").sign(pem); } catch (e) { out.push(e.message); }
          try { crypto.createVerify("RSA-SHA256").update("x").verify(pem, Buffer.alloc(8)); } catch (e) { out.push(e.message); }
          try { crypto.createPrivateKey(pem); } catch (e) { out.push(e.message); }
          return out;
        };
        export default () => {
          const long = "-----BEGIN RSA PRIVATE KEY-----\n" + "A".repeat(1 << 20) + "\n-----END RSA PRIVATE KEY-----\n";
          return { big: refusal(fakeKey(16384)), long: refusal(long), small: refusal(fakeKey(2048)).filter((m) => /8192 bits|PEM text/.test(m)) };
        };"#;
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        mode: codestep::engine::Mode::InProcess,
        ..Default::default()
    })
    .expect("executor");
    let mut req = StepRequest::new(step, json!(null));
    req.limits = LimitOverrides {
        cpu_time_ms: Some(2000),
        ..Default::default()
    };
    let r = exec.run_blocking(req);
    assert!(r.ok, "{:?}", r.error);
    let v = r.output_value().unwrap();
    let all = |k: &str, needle: &str| {
        let list = v[k].as_array().unwrap();
        list.len() == 3 && list.iter().all(|m| m.as_str().unwrap().contains(needle))
    };
    assert!(all("big", "8192 bits"), "{v}");
    assert!(all("long", "PEM text"), "{v}");
    // A small key made the same way is read (signing with it fails its own check, not a size cap).
    assert_eq!(v["small"], json!([]), "{v}");
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn globals_async_context_timers_assert_and_streams() {
    let v = output(
        r#"
        import { AsyncLocalStorage } from "node:async_hooks";
        import assert from "node:assert";
        import { Readable, Transform, PassThrough } from "node:stream";
        export default async () => {
          const als = new AsyncLocalStorage();
          const stored = await als.run({ id: 7 }, async () => {
            await new Promise((r) => setTimeout(r, 1));
            await null;
            return als.getStore().id;
          });
          const order = [];
          await new Promise((done) => {
            setImmediate(() => { order.push("immediate"); done(); });
            process.nextTick(() => order.push("tick"));
            Promise.resolve().then(() => order.push("promise"));
          });
          let assertion;
          try { assert.deepStrictEqual({ a: [1, 2] }, { a: [1, "2"] }); } catch (e) { assertion = e.code; }
          assert.deepEqual({ a: 1 }, { a: "1" });
          assert.throws(() => { throw new TypeError("x"); }, TypeError);
          const upper = new Transform({ transform(c, _e, cb) { cb(null, c.toString().toUpperCase()); } });
          const out = [];
          for await (const c of Readable.from(["a", "b", "c"]).pipe(upper).pipe(new PassThrough())) out.push(c.toString());
          return {
            stored, outside: als.getStore() ?? null, order, assertion, stream: out.join(""),
            globals: [typeof global, global === globalThis, self === globalThis, typeof Buffer, typeof process,
                      typeof setImmediate, typeof clearImmediate],
            ua: navigator.userAgent.startsWith("codestep/"),
            version: process.version.startsWith("v"), nextTick: typeof process.nextTick,
          };
        };
        "#,
        Value::Null,
    );
    assert_eq!(
        v,
        json!({
            "stored": 7, "outside": null, "order": ["tick", "promise", "immediate"],
            "assertion": "ERR_ASSERTION", "stream": "ABC",
            "globals": ["object", true, true, "function", "object", "function", "function"],
            "ua": true, "version": true, "nextTick": "function",
        })
    );
}

#[test]
fn errors_point_at_the_module_line_and_column() {
    let mut req = StepRequest::new(
        "import { f } from './lib.js';\nexport default () => f();\n",
        Value::Null,
    );
    req.modules = vec![(
        "./lib.js".into(),
        "export function f() {\n  const o = null;\n  return o.x;\n}\n".into(),
    )];
    let r = executor().run_blocking(req);
    let e = r.error.expect("error");
    assert_eq!(e.location.as_deref(), Some("lib.js:3:12"));
    assert!(
        e.frame.as_deref().unwrap().contains("> 3 |   return o.x;"),
        "{:?}",
        e.frame
    );
    let stack = e.stack.unwrap();
    assert!(
        stack.contains("at f (lib.js:3:12)") && stack.contains("step.js:2"),
        "{stack}"
    );
    assert!(
        !stack.contains("ext:") && !stack.contains("file://"),
        "{stack}"
    );

    let mut req = StepRequest::new("export default () => {\n  const x = 1,;\n};\n", Value::Null);
    req.main_name = Some("sync.js".into());
    let r = executor().run_blocking(req);
    let e = r.error.expect("error");
    assert!(e.message.starts_with("SyntaxError"), "{}", e.message);
    assert_eq!(e.location.as_deref(), Some("sync.js:2:15"));
    assert!(e.message.contains("sync.js:2:15"), "{}", e.message);
    assert!(e.frame.unwrap().contains("^"));
}

#[test]
fn outputs_undefined_functions_and_lone_surrogates() {
    let r = run("export default () => {}", Value::Null);
    assert_eq!(r.output_value(), Some(Value::Null));
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    let r = run("export default () => () => 1", Value::Null);
    assert_eq!(
        r.error.map(|e| e.kind),
        Some(codestep::engine::ErrorKind::Output)
    );
    let r = run(
        r#"export default () => { const s = "a\uD800b"; return { [s]: [s, "\uDC00"], fine: "😀" }; }"#,
        Value::Null,
    );
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(
        r.output_value(),
        Some(json!({ "a\u{FFFD}b": ["a\u{FFFD}b", "\u{FFFD}"], "fine": "😀" }))
    );
}

#[test]
fn fetch_answers_data_and_blob_urls_locally_and_sends_a_user_agent() {
    use crate::support::{Reply, TestServer};
    let server = TestServer::start(Reply::echo);
    let exec = Executor::new(ExecutorConfig {
        workers: 1,
        mode: process_mode(),
        egress: server.egress_config(),
        ..Default::default()
    })
    .unwrap();
    let connector = codestep::connector::ConnectorSpec {
        name: "echo".into(),
        patterns: vec![server.pattern("api.test")],
        placement: codestep::connector::Placement::header("x-key".into(), "{{secret}}".into()),
        scrub_echo: false,
    }
    .validate(codestep::connector::Secret::new("s3cr3t-value".into()))
    .unwrap();
    let mut req = StepRequest::new(
        r#"
        export default async ({ url }) => {
          const text = await (await fetch("data:,Hello%2C%20World%21")).text();
          const r = await fetch("data:application/json;base64,eyJhIjoxfQ==");
          const blobUrl = URL.createObjectURL(new Blob(["from a blob"], { type: "text/x-test" }));
          const b = await fetch(blobUrl);
          const errors = [];
          for (const u of ["data:no-comma", "data:;base64,%%%"]) {
            try { await fetch(u); errors.push("fetched"); } catch (e) { errors.push(e.name); }
          }
          try { await fetch(blobUrl, { method: "POST", body: "x" }); } catch (e) { errors.push(e.name); }
          URL.revokeObjectURL(blobUrl);
          try { await fetch(blobUrl); } catch (e) { errors.push(e.name); }
          const echoed = await (await fetch(url)).json();
          const own = await (await fetch(url, { headers: { "user-agent": "mine/1.0" } })).json();
          const ua = (h) => h.headers.filter(([n]) => n === "user-agent").map(([, v]) => v);
          return {
            text, json: await r.json(), type: r.headers.get("content-type"),
            blob: await b.text(), blobType: b.headers.get("content-type"), errors,
            ua: ua(echoed), own: ua(own),
          };
        };
        "#,
        json!({ "url": server.url("api.test", "/echo") }),
    );
    req.connectors = vec![connector];
    let r = exec.run_blocking(req);
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(
        r.output_value(),
        Some(json!({
            "text": "Hello, World!", "json": { "a": 1 }, "type": "application/json",
            "blob": "from a blob", "blobType": "text/x-test",
            "errors": ["TypeError", "TypeError", "TypeError", "TypeError"],
            "ua": [format!("codestep/{}", env!("CARGO_PKG_VERSION"))], "own": ["mine/1.0"],
        }))
    );
    // Only the two http fetches reached the network.
    assert_eq!(server.requests().len(), 2);
}
