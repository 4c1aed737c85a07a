//! AWS Signature Version 4, for `aws_sigv4` placements: the last step of injection, once every other
//! header of the hop is final.
//!
//! Signed: `host`, `content-type` and `content-md5` when present, and every `x-amz-*` header. JS's own
//! `Authorization`, `X-Amz-Date`, `X-Amz-Content-Sha256` and `X-Amz-Security-Token` are dropped first,
//! so a step cannot make the signature cover values of its choosing for them. A buffered body is
//! hashed into `x-amz-content-sha256`; a streamed one cannot be hashed before it is sent, so it is
//! signed as `UNSIGNED-PAYLOAD` (which S3 accepts; other services may refuse it).

use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use url::Url;
use zeroize::Zeroizing;

use super::inject::{replace_header, HeaderList};

pub(crate) const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The headers a step may not set towards an `aws_sigv4` connector.
pub(crate) fn is_signing_header(lower: &str) -> bool {
    matches!(
        lower,
        "authorization" | "x-amz-date" | "x-amz-content-sha256" | "x-amz-security-token"
    )
}

/// What signs one request.
pub(crate) struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    Zeroizing::new(mac.finalize().into_bytes().to_vec())
}

/// The hex SHA-256 of a buffered body.
pub(crate) fn payload_hash(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

/// `YYYYMMDDTHHMMSSZ` for now.
pub(crate) fn amz_date_now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// RFC 3986 unreserved characters stay, every other byte becomes `%XX` (uppercase hex), as SigV4 asks.
fn aws_encode(s: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s {
        if c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && c == b'/')
        {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The canonical URI. For S3 the path is used as sent; other services normalise it (no empty
/// segments) and encode the sent (already encoded) path once more, as the AWS SDKs do.
fn canonical_uri(url: &Url, service: &str) -> String {
    let path = url.path();
    if service == "s3" {
        return if path.is_empty() {
            "/".into()
        } else {
            path.into()
        };
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut normal = String::from("/");
    normal.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normal.push('/');
    }
    aws_encode(normal.as_bytes(), true)
}

/// The canonical query: each name and value decoded then SigV4-encoded, sorted by name then value.
fn canonical_query(url: &Url) -> String {
    let Some(query) = url.query() else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                aws_encode(&percent_decode(k), false),
                aws_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `Host` as the client sends it: the port only when it is not the scheme's default.
fn host_value(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

fn is_signed(lower: &str) -> bool {
    lower == "content-type" || lower == "content-md5" || lower.starts_with("x-amz-")
}

impl Signer<'_> {
    /// Drops the step's signing headers, sets `x-amz-date` and `x-amz-content-sha256`, and adds the
    /// `Authorization` header for `method` to `url` (the URL that is sent) with the headers as they are.
    pub(crate) fn sign(&self, method: &str, url: &Url, headers: &mut HeaderList, payload: &str) {
        headers.retain(|(n, _)| !is_signing_header(n.as_str()));
        let date_header = HeaderValue::from_str(self.amz_date).expect("a date is a header value");
        headers.push((HeaderName::from_static("x-amz-date"), date_header));
        let hash = HeaderValue::from_str(payload).expect("a hash is a header value");
        headers.push((HeaderName::from_static("x-amz-content-sha256"), hash));

        let mut to_sign: Vec<(String, String)> = vec![("host".into(), host_value(url))];
        for (n, v) in headers.iter() {
            if is_signed(n.as_str()) {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                to_sign.push((n.as_str().to_string(), value));
            }
        }
        let auth = self.authorization(method, url, &to_sign, payload);
        let value =
            HeaderValue::from_str(&auth).expect("validation keeps the key id a header value");
        replace_header(headers, reqwest::header::AUTHORIZATION, value);
    }

    /// The `Authorization` value for a request whose signed headers (lowercase names) are `to_sign`.
    fn authorization(
        &self,
        method: &str,
        url: &Url,
        to_sign: &[(String, String)],
        payload: &str,
    ) -> Zeroizing<String> {
        // Canonical headers: sorted by name; repeated ones joined with `,`; values trimmed, inner runs
        // of spaces made one.
        let mut signed: Vec<(String, String)> = Vec::new();
        for (n, v) in to_sign {
            let value = v.split_whitespace().collect::<Vec<_>>().join(" ");
            match signed.iter_mut().find(|(k, _)| k == n) {
                Some((_, existing)) => {
                    existing.push(',');
                    existing.push_str(&value);
                }
                None => signed.push((n.clone(), value)),
            }
        }
        signed.sort_by(|a, b| a.0.cmp(&b.0));
        let canonical_headers: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let signed_headers = signed
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");

        let canonical_request = format!(
            "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{payload}",
            canonical_uri(url, self.service),
            canonical_query(url),
        );
        let date = &self.amz_date[..8.min(self.amz_date.len())];
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
            self.amz_date,
            hex(&Sha256::digest(canonical_request.as_bytes()))
        );
        let signature = hex(&hmac(&self.signing_key(date), string_to_sign.as_bytes()));
        Zeroizing::new(format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key_id
        ))
    }

    fn signing_key(&self, date: &str) -> Zeroizing<Vec<u8>> {
        let mut first = Zeroizing::new(String::from("AWS4"));
        first.push_str(self.secret_access_key);
        let k = hmac(first.as_bytes(), date.as_bytes());
        let k = hmac(&k, self.region.as_bytes());
        let k = hmac(&k, self.service.as_bytes());
        hmac(&k, b"aws4_request")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published examples (the SigV4 test suite's `get-vanilla` and the IAM `ListUsers` example
    /// of the signing documentation), with their published signatures.
    const KEY_ID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn auth_of(headers: &HeaderList) -> String {
        let v: Vec<_> = headers
            .iter()
            .filter(|(n, _)| n == "authorization")
            .collect();
        assert_eq!(v.len(), 1);
        v[0].1.to_str().unwrap().to_string()
    }

    fn signer<'a>(region: &'a str, service: &'a str) -> Signer<'a> {
        Signer {
            access_key_id: KEY_ID,
            secret_access_key: SECRET,
            region,
            service,
            amz_date: "20150830T123600Z",
        }
    }

    fn h(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn aws_published_vectors() {
        assert_eq!(payload_hash(b""), EMPTY);
        // The signing documentation's key derivation example.
        let iam = Signer {
            amz_date: "20120215T000000Z",
            ..signer("us-east-1", "iam")
        };
        assert_eq!(
            hex(&iam.signing_key("20120215")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
        // The test suite's `get-vanilla`.
        let url = Url::parse("https://example.amazonaws.com/").unwrap();
        let auth = signer("us-east-1", "service").authorization(
            "GET",
            &url,
            &h(&[
                ("host", "example.amazonaws.com"),
                ("x-amz-date", "20150830T123600Z"),
            ]),
            EMPTY,
        );
        assert_eq!(
            auth.as_str(),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        // The signing documentation's IAM `ListUsers` example (query in reverse order: it is sorted).
        let url =
            Url::parse("https://iam.amazonaws.com/?Version=2010-05-08&Action=ListUsers").unwrap();
        let auth = signer("us-east-1", "iam").authorization(
            "GET",
            &url,
            &h(&[
                (
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
                ("host", "iam.amazonaws.com"),
                ("x-amz-date", "20150830T123600Z"),
            ]),
            EMPTY,
        );
        assert!(
            auth.ends_with(
                "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
            ),
            "{}",
            auth.as_str()
        );
    }

    #[test]
    fn js_signing_headers_are_replaced() {
        let url = Url::parse("https://sts.amazonaws.com:8443/a%20b//c?b=2&a=1").unwrap();
        let mut headers: HeaderList = vec![
            (
                HeaderName::from_static("x-amz-date"),
                HeaderValue::from_static("19700101T000000Z"),
            ),
            (
                HeaderName::from_static("authorization"),
                HeaderValue::from_static("AWS4-HMAC-SHA256 js"),
            ),
            (
                HeaderName::from_static("x-amz-security-token"),
                HeaderValue::from_static("js"),
            ),
            (
                HeaderName::from_static("x-amz-target"),
                HeaderValue::from_static("X.Y"),
            ),
        ];
        signer("us-east-1", "sts").sign("POST", &url, &mut headers, EMPTY);
        let dates: Vec<_> = headers.iter().filter(|(n, _)| n == "x-amz-date").collect();
        assert_eq!(dates.len(), 1);
        assert_eq!(dates[0].1, "20150830T123600Z");
        assert!(!headers.iter().any(|(n, _)| n == "x-amz-security-token"));
        let auth = auth_of(&headers);
        assert!(
            auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-target,"),
            "{auth}"
        );
        assert!(!auth.contains(SECRET));
        assert_eq!(canonical_uri(&url, "sts"), "/a%2520b/c");
        assert_eq!(canonical_uri(&url, "s3"), "/a%20b//c");
        assert_eq!(canonical_query(&url), "a=1&b=2");
        assert_eq!(host_value(&url), "sts.amazonaws.com:8443");
    }
}
