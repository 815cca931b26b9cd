//! Settings of the S3 backend, from `[systems.s3]` (or `[systems.minio]`) or the
//! environment. The prefix is `DEDUP_S3`; every key is also read from `DEDUP_MINIO_<KEY>`
//! when neither the config nor `DEDUP_S3_<KEY>` has it (the study's scripts used the MinIO
//! names), and the secret key finally from `DEDUP_MINIO_PASSWORD`, the SPEC's name.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `endpoint` | required | `http://host:port` or `https://host:port`; requests are path-style (`/bucket/key`) |
//! | `region` | `us-east-1` | the region requests are signed for |
//! | `access_key`, `secret_key` | required | secrets: `$DEDUP_S3_ACCESS_KEY` / `$DEDUP_S3_SECRET_KEY`, or `<key>_env` / `<key>_file` |
//! | `flavour` | `s3` | `s3`, `minio` or `seaweedfs` (the store behind the API: what maintenance means) |
//! | `master_url` | — | SeaweedFS master (`http://127.0.0.1:19333`): maintenance vacuums through it |
//! | `maintenance_command` | — | for other stores: a command (`sh -c`) run as the maintenance stage |
//! | `data_dir` | — | the store's data directory on this machine: the `fs` probe reads the lab buckets' files there |
//! | `concurrency` | 8 | PUTs in flight in `bulk_insert` (and DELETEs when emptying buckets) |
//! | `multipart_threshold` | 64MiB | objects at least this large go up as multipart uploads |
//! | `part_size` | 16MiB | the size of one part (at least 5 MiB, S3's minimum) |
//! | `content_type` | `application/octet-stream` | the type of blob objects (variant `default`) |
//! | `sslmode`, `sslrootcert`, `tls_server_name` | `require` for https | as for every server backend; `sslrootcert` may be the system bundle |
//! | `connect_timeout`, `statement_timeout` | 10, none | seconds to connect, and for one whole request |

use crate::net::settings::{NameOverride, PasswordSource, ServerSettings, SslMode, TlsSettings, bad, env_var};
use crate::{BackendConfig, Secret};
use dedup_lab_core::{BackendError, ErrorClass};
use std::path::PathBuf;
use std::time::Duration;

/// The keys the S3 backend reads (they live in the registry, the one table of settings).
pub use crate::registry::S3_KEYS as KEYS;

/// The fallback prefix: `DEDUP_MINIO_<KEY>`.
pub const MINIO_PREFIX: &str = "DEDUP_MINIO";

/// The store behind the S3 API, for what has no form in the API itself (reclaiming space).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    S3,
    Minio,
    Seaweedfs,
}

impl Flavour {
    pub fn name(self) -> &'static str {
        match self {
            Flavour::S3 => "s3",
            Flavour::Minio => "minio",
            Flavour::Seaweedfs => "seaweedfs",
        }
    }
}

#[derive(Debug)]
pub struct Settings {
    /// `http://127.0.0.1:18333`, no trailing slash.
    pub endpoint: String,
    /// `127.0.0.1:18333`: the `Host` header, as signed.
    pub host_header: String,
    pub region: String,
    pub access_key: Secret,
    pub secret_key: Secret,
    /// Where the keys came from, for the hint of an authentication error.
    pub key_source: String,
    pub flavour: Flavour,
    pub master_url: Option<String>,
    pub maintenance_command: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub concurrency: usize,
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub content_type: String,
    /// Host, port, TLS and timeouts in the shared form (for the HTTP client).
    pub net: ServerSettings,
}

/// A plain setting: the config table, `DEDUP_S3_<KEY>`, then `DEDUP_MINIO_<KEY>`.
fn get(cfg: &BackendConfig, key: &str) -> Option<String> {
    cfg.string(key).or_else(|| {
        std::env::var(format!("{MINIO_PREFIX}_{}", key.to_ascii_uppercase())).ok().filter(|v| !v.is_empty())
    })
}

