//! The S3 calls this backend makes, path-style, signed with [`super::sign`], over the shared
//! HTTP client ([`crate::net::http`]): buckets (list, create, delete), objects (put, get,
//! head, delete, list with pagination), multipart uploads (create, part, complete, abort,
//! list) and the error mapping.
//!
//! Errors: the body of an S3 error is read here (never passed on whole): its `<Code>` picks
//! the class and the sentence. `InvalidAccessKeyId` and `SignatureDoesNotMatch` become ONE
//! authentication message naming where the keys came from — the server's `StringToSign`
//! and `CanonicalRequest` dump is dropped, and no key ever appears. `AccessDenied` is
//! permission, `NoSuchBucket` a bad request, 5xx a server error.

use super::settings::Settings;
use super::sign::{self, Signer, UNSIGNED_PAYLOAD};
use crate::Secret;
use crate::net::http::{HttpClient, HttpOptions, Response, status_class};
use dedup_lab_core::{BackendError, ErrorClass};
use std::io::Read;

/// Error statuses whose body this module reads itself (to parse the S3 error code).
const ERROR_STATUSES: &[u16] =
    &[301, 307, 400, 401, 403, 404, 405, 409, 411, 412, 413, 416, 429, 500, 501, 502, 503, 504];

/// The longest XML answer read (a page of 1000 keys is ~300 KB).
const XML_LIMIT: u64 = 16 << 20;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
}

/// A request body.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
}

pub struct Api {
    http: HttpClient,
    signer: Signer,
    endpoint: String,
    host: String,
    /// `s3 http://127.0.0.1:18333`: the start of every message.
    sys: String,
    key_source: String,
}

impl Api {
    pub fn new(s: &Settings) -> Result<Api, BackendError> {
        let http = HttpClient::new(HttpOptions::from_settings(&s.net)?)?;
        Ok(Api {
            http,
            signer: Signer::new(s.access_key.clone(), s.secret_key.clone(), &s.region),
            endpoint: s.endpoint.clone(),
            host: s.host_header.clone(),
            sys: format!("s3 {}", s.endpoint),
            key_source: s.key_source.clone(),
        })
    }

    pub fn sys(&self) -> &str {
        &self.sys
    }

    /// Sends a signed request to `/bucket/key` (either may be absent). A status in `absent` (e.g. 404 for "no such key") comes back
    /// as `Ok(None)`; any other error status as a classed error.
    pub fn send(
        &self,
        method: &str,
        (bucket, key): (Option<&str>, Option<&str>),
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Body<'_>,
        absent: &[&str],
    ) -> Result<Option<Response>, BackendError> {
        let path = sign::encode_path(bucket, key);
        let mut url = format!("{}{path}", self.endpoint);
        if !query.is_empty() {
            let q: Vec<String> =
                query.iter().map(|(k, v)| format!("{}={}", sign::encode(k, true), sign::encode(v, true))).collect();
            url.push('?');
            url.push_str(&q.join("&"));
        }
        let signed = self.signer.sign(&sign::Request {
            method,
            host: &self.host,
            path: &path,
            query,
            headers: &[],
            payload_hash: UNSIGNED_PAYLOAD,
        });
        let mut req = self.http.request(method, &url).header("host", &self.host);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        for (k, v) in signed {
            req = if k == "authorization" { req.secret_header(k, &Secret::from(v)) } else { req.header(k, &v) };
        }
        for s in ERROR_STATUSES {
            req = req.accept(*s);
        }
        let what = || format!("{} {method} {path}", self.sys);
        let resp = match body {
            Body::Empty if method == "PUT" || method == "POST" => req.send_bytes(&[]),
            Body::Empty => req.call(),
            Body::Bytes(b) => req.send_bytes(b),
        }
        .map_err(|e| BackendError::with_source(format!("{}: {}", what(), self.hint_for(e.class())), e))?;
        if resp.status() < 300 {
            return Ok(Some(resp));
        }
        let status = resp.status();
        let text = if method == "HEAD" { String::new() } else { resp.text(64 << 10).unwrap_or_default() };
        let code = tag(&text, "Code").unwrap_or_default();
        if absent.contains(&code.as_str()) || (method == "HEAD" && status == 404 && !absent.is_empty()) {
            return Ok(None);
        }
        Err(self.error(&what(), status, &code, &text))
    }

