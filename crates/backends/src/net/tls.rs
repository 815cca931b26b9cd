//! TLS for every server backend: one rustls client configuration (aws-lc-rs provider) built
//! from [`TlsSettings`](super::settings::TlsSettings), and sentences for handshake failures.
//!
//! - `prefer` / `require`: encrypt, accept any certificate (as libpq does); the handshake
//!   signatures are still checked, so the server must hold the certificate's key (and SCRAM
//!   channel binding, where a protocol has it, ties the password exchange to this session).
//! - `verify-full`: the certificate must chain to the CA file `sslrootcert` and be valid for
//!   the server's name ([`ServerSettings::tls_name`]).
//!
//! `disable` gets a configuration too (never used), so a driver holds one value whatever the mode.

use super::class::find_rustls;
use super::settings::{NameOverride, ServerSettings, SslMode};
use dedup_lab_core::{BackendError, ErrorClass};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// The rustls client configuration for `s.tls`. Errors (an unreadable or empty CA file) are of
/// class [`ErrorClass::Config`].
pub fn client_config(s: &ServerSettings) -> Result<Arc<ClientConfig>, BackendError> {
    build(s).map_err(|e| e.classed(ErrorClass::Config))
}

fn build(s: &ServerSettings) -> Result<Arc<ClientConfig>, BackendError> {
    let sys = s.system;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| BackendError::with_source(format!("{sys}: setting up TLS"), e))?;
    let config = match (s.tls.mode, &s.tls.ca_file) {
        (SslMode::VerifyFull, Some(path)) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                BackendError::with_source(
                    format!(
                        "{sys}: cannot read sslrootcert {} (set {} to the CA's PEM file)",
                        path.display(),
                        s.env("sslrootcert")
                    ),
                    e,
                )
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    BackendError::with_source(
                        format!("{sys}: sslrootcert {} is not a PEM certificate file", path.display()),
                        e,
                    )
                })?;
                roots.add(cert).map_err(|e| {
                    BackendError::with_source(
                        format!("{sys}: sslrootcert {}: unusable CA certificate", path.display()),
                        e,
                    )
                })?;
            }
            if roots.is_empty() {
                return Err(BackendError::msg(format!(
                    "{sys}: sslrootcert {} holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (SslMode::VerifyFull, None) => {
            // ServerSettings refuses this; a hand-built value must not silently skip the check.
            return Err(BackendError::msg(format!("{sys}: sslmode=verify-full needs `sslrootcert`")));
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.signature_verification_algorithms)))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Accepts any server certificate (`prefer` / `require`), but still verifies that the server
/// holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// What the explanation of a TLS failure names: the CA file, the name checked, and the
/// settings that change them. Built from [`ServerSettings`] ([`TlsHints::of`]) and kept by
/// clients that outlive the settings (the HTTP client).
#[derive(Debug, Clone)]
pub struct TlsHints {
    pub ca_file: Option<String>,
    pub name: String,
    /// `$DEDUP_X_SSLROOTCERT`.
    pub ca_var: String,
    /// How to connect by another name: `set $DEDUP_X_HOST accordingly, or …`.
    pub name_fix: String,
}

impl TlsHints {
    pub fn of(s: &ServerSettings) -> TlsHints {
        let name_fix = match s.name_override {
            NameOverride::AddressKey(key) => {
                format!("set {} accordingly, with {} for the address if needed", s.env("host"), s.env(key))
            }
            NameOverride::ServerName => {
                format!("set {} accordingly, or {} to a name it lists", s.env("host"), s.env("tls_server_name"))
            }
        };
        TlsHints {
            ca_file: s.tls.ca_file.as_ref().map(|p| p.display().to_string()),
            name: s.tls_name().to_string(),
            ca_var: s.env("sslrootcert"),
            name_fix,
        }
    }
}

/// What went wrong in a TLS handshake, for a message that says what to fix; `None` when the
/// chain holds no rustls error.
pub fn explain(err: &(dyn std::error::Error + 'static), s: &ServerSettings) -> Option<String> {
    explain_with(err, &TlsHints::of(s))
}

/// [`explain`] with hints kept from the settings.
pub fn explain_with(err: &(dyn std::error::Error + 'static), h: &TlsHints) -> Option<String> {
    let rustls_err = find_rustls(err)?;
    use rustls::CertificateError as C;
    Some(match rustls_err {
        rustls::Error::InvalidCertificate(
            C::UnknownIssuer | C::BadSignature | C::InvalidPurpose | C::InvalidPurposeContext { .. },
        ) => format!(
            "TLS: the server's certificate is not signed by the CA in sslrootcert {}; \
             point `sslrootcert` / {} at the CA that issued the server's certificate",
            h.ca_file.as_deref().unwrap_or_default(),
            h.ca_var
        ),
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => format!(
            "TLS: the server's certificate is not valid for host name {:?}; connect by a name the certificate \
             lists ({}), or reissue the certificate",
            h.name, h.name_fix
        ),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "TLS: the server's certificate has expired".to_string()
        }
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "TLS: the server's certificate is not valid yet (check the clocks)".to_string()
        }
        other => format!("TLS handshake failed ({other})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackendConfig;
    use crate::net::settings::Defaults;
    use rustls::CertificateError as C;
    use serde_json::json;

    fn settings(extra: serde_json::Value, name_override: NameOverride) -> ServerSettings {
        let mut obj = json!({"user": "u", "host": "db.example"});
        obj.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let cfg = BackendConfig::new("dedup_lab".parse().unwrap(), "x", "DEDUP_X", obj, Default::default());
        let d = Defaults { system: "x", port: 1, user: None, database: None, sslmode: SslMode::Require, name_override };
        ServerSettings::from_config(&cfg, &d).unwrap()
    }

    fn explained(e: rustls::Error, s: &ServerSettings) -> String {
        // As drivers hand it up: inside an io::Error.
        explain(&std::io::Error::new(std::io::ErrorKind::InvalidData, e), s).unwrap()
    }

    #[test]
    fn explanations_name_the_fix() {
        let s = settings(json!({"sslrootcert": "/etc/ca.pem"}), NameOverride::ServerName);
        let wrong_ca = explained(rustls::Error::InvalidCertificate(C::UnknownIssuer), &s);
        assert!(
            wrong_ca.contains("not signed by the CA in sslrootcert /etc/ca.pem")
                && wrong_ca.contains("$DEDUP_X_SSLROOTCERT")
        );
        let name = explained(rustls::Error::InvalidCertificate(C::NotValidForName), &s);
        assert!(
            name.contains("not valid for host name \"db.example\"") && name.contains("$DEDUP_X_TLS_SERVER_NAME"),
            "{name}"
        );
        let s2 = settings(json!({"tls_server_name": "alias.example"}), NameOverride::AddressKey("hostaddr"));
        let name = explained(rustls::Error::InvalidCertificate(C::NotValidForName), &s2);
        assert!(name.contains("\"alias.example\"") && name.contains("$DEDUP_X_HOSTADDR for the address"), "{name}");
        assert!(explained(rustls::Error::InvalidCertificate(C::Expired), &s).contains("has expired"));
        assert!(explained(rustls::Error::InvalidCertificate(C::NotValidYet), &s).contains("not valid yet"));
        assert!(explain(&std::io::Error::other("plain"), &s).is_none());
    }

    #[test]
    fn unusable_ca_files_are_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        for (path, want) in
            [("/nonexistent/ca.pem", "cannot read sslrootcert"), (empty.to_str().unwrap(), "holds no certificate")]
        {
            let e = client_config(&settings(json!({"sslrootcert": path}), NameOverride::ServerName)).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
            assert_eq!(e.class(), Some(ErrorClass::Config));
        }
        assert!(client_config(&settings(json!({}), NameOverride::ServerName)).is_ok());
    }
}