/// A secret: `<key>_env` / `<key>_file` / `DEDUP_S3_<KEY>`, then `DEDUP_MINIO_<KEY>` (and
/// `extra`, a further fallback variable). Returns where it came from.
fn secret(cfg: &BackendConfig, key: &str, extra: Option<&str>) -> Result<Option<(Secret, String)>, BackendError> {
    let explicit = ["_env", "_file"].iter().find_map(|s| {
        let k = format!("{key}{s}");
        cfg.settings.get(&k).and_then(|v| v.as_str()).map(|v| format!("`{k}` ({v})"))
    });
    if let Some(v) = cfg.secret(key)? {
        return Ok(Some((v, explicit.unwrap_or_else(|| env_var(&cfg.env_prefix, key)))));
    }
    if explicit.is_some() {
        return Ok(None);
    }
    let minio = format!("{MINIO_PREFIX}_{}", key.to_ascii_uppercase());
    for var in std::iter::once(minio.as_str()).chain(extra) {
        if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
            return Ok(Some((Secret::from(v), format!("${var}"))));
        }
    }
    Ok(None)
}

impl Settings {
    /// Reads the settings; every error is of class [`ErrorClass::Config`] and names the key.
    pub fn from_config(cfg: &BackendConfig) -> Result<Settings, BackendError> {
        Self::read(cfg).map_err(|e| e.classed(ErrorClass::Config))
    }

    fn read(cfg: &BackendConfig) -> Result<Settings, BackendError> {
        let p = &cfg.env_prefix;
        let bad = |key: &str, v: &str, want: &str| bad("s3", p, key, v, want);
        let raw = get(cfg, "endpoint").ok_or_else(|| {
            BackendError::msg(format!(
                "s3: no endpoint configured; set `endpoint` in [systems.{}] or {} (e.g. http://127.0.0.1:9000)",
                cfg.system,
                env_var(p, "endpoint")
            ))
        })?;
        let (tls, rest) = match raw.trim().split_once("://") {
            Some(("http", r)) => (false, r),
            Some(("https", r)) => (true, r),
            _ => return Err(bad("endpoint", &raw, "an http:// or https:// URL")),
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(bad("endpoint", &raw, "scheme://host[:port] without a path, query or user (path-style)"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, port)) if !h.ends_with(']') || h.starts_with('[') => match port.parse::<u16>() {
                Ok(n) if n > 0 => (h.trim_start_matches('[').trim_end_matches(']').to_string(), n),
                _ => return Err(bad("endpoint", &raw, "a port between 1 and 65535")),
            },
            _ => (authority.trim_start_matches('[').trim_end_matches(']').to_string(), if tls { 443 } else { 80 }),
        };
        let endpoint = format!("{}://{authority}", if tls { "https" } else { "http" });

        let missing = |key: &str| {
            BackendError::msg(format!(
                "s3: no {key} configured; set {} (or {}), or `{key}_env` / `{key}_file` in [systems.{}]",
                env_var(p, key),
                env_var(MINIO_PREFIX, key),
                cfg.system
            ))
        };
        let (access_key, ak_src) =
            secret(cfg, "access_key", Some("DEDUP_MINIO_USER"))?.ok_or_else(|| missing("access_key"))?;
        let (secret_key, sk_src) =
            secret(cfg, "secret_key", Some("DEDUP_MINIO_PASSWORD"))?.ok_or_else(|| missing("secret_key"))?;

        let flavour = match get(cfg, "flavour").as_deref().map(str::trim).map(str::to_ascii_lowercase) {
            None => Flavour::S3,
            Some(f) => match f.as_str() {
                "s3" | "aws" => Flavour::S3,
                "minio" => Flavour::Minio,
                "seaweedfs" => Flavour::Seaweedfs,
                _ => return Err(bad("flavour", &f, "s3, minio or seaweedfs")),
            },
        };
        let master_url = get(cfg, "master_url").map(|u| u.trim().trim_end_matches('/').to_string());
        if let Some(u) = &master_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(bad("master_url", u, "an http:// URL of the SeaweedFS master"));
        }
        if flavour == Flavour::Seaweedfs && master_url.is_none() {
            return Err(BackendError::msg(format!(
                "s3: flavour seaweedfs vacuums through the SeaweedFS master; set `master_url` or {} \
                 (e.g. http://127.0.0.1:9333)",
                env_var(p, "master_url")
            )));
        }
        let u64_of = |key: &str| -> Result<Option<u64>, BackendError> {
            get(cfg, key).map(|s| s.trim().parse().map_err(|_| bad(key, &s, "a whole number"))).transpose()
        };
        let bytes_of = |key: &str| -> Result<Option<u64>, BackendError> {
            get(cfg, key)
                .map(|s| dedup_lab_core::parse_bytes("size", &s).map_err(|_| bad(key, &s, "a size such as 16MiB")))
                .transpose()
        };
        let concurrency = u64_of("concurrency")?.unwrap_or(8).clamp(1, 256) as usize;
        let part_size = bytes_of("part_size")?.unwrap_or(16 << 20);
        if !(5 << 20..=5 << 30).contains(&part_size) {
            return Err(bad("part_size", &part_size.to_string(), "between 5 MiB and 5 GiB (S3's part limits)"));
        }
        let multipart_threshold = bytes_of("multipart_threshold")?.unwrap_or(64 << 20).max(part_size);
        let content_type = get(cfg, "content_type").unwrap_or_else(|| "application/octet-stream".into());
        if content_type.trim().is_empty() || !content_type.is_ascii() || content_type.contains(['\r', '\n']) {
            return Err(bad("content_type", &content_type, "a MIME type such as application/octet-stream"));
        }

