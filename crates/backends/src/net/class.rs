//! Error classes of the failures every network driver shares: I/O errors of the socket and
//! rustls errors of the handshake. A driver classifies its own protocol's error codes itself
//! and falls back on [`classify_chain`] for what lies underneath.

use dedup_lab_core::ErrorClass;
use std::error::Error as StdError;
use std::io::ErrorKind;

/// The class of a socket error. `None` for kinds that say nothing about the network (a
/// driver then decides from its own context).
pub fn io_class(e: &std::io::Error) -> Option<ErrorClass> {
    Some(match e.kind() {
        ErrorKind::ConnectionRefused
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable
        | ErrorKind::AddrNotAvailable
        | ErrorKind::NetworkDown => ErrorClass::Unreachable,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => ErrorClass::Timeout,
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::UnexpectedEof
        | ErrorKind::NotConnected => ErrorClass::ConnectionLost,
        // Name resolution failures come as uncategorised errors; only their text tells.
        _ if is_dns_failure(e) => ErrorClass::Unreachable,
        _ => return None,
    })
}

fn is_dns_failure(e: &std::io::Error) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    ["failed to lookup address", "name or service not known", "no address associated", "nodename nor servname"]
        .iter()
        .any(|m| text.contains(m))
}

/// The class of a TLS failure: a certificate the settings do not accept is a configuration
/// problem (the CA file, the name, or the server's certificate must change); the server
/// refusing us for lack of a certificate it wants is authentication; anything else broke the
/// connection.
pub fn tls_class(e: &rustls::Error) -> ErrorClass {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::UnsupportedNameType
        | rustls::Error::PeerIncompatible(_) => ErrorClass::Config,
        rustls::Error::AlertReceived(
            A::BadCertificate | A::CertificateRequired | A::AccessDenied | A::UnknownCA | A::CertificateRevoked,
        ) => ErrorClass::Authentication,
        rustls::Error::AlertReceived(A::HandshakeFailure | A::ProtocolVersion | A::InsufficientSecurity) => {
            ErrorClass::Config
        }
        _ => ErrorClass::ConnectionLost,
    }
}

/// The class of the first rustls or I/O error in a chain that has one.
pub fn classify_chain(e: &(dyn StdError + 'static)) -> Option<ErrorClass> {
    if let Some(t) = find_rustls(e) {
        return Some(tls_class(t));
    }
    find_io(e).and_then(io_class)
}

/// The first I/O error in a chain.
pub fn find_io<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a std::io::Error> {
    let mut cur: Option<&'a (dyn StdError + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = c.source();
    }
    None
}

/// The rustls error inside a chain; `io::Error` hides its inner error from `source()`, so
/// look inside those explicitly.
pub fn find_rustls<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&'a (dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = find_rustls(inner)
        {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CertificateError as C;

    fn io(kind: ErrorKind) -> Option<ErrorClass> {
        io_class(&std::io::Error::from(kind))
    }

    #[test]
    fn socket_errors() {
        for k in [ErrorKind::ConnectionRefused, ErrorKind::HostUnreachable, ErrorKind::NetworkUnreachable] {
            assert_eq!(io(k), Some(ErrorClass::Unreachable), "{k:?}");
        }
        assert_eq!(io(ErrorKind::TimedOut), Some(ErrorClass::Timeout));
        for k in [ErrorKind::ConnectionReset, ErrorKind::BrokenPipe, ErrorKind::UnexpectedEof] {
            assert_eq!(io(k), Some(ErrorClass::ConnectionLost), "{k:?}");
        }
        assert_eq!(io(ErrorKind::PermissionDenied), None);
        let dns = std::io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(io_class(&dns), Some(ErrorClass::Unreachable));
    }

    #[test]
    fn tls_errors() {
        for c in [C::UnknownIssuer, C::NotValidForName, C::Expired, C::NotValidYet, C::BadSignature] {
            assert_eq!(tls_class(&rustls::Error::InvalidCertificate(c.clone())), ErrorClass::Config, "{c:?}");
        }
        let refused = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        assert_eq!(tls_class(&refused), ErrorClass::Authentication);
        assert_eq!(tls_class(&rustls::Error::DecryptError), ErrorClass::ConnectionLost);
    }

    #[test]
    fn chains_are_searched_through_io_errors() {
        // How drivers hand a TLS failure up: a rustls error inside an io::Error inside a
        // driver error.
        #[derive(Debug)]
        struct Driver(std::io::Error);
        impl std::fmt::Display for Driver {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("driver error")
            }
        }
        impl StdError for Driver {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let tls =
            Driver(std::io::Error::new(ErrorKind::InvalidData, rustls::Error::InvalidCertificate(C::UnknownIssuer)));
        assert_eq!(classify_chain(&tls), Some(ErrorClass::Config));
        let reset = Driver(std::io::Error::from(ErrorKind::ConnectionReset));
        assert_eq!(classify_chain(&reset), Some(ErrorClass::ConnectionLost));
        assert_eq!(classify_chain(&std::fmt::Error), None);
    }
}
