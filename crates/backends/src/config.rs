//! What a backend is given to open: the lab name, a scratch directory for embedded stores,
//! and the system's own settings table (`[systems.<name>]` of the config file).
//!
//! Settings are looked up in the table first, then in `DEDUP_<SYSTEM>_<KEY>` environment
//! variables, then defaults, so `eval "$(scripts/services.sh env)"` is all a user needs.

use dedup_lab_core::{BackendError, LabName};
use secrecy::SecretString;
use std::path::PathBuf;

pub use secrecy::ExposeSecret;

/// A secret (password): held in a type that never prints its content.
pub type Secret = SecretString;

#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub lab: LabName,
    /// The system's name as used in the config file and environment (`postgresql`, …).
    pub system: String,
    /// The `[systems.<name>]` table (an empty object when absent).
    pub settings: serde_json::Value,
    /// A directory the embedded backends may create their stores under.
    pub work_dir: PathBuf,
    /// Prefix of the environment variables for this system, e.g. `DEDUP_PG`.
    pub env_prefix: String,
}

impl BackendConfig {
    pub fn new(lab: LabName, system: &str, env_prefix: &str, settings: serde_json::Value, work_dir: PathBuf) -> Self {
        BackendConfig { lab, system: system.into(), settings, work_dir, env_prefix: env_prefix.into() }
    }

    fn env_name(&self, key: &str) -> String {
        format!("{}_{}", self.env_prefix, key.to_ascii_uppercase())
    }

    /// A string setting: the config table, then `DEDUP_<SYS>_<KEY>`.
    pub fn string(&self, key: &str) -> Option<String> {
        match self.settings.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::Bool(b)) => Some(b.to_string()),
            _ => std::env::var(self.env_name(key)).ok().filter(|v| !v.is_empty()),
        }
    }

    /// A number setting, with a clear error for a value that is not one.
    pub fn u64(&self, key: &str) -> Result<Option<u64>, BackendError> {
        match self.string(key) {
            None => Ok(None),
            Some(s) => s.trim().parse().map(Some).map_err(|_| {
                BackendError::msg(format!(
                    "{}: setting `{key}` (or ${}) is {s:?}, expected a whole number",
                    self.system,
                    self.env_name(key)
                ))
            }),
        }
    }

    /// A size setting (`4096`, `"512KiB"`, `"64MiB"`), with a clear error for anything else.
    pub fn bytes(&self, key: &str) -> Result<Option<u64>, BackendError> {
        match self.string(key) {
            None => Ok(None),
            Some(s) => dedup_lab_core::parse_bytes("size", &s).map(Some).map_err(|e| {
                BackendError::msg(format!("{}: setting `{key}` (or ${}): {e}", self.system, self.env_name(key)))
            }),
        }
    }

    /// A list of strings: a TOML array, or a comma-separated string / environment variable.
    pub fn string_list(&self, key: &str) -> Result<Option<Vec<String>>, BackendError> {
        match self.settings.get(key) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        BackendError::msg(format!("{}: setting `{key}` must be a list of strings", self.system))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            _ => Ok(self
                .string(key)
                .map(|s| s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect())),
        }
    }

    /// A secret: from the environment variable named by `<key>_env` (default
    /// `DEDUP_<SYS>_<KEY>`), or the file named by `<key>_file`. Never from the config file
    /// itself, so secrets do not end up in configs or results.
    pub fn secret(&self, key: &str) -> Result<Option<Secret>, BackendError> {
        if self.settings.get(key).is_some() {
            return Err(BackendError::msg(format!(
                "{}: `{key}` must not be written in the config file; set ${} or `{key}_env` / `{key}_file` instead",
                self.system,
                self.env_name(key)
            )));
        }
        if let Some(file) = self.settings.get(format!("{key}_file")).and_then(|v| v.as_str()) {
            let text = std::fs::read_to_string(file).map_err(|e| {
                BackendError::with_source(format!("{}: cannot read `{key}_file` {file}", self.system), e)
            })?;
            return Ok(Some(SecretString::from(text.trim_end_matches(['\n', '\r']).to_string())));
        }
        let var = self
            .settings
            .get(format!("{key}_env"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| self.env_name(key));
        Ok(std::env::var(&var).ok().map(SecretString::from))
    }
}

/// Where an embedded store lives: the `dir` setting (e.g. a directory on a deduplicating
/// file system, to measure what the file system does), or `<run>/lab/<system>`.
pub fn store_dir(cfg: &BackendConfig, system: &str) -> PathBuf {
    match cfg.string("dir") {
        Some(d) => PathBuf::from(d).join(system),
        None => cfg.work_dir.join(system),
    }
}
