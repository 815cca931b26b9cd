//! TLS for the PostgreSQL wire protocol: rustls with aws-lc-rs, `sslmode` mapped ourselves.
//!
//! - `prefer` / `require`: encrypt, accept any certificate (as libpq does); the handshake
//!   signatures are still checked, and SCRAM channel binding (`tls-server-end-point`) ties the
//!   password exchange to this TLS session.
//! - `verify-full`: the certificate must chain to the CA file `sslrootcert` and be valid for
//!   the host name (`host`, even when `hostaddr` is used to connect).

use super::settings::{Settings, SslMode};
use dedup_lab_core::BackendError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS connector for `settings.sslmode` (for `disable` one that is never used).
pub fn connector(s: &Settings) -> Result<MakeRustlsConnect, BackendError> {
    let sys = s.kind.name();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| BackendError::with_source(format!("{sys}: setting up TLS"), e))?;
    let config = match s.sslmode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.signature_verification_algorithms)))
            .with_no_client_auth(),
        SslMode::VerifyFull => {
            let path = s.sslrootcert.as_ref().expect("checked in Settings");
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
    };
    Ok(MakeRustlsConnect::new(config))
}

/// Accepts any server certificate (sslmode `prefer` / `require`), but still verifies that the
/// server holds the certificate's key.
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

/// What went wrong in a TLS handshake, for a message that says what to fix.
pub fn explain(err: &(dyn std::error::Error + 'static), s: &Settings) -> Option<String> {
    let rustls_err = find_rustls_error(err)?;
    let root = s.sslrootcert.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    use rustls::CertificateError as C;
    Some(match rustls_err {
        rustls::Error::InvalidCertificate(
            C::UnknownIssuer | C::BadSignature | C::InvalidPurpose | C::InvalidPurposeContext { .. },
        ) => format!(
            "TLS: the server's certificate is not signed by the CA in sslrootcert {root}; \
             point `sslrootcert` / {} at the CA that issued the server's certificate",
            s.env("sslrootcert")
        ),
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => format!(
            "TLS: the server's certificate is not valid for host name {:?}; connect by a name the certificate \
             lists (set {} accordingly, with {} for the address if needed), or reissue the certificate",
            s.host,
            s.env("host"),
            s.env("hostaddr")
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

/// The rustls error inside a chain; `io::Error` hides its inner error from `source()`, so
/// look inside those explicitly.
fn find_rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = find_rustls_error(inner)
        {
            return Some(r);
        }
        cur = e.source();
    }
    None
}