    /// What to check for a transport failure, by class.
    fn hint_for(&self, class: Option<ErrorClass>) -> &'static str {
        match class {
            Some(ErrorClass::Unreachable) => {
                "the endpoint cannot be reached; is the server running, and is `endpoint` right?"
            }
            Some(ErrorClass::ConnectionLost) => "the connection broke mid-request (server stopped or restarted?)",
            Some(ErrorClass::Timeout) => "no answer in time",
            _ => "request failed",
        }
    }

    /// The error for an S3 error answer: one sentence per class, the server's message when it
    /// is short, never a signature dump.
    fn error(&self, what: &str, status: u16, code: &str, body: &str) -> BackendError {
        let message = tag(body, "Message").filter(|m| m.len() <= 200).map(|m| format!(" ({m})")).unwrap_or_default();
        let (class, sentence) = match code {
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "InvalidToken"
            | "ExpiredToken"
            | "AuthorizationHeaderMalformed" => (
                ErrorClass::Authentication,
                format!("the server refused the credentials ({code}); check {} (and `region`)", self.key_source),
            ),
            "AccessDenied" | "AllAccessDisabled" => (
                ErrorClass::Permission,
                format!(
                    "access denied{message}: the key may not do this; grant it on buckets dedup-lab-* (or the lab's)"
                ),
            ),
            "NoSuchBucket" => (ErrorClass::BadRequest, format!("no such bucket{message}")),
            "" if status == 403 => (
                ErrorClass::Permission,
                "HTTP 403 Forbidden without an S3 error code (wrong credentials or no permission)".to_string(),
            ),
            "" => (status_class(status), format!("HTTP {status}")),
            _ => {
                let class = if status >= 500 { ErrorClass::Server } else { status_class(status) };
                (class, format!("HTTP {status} {code}{message}"))
            }
        };
        BackendError::msg(format!("{what}: {sentence}")).classed(class)
    }

    // ----- buckets -----

    pub fn list_buckets(&self) -> Result<Vec<String>, BackendError> {
        Ok(self.server_and_buckets()?.1)
    }

    /// The server's `Server` header (its name and version, when it sends one) and every
    /// bucket the key can list (ListBuckets).
    pub fn server_and_buckets(&self) -> Result<(Option<String>, Vec<String>), BackendError> {
        let r = self.send("GET", (None, None), &[], &[], Body::Empty, &[])?.expect("no absent codes");
        let server = r.header("server").map(str::to_string);
        let text = self.xml(r)?;
        Ok((server, blocks(&text, "Bucket").filter_map(|b| tag(b, "Name")).collect()))
    }

    /// Creates `bucket`; one that exists and is ours already counts as created.
    pub fn create_bucket(&self, bucket: &str, region: &str) -> Result<(), BackendError> {
        let body = if region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
            )
        };
        self.send("PUT", (Some(bucket), None), &[], &[], Body::Bytes(body.as_bytes()), &["BucketAlreadyOwnedByYou"])?;
        Ok(())
    }

    /// Deletes an empty bucket; a missing one is not an error.
    pub fn delete_bucket(&self, bucket: &str) -> Result<(), BackendError> {
        self.send("DELETE", (Some(bucket), None), &[], &[], Body::Empty, &["NoSuchBucket"])?;
        Ok(())
    }

    // ----- objects -----

    /// Every object of `bucket` (ListObjectsV2, all pages); `None` when there is no such bucket.
    pub fn list_objects(&self, bucket: &str) -> Result<Option<Vec<Object>>, BackendError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![("list-type", "2"), ("max-keys", "1000")];
            if let Some(t) = &token {
                q.push(("continuation-token", t.as_str()));
            }
            let Some(r) = self.send("GET", (Some(bucket), None), &q, &[], Body::Empty, &["NoSuchBucket"])? else {
                return Ok(None);
            };
            let text = self.xml(r)?;
            for c in blocks(&text, "Contents") {
                let key = tag(c, "Key").unwrap_or_default();
                let size = tag(c, "Size").and_then(|s| s.parse().ok()).unwrap_or(0);
                out.push(Object { key, size });
            }
            let truncated = tag(&text, "IsTruncated").is_some_and(|t| t == "true");
            token = tag(&text, "NextContinuationToken");
            if !truncated {
                return Ok(Some(out));
            }
            if token.is_none() {
                return Err(BackendError::msg(format!(
                    "{}: ListObjectsV2 of {bucket} says IsTruncated but gives no continuation token",
                    self.sys
                ))
                .classed(ErrorClass::Server));
            }
        }
    }

    pub fn put_object(
        &self,
        bucket: &str,
        key: &str,
        data: &[u8],
        content_type: Option<&str>,
    ) -> Result<(), BackendError> {
        let headers: Vec<(&str, &str)> = content_type.map(|c| ("content-type", c)).into_iter().collect();
        self.send("PUT", (Some(bucket), Some(key)), &[], &headers, Body::Bytes(data), &[])?;
        Ok(())
    }

    /// The object's bytes, `None` when there is no such key.
    pub fn get_object(&self, bucket: &str, key: &str, limit: u64) -> Result<Option<Vec<u8>>, BackendError> {
        match self.send("GET", (Some(bucket), Some(key)), &[], &[], Body::Empty, &["NoSuchKey"])? {
            None => Ok(None),
            Some(r) => r.bytes(limit).map(Some),
        }
    }

    /// The object's content type as stored, `None` when there is no such key.
    pub fn head_object(&self, bucket: &str, key: &str) -> Result<Option<String>, BackendError> {
        let r = self.send("HEAD", (Some(bucket), Some(key)), &[], &[], Body::Empty, &["NoSuchKey"])?;
        Ok(r.map(|r| r.header("content-type").unwrap_or_default().to_string()))
    }

    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<(), BackendError> {
        self.send("DELETE", (Some(bucket), Some(key)), &[], &[], Body::Empty, &["NoSuchKey"])?;
        Ok(())
    }

    // ----- multipart -----

    pub fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        content_type: Option<&str>,
    ) -> Result<String, BackendError> {
        let headers: Vec<(&str, &str)> = content_type.map(|c| ("content-type", c)).into_iter().collect();
        let r = self.send("POST", (Some(bucket), Some(key)), &[("uploads", "")], &headers, Body::Empty, &[])?;
        let text = self.xml(r.expect("no absent codes"))?;
        tag(&text, "UploadId").ok_or_else(|| {
            BackendError::msg(format!("{}: CreateMultipartUpload of {bucket}/{key} gave no UploadId", self.sys))
                .classed(ErrorClass::Server)
        })
    }

    /// Uploads part `n` (from 1); returns its ETag.
    pub fn upload_part(&self, bucket: &str, key: &str, id: &str, n: u32, data: &[u8]) -> Result<String, BackendError> {
        let n = n.to_string();
        let q = [("partNumber", n.as_str()), ("uploadId", id)];
        let r = self.send("PUT", (Some(bucket), Some(key)), &q, &[], Body::Bytes(data), &[])?.expect("no absent codes");
        let etag = r.header("etag").map(str::to_string);
        // Read the (empty) body so the connection goes back to the pool.
        let _ = r.into_reader().read_to_end(&mut Vec::new());
        etag.ok_or_else(|| {
            BackendError::msg(format!("{}: part {n} of {bucket}/{key} came back without an ETag", self.sys))
                .classed(ErrorClass::Server)
        })
    }

    pub fn complete_multipart(&self, bucket: &str, key: &str, id: &str, etags: &[String]) -> Result<(), BackendError> {
        let mut body = String::from("<CompleteMultipartUpload>");
        for (i, e) in etags.iter().enumerate() {
            body.push_str(&format!("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", i + 1, escape(e)));
        }
        body.push_str("</CompleteMultipartUpload>");
        let r =
            self.send("POST", (Some(bucket), Some(key)), &[("uploadId", id)], &[], Body::Bytes(body.as_bytes()), &[])?;
        // S3 may answer 200 with an error document inside.
        let text = self.xml(r.expect("no absent codes"))?;
        if text.contains("<Error>") {
            let code = tag(&text, "Code").unwrap_or_default();
            return Err(self.error(&format!("{} complete multipart {bucket}/{key}", self.sys), 500, &code, &text));
        }
        Ok(())
    }

    pub fn abort_multipart(&self, bucket: &str, key: &str, id: &str) -> Result<(), BackendError> {
        self.send("DELETE", (Some(bucket), Some(key)), &[("uploadId", id)], &[], Body::Empty, &["NoSuchUpload"])?;
        Ok(())
    }

    /// Unfinished multipart uploads of `bucket`: (key, upload id); first page only, which
    /// is enough for a lab bucket (emptying runs it again until nothing is left).
    pub fn list_multipart(&self, bucket: &str) -> Result<Vec<(String, String)>, BackendError> {
        let Some(r) =
            self.send("GET", (Some(bucket), None), &[("uploads", "")], &[], Body::Empty, &["NoSuchBucket"])?
        else {
            return Ok(Vec::new());
        };
        let text = self.xml(r)?;
        Ok(blocks(&text, "Upload").filter_map(|u| Some((tag(u, "Key")?, tag(u, "UploadId")?))).collect())
    }

    fn xml(&self, r: Response) -> Result<String, BackendError> {
        r.text(XML_LIMIT)
    }
}

/// The text of the first `<name>…</name>` in `xml`, entities decoded.
pub fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(unescape(&xml[start..end]))
}

/// The inner text of every `<name>…</name>` block, in order.
pub fn blocks<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let end = rest[start..].find(&close)? + start;
        let block = &rest[start..end];
        rest = &rest[end + close.len()..];
        Some(block)
    })
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&apos;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_tags_and_blocks() {
        let x = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a&amp;b</Key><Size>3</Size>\
                 </Contents><Contents><Key>c</Key><Size>40</Size></Contents>\
                 <NextContinuationToken>t/1</NextContinuationToken></ListBucketResult>";
        let keys: Vec<_> = blocks(x, "Contents").map(|c| (tag(c, "Key").unwrap(), tag(c, "Size").unwrap())).collect();
        assert_eq!(keys, [("a&b".to_string(), "3".to_string()), ("c".to_string(), "40".to_string())]);
        assert_eq!(tag(x, "NextContinuationToken").as_deref(), Some("t/1"));
        assert_eq!(tag(x, "Missing"), None);
        assert_eq!(escape("\"e&t\""), "&quot;e&amp;t&quot;");
    }
}
