//! AWS Signature Version 4 for S3 requests, written here rather than taken from a crate.
//!
//! Why our own: signing is ~100 lines over the `sha2` the workspace already builds (plus the
//! eight lines of HMAC), and is checked below against the worked example of AWS's own S3
//! documentation. `rusty-s3` would sign as well, but brings `url` (with `idna` and the ICU
//! crates), `jiff` and `instant-xml` into every build for the few requests this backend
//! makes, while its I/O would still be ours (the shared HTTP client).
//!
//! Bodies are sent as `UNSIGNED-PAYLOAD` (what S3, MinIO and SeaweedFS accept over HTTP and
//! HTTPS): an object is streamed once, never hashed first. The secret is used here only,
//! to derive the signing key; it never enters a header, a message or a `Debug` output.

use crate::Secret;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// The payload hash that tells the server the body is not part of the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// What a request is signed with. `Debug` shows neither key.
pub struct Signer {
    access_key: Secret,
    secret_key: Secret,
    region: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("region", &self.region).finish_non_exhaustive()
    }
}

/// One request to sign: the parts of it the signature covers.
pub struct Request<'a> {
    pub method: &'a str,
    /// `host[:port]`, exactly as the `Host` header is sent.
    pub host: &'a str,
    /// The path, already URI-encoded ([`encode_path`]).
    pub path: &'a str,
    /// Query parameters, not encoded (they are encoded and sorted here).
    pub query: &'a [(&'a str, &'a str)],
    /// Further headers to sign (lower-case names), e.g. `range`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

impl Signer {
    pub fn new(access_key: Secret, secret_key: Secret, region: &str) -> Signer {
        Signer { access_key, secret_key, region: region.to_string() }
    }

    /// The headers to add to the request: `x-amz-date`, `x-amz-content-sha256` and
    /// `authorization` (the last one holds the access key id; treat it as a secret).
    pub fn sign(&self, r: &Request<'_>) -> Vec<(&'static str, String)> {
        self.sign_at(r, &amz_date(SystemTime::now()))
    }

    /// [`sign`](Self::sign) at a given time `20130524T000000Z`.
    pub fn sign_at(&self, r: &Request<'_>, amz_date: &str) -> Vec<(&'static str, String)> {
        let date = &amz_date[..8];
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), r.host.to_string()),
            ("x-amz-content-sha256".into(), r.payload_hash.to_string()),
            ("x-amz-date".into(), amz_date.to_string()),
        ];
        headers.extend(r.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string())));
        headers.sort();
        let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let mut query: Vec<(String, String)> =
            r.query.iter().map(|(k, v)| (encode(k, true), encode(v, true))).collect();
        query.sort();
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let canonical =
            format!("{}\n{}\n{}\n{canonical_headers}\n{signed}\n{}", r.method, r.path, query.join("&"), r.payload_hash);
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
        let mut key = hmac(format!("AWS4{}", self.secret_key.expose_secret()).as_bytes(), date.as_bytes());
        for part in [self.region.as_str(), "s3", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let signature = hex(&hmac(&key, to_sign.as_bytes()));
        vec![
            ("x-amz-date", amz_date.to_string()),
            ("x-amz-content-sha256", r.payload_hash.to_string()),
            (
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
                    self.access_key.expose_secret()
                ),
            ),
        ]
    }
}

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| block.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(msg).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// URI encoding as SigV4 wants it: everything but `A-Za-z0-9-._~` as `%XX` (upper case),
/// and `/` too unless `slash` is false (object key paths).
pub fn encode(s: &str, slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b'/' if !slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The encoded path of a bucket or object: `/bucket` or `/bucket/key`.
pub fn encode_path(bucket: Option<&str>, key: Option<&str>) -> String {
    match (bucket, key) {
        (None, _) => "/".into(),
        (Some(b), None) => format!("/{}", encode(b, true)),
        (Some(b), Some(k)) => format!("/{}/{}", encode(b, true), encode(k, false)),
    }
}

/// `20130524T000000Z` for a point in time (UTC).
pub fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The "GET Object" example of AWS's "Signature Calculations for the Authorization
    /// Header" (S3 API reference), with its published signature.
    #[test]
    fn matches_the_aws_documentation_example() {
        let s = Signer::new(
            "AKIAIOSFODNN7EXAMPLE".to_string().into(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_string().into(),
            "us-east-1",
        );
        let empty = hex(&Sha256::digest(b""));
        let r = Request {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            query: &[],
            headers: &[("range", "bytes=0-9")],
            payload_hash: &empty,
        };
        let h = s.sign_at(&r, "20130524T000000Z");
        let auth = &h.iter().find(|(k, _)| *k == "authorization").unwrap().1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert!(!format!("{s:?}").contains("EXAMPLEKEY") && !format!("{s:?}").contains("AKIA"));
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        assert_eq!(
            hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than the block is hashed first (RFC 4231 case 6).
        assert_eq!(
            hex(&hmac(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn dates_and_encoding() {
        assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(amz_date(UNIX_EPOCH + Duration::from_secs(1_369_353_600)), "20130524T000000Z");
        assert_eq!(amz_date(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661)), "20000229T010101Z");
        assert_eq!(encode("a b/c~", true), "a%20b%2Fc~");
        assert_eq!(encode_path(Some("dedup-lab-c0"), Some("r0/x y")), "/dedup-lab-c0/r0/x%20y");
        assert_eq!(encode_path(None, None), "/");
    }
}