        let ca_file = get(cfg, "sslrootcert").map(PathBuf::from);
        let mode = match get(cfg, "sslmode") {
            _ if !tls => SslMode::Disable,
            Some(s) => match SslMode::parse(&s) {
                Some(SslMode::Require) => SslMode::Require,
                Some(SslMode::VerifyFull) => SslMode::VerifyFull,
                _ => {
                    return Err(bad(
                        "sslmode",
                        &s,
                        "require or verify-full (the endpoint's scheme says whether TLS is used)",
                    ));
                }
            },
            None if ca_file.is_some() => SslMode::VerifyFull,
            None => SslMode::Require,
        };
        if mode == SslMode::VerifyFull && ca_file.is_none() {
            return Err(BackendError::msg(format!(
                "s3: sslmode=verify-full needs a CA file; set `sslrootcert` or {} (the system bundle \
                 /etc/ssl/certs/ca-certificates.crt for a public endpoint)",
                env_var(p, "sslrootcert")
            )));
        }
        let connect_timeout = Duration::from_secs(u64_of("connect_timeout")?.unwrap_or(10).max(1));
        let statement_timeout = u64_of("statement_timeout")?.filter(|s| *s > 0).map(Duration::from_secs);
        let net = ServerSettings {
            system: "s3",
            host: host.clone(),
            port,
            user: String::new(),
            database: String::new(),
            password: None,
            password_source: PasswordSource::Env(env_var(p, "secret_key")),
            connect_timeout,
            statement_timeout,
            tls: TlsSettings {
                mode,
                ca_file,
                server_name: get(cfg, "tls_server_name").filter(|n| !n.trim().is_empty()),
            },
            name_override: NameOverride::ServerName,
            env_prefix: p.clone(),
        };
        Ok(Settings {
            host_header: authority.to_string(),
            endpoint,
            region: get(cfg, "region").unwrap_or_else(|| "us-east-1".into()),
            access_key,
            secret_key,
            key_source: format!("the access key in {ak_src} and the secret key in {sk_src}"),
            flavour,
            master_url,
            maintenance_command: get(cfg, "maintenance_command").filter(|c| !c.trim().is_empty()),
            data_dir: get(cfg, "data_dir").map(PathBuf::from),
            concurrency,
            multipart_threshold,
            part_size,
            content_type,
            net,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use serde_json::json;

    fn cfg(settings: serde_json::Value) -> BackendConfig {
        BackendConfig::new("dedup_lab".parse().unwrap(), "s3", "DEDUP_UNIT_S3_NO_ENV", settings, PathBuf::new())
    }

    fn with_keys(extra: serde_json::Value) -> (tempfile::TempDir, BackendConfig) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ak"), "AKIDUNIT\n").unwrap();
        std::fs::write(d.path().join("sk"), "hunter2-secret-key\n").unwrap();
        let mut s = json!({
            "access_key_file": d.path().join("ak").to_str().unwrap(),
            "secret_key_file": d.path().join("sk").to_str().unwrap(),
        });
        s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        (d, cfg(s))
    }

    fn err(extra: serde_json::Value) -> String {
        let (_d, c) = with_keys(extra);
        let e = Settings::from_config(&c).unwrap_err();
        assert_eq!(e.class(), Some(ErrorClass::Config));
        e.to_string()
    }

    #[test]
    fn defaults_endpoints_and_secrets() {
        let (_d, c) = with_keys(json!({"endpoint": "http://127.0.0.1:18333/"}));
        let s = Settings::from_config(&c).unwrap();
        assert_eq!((s.endpoint.as_str(), s.host_header.as_str()), ("http://127.0.0.1:18333", "127.0.0.1:18333"));
        assert_eq!((s.net.host.as_str(), s.net.port, s.net.tls.mode), ("127.0.0.1", 18333, SslMode::Disable));
        assert_eq!((s.region.as_str(), s.flavour, s.concurrency), ("us-east-1", Flavour::S3, 8));
        assert_eq!((s.part_size, s.multipart_threshold), (16 << 20, 64 << 20));
        assert_eq!(s.secret_key.expose_secret(), "hunter2-secret-key");
        assert!(!format!("{s:?}").contains("hunter2") && !format!("{s:?}").contains("AKIDUNIT"));
        assert!(s.key_source.contains("`secret_key_file`"), "{}", s.key_source);
        let (_d, c) = with_keys(json!({"endpoint": "https://s3.example:9443", "sslrootcert": "/ca.pem"}));
        let s = Settings::from_config(&c).unwrap();
        assert_eq!((s.net.port, s.net.tls.mode), (9443, SslMode::VerifyFull));
        let (_d, c) = with_keys(json!({"endpoint": "https://s3.example"}));
        assert_eq!(Settings::from_config(&c).unwrap().net.port, 443);
    }

    #[test]
    fn bad_settings_name_the_key() {
        assert!(err(json!({})).contains("no endpoint configured"));
        assert!(err(json!({"endpoint": "s3.example:9000"})).contains("an http:// or https:// URL"));
        assert!(err(json!({"endpoint": "http://h:9000/bucket"})).contains("path-style"));
        assert!(err(json!({"endpoint": "http://h:0"})).contains("a port between"));
        assert!(err(json!({"endpoint": "http://h", "flavour": "ceph"})).contains("s3, minio or seaweedfs"));
        assert!(err(json!({"endpoint": "http://h", "flavour": "seaweedfs"})).contains("set `master_url`"));
        assert!(err(json!({"endpoint": "http://h", "part_size": "1MiB"})).contains("between 5 MiB and 5 GiB"));
        assert!(err(json!({"endpoint": "https://h", "sslmode": "verify-full"})).contains("needs a CA file"));
        assert!(err(json!({"endpoint": "http://h", "secret_key": "x"})).contains("must not be written"));
        let e = Settings::from_config(&cfg(json!({"endpoint": "http://h"}))).unwrap_err().to_string();
        assert!(e.contains("no access_key configured") && e.contains("$DEDUP_MINIO_ACCESS_KEY"), "{e}");
    }
}
