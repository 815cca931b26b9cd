//! The MariaDB backend against throwaway servers started by the test itself (see
//! `support/mariadb.rs`): real TLS with a CA made here, a server that forbids local infile,
//! and faults (a server killed in the middle of a stage, nothing listening, a server that
//! never answers).
//!
//! These need only the MariaDB server binaries, not `scripts/services.sh`. Without them the
//! server tests print why and return (they fail with `DEDUP_LAB_REQUIRE_SERVERS=1`).

use crate::support::mariadb::{MariaServer, ServerOptions, free_port, hex_token};
use crate::support::*;
use dedup_lab_backends::{BackendConfig, open};
use dedup_lab_core::{Backend, ErrorClass, SystemKind};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use serde_json::json;
use std::net::TcpListener;

fn server(opts: &ServerOptions) -> Option<MariaServer> {
    if let Some(why) = MariaServer::unavailable() {
        skip(&format!("cannot start a throwaway MariaDB server: {why}"));
        return None;
    }
    Some(MariaServer::start(opts).unwrap_or_else(|e| panic!("starting a throwaway MariaDB server: {e}")))
}

fn config(lab: &str, settings: serde_json::Value) -> BackendConfig {
    isolated_config(lab, "mariadb", settings)
}

fn open_mdb(cfg: &BackendConfig) -> Result<Box<dyn Backend>, String> {
    open(SystemKind::Mariadb, "dynamic", cfg).map_err(|e| e.chain())
}

fn open_class(cfg: &BackendConfig) -> Option<ErrorClass> {
    open(SystemKind::Mariadb, "dynamic", cfg).err().expect("opening must fail").class()
}

// ----- TLS -----

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// A CA, and a server certificate and key it signed for `localhost` and 127.0.0.1.
fn pki() -> (String, String, String) {
    let ca = ca("dedup-lab test CA");
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[test]
fn tls_verify_full_require_prefer_and_clear_failures() {
    let (ca_pem, cert, key) = pki();
    let Some(s) = server(&ServerOptions { tls: Some((cert, key)), ..Default::default() }) else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, ca("some other CA").pem()).unwrap();
    let ca_path = ca_file.to_str().unwrap();
    let lab = "dedup_t_m_tls";
    let ns = ns(lab, 2);
    let tls_line =
        |b: &mut Box<dyn Backend>| b.preflight(&ns).unwrap_or_else(|e| panic!("{}", e.chain())).checks[0].clone();

    // verify-full with the right CA, by IP and by name; the session is really encrypted.
    for host in ["127.0.0.1", "localhost"] {
        let cfg = config(lab, s.settings(json!({"host": host, "sslmode": "verify-full", "sslrootcert": ca_path})));
        let mut b = open_mdb(&cfg).unwrap_or_else(|e| panic!("verify-full via {host}: {e}"));
        let line = tls_line(&mut b);
        assert!(line.contains("TLS TLSv1.") && line.contains("sslmode=verify-full"), "{line}");
        // Data goes through the encrypted session, the bulk path too.
        let n_ns = dedup_lab_core::Namespace::new(&lab.parse().unwrap(), 1);
        b.reset(&n_ns).unwrap();
        let recs: Vec<_> = (0..30).map(|i| record(i, 0, random_bytes(i, 5000))).collect();
        assert_eq!(b.bulk_insert(&n_ns, &mut stream(recs.clone())).unwrap(), 30);
        assert_eq!(b.read_one(&n_ns, &recs[29].id).unwrap().as_deref(), Some(&recs[29].data[..]));
        b.teardown(&n_ns).unwrap();
    }
    // sslrootcert alone means verify-full.
    let mut only_ca = s.settings(json!({"sslrootcert": ca_path}));
    only_ca.as_object_mut().unwrap().remove("sslmode");
    let mut b = open_mdb(&config(lab, only_ca)).unwrap();
    assert!(tls_line(&mut b).contains("sslmode=verify-full"));

    // Wrong CA: a clear sentence naming the CA file; no password.
    let cfg = config(lab, s.settings(json!({"sslmode": "verify-full", "sslrootcert": other_ca.to_str().unwrap()})));
    let e = open_mdb(&cfg).err().expect("a certificate from another CA must be refused");
    eprintln!("{e}");
    assert!(e.starts_with(&format!("mariadb 127.0.0.1:{} as tester: connecting: TLS:", s.port)), "{e}");
    assert!(e.contains("not signed by the CA in sslrootcert") && e.contains("other-ca.pem"), "{e}");
    assert!(!e.contains(&s.password));
    assert_eq!(open_class(&cfg), Some(ErrorClass::Config));

    // Wrong name: connect to 127.0.0.1, check the certificate against another name.
    let cfg = config(
        lab,
        s.settings(json!({"sslmode": "verify-full", "sslrootcert": ca_path, "tls_server_name": "db.wrong-name.test"})),
    );
    let e = open_mdb(&cfg).err().expect("a certificate for another name must be refused");
    eprintln!("{e}");
    assert!(e.contains("not valid for host name \"db.wrong-name.test\"") && e.contains("TLS_SERVER_NAME"), "{e}");
    assert_eq!(open_class(&cfg), Some(ErrorClass::Config));

    // A CA file that is missing.
    let cfg = config(lab, s.settings(json!({"sslmode": "verify-full", "sslrootcert": "/nonexistent/ca.pem"})));
    assert!(open_mdb(&cfg).err().unwrap().contains("cannot read sslrootcert /nonexistent/ca.pem"));

    // require and prefer: encrypted, the certificate not checked (even with a wrong CA around).
    for mode in ["require", "prefer"] {
        let cfg = config(lab, s.settings(json!({"sslmode": mode, "sslrootcert": other_ca.to_str().unwrap()})));
        let mut b = open_mdb(&cfg).unwrap_or_else(|e| panic!("{mode}: {e}"));
        let line = tls_line(&mut b);
        assert!(line.contains("TLS TLSv1.") && line.contains(&format!("sslmode={mode}")), "{line}");
    }
    // disable: plaintext against a TLS-capable server.
    let mut b = open_mdb(&config(lab, s.settings(json!({"sslmode": "disable"})))).unwrap();
    assert!(tls_line(&mut b).contains("no TLS, sslmode=disable"));
}

#[test]
fn without_tls_on_the_server_require_fails_clearly_and_prefer_falls_back() {
    let Some(s) = server(&ServerOptions::default()) else { return };
    let lab = "dedup_t_m_notls";
    let cfg = config(lab, s.settings(json!({"sslmode": "require"})));
    let e = open_mdb(&cfg).err().expect("require needs TLS");
    eprintln!("{e}");
    assert!(e.contains("does not offer TLS, but sslmode=require requires it"), "{e}");
    assert_eq!(open_class(&cfg), Some(ErrorClass::Config));
    let mut b = open_mdb(&config(lab, s.settings(json!({"sslmode": "prefer"})))).unwrap();
    let report = b.preflight(&ns(lab, 1)).unwrap_or_else(|e| panic!("{}", e.chain()));
    assert!(report.checks[0].contains("no TLS, sslmode=prefer"), "{:?}", report.checks);
}

// ----- local infile forbidden -----

#[test]
fn a_server_without_local_infile_gets_batched_inserts_and_the_notes_say_so() {
    let Some(s) = server(&ServerOptions { no_local_infile: true, ..Default::default() }) else { return };
    let lab = "dedup_t_m_noinfile";
    let ns = ns(lab, 2);
    let mut b = open_mdb(&config(lab, s.settings(json!({"batch_rows": 16})))).unwrap();
    let report = b.preflight(&ns).unwrap_or_else(|e| panic!("{}", e.chain()));
    assert!(
        report.checks.iter().any(|c| c.contains("the server forbids LOAD DATA LOCAL INFILE")),
        "{:?}",
        report.checks
    );
    b.reset(&ns).unwrap();
    let recs: Vec<_> = (0..100).map(|i| record(i, (i % 2) as u8, random_bytes(i, 3000 + i as usize))).collect();
    assert_eq!(b.bulk_insert(&ns, &mut stream(recs.clone())).unwrap(), 100);
    let notes = b.take_notes().join("\n");
    eprintln!("{notes}");
    assert!(notes.contains("batched multi-row INSERT") && notes.contains("local_infile=OFF"), "{notes}");
    assert!(notes.contains("the server reported 100 rows"), "{notes}");
    assert_eq!(b.count(&ns).unwrap(), 100);
    for r in recs.iter().step_by(11) {
        assert_eq!(b.read_one(&ns, &r.id).unwrap().as_deref(), Some(&r.data[..]));
    }
    b.teardown(&ns).unwrap();
}

// ----- variants the server refuses -----

#[test]
fn variants_the_server_cannot_serve_are_refused_when_the_backend_opens() {
    let opts = ServerOptions {
        extra: vec!["--innodb-compression-algorithm=none".into(), "--innodb-read-only-compressed=ON".into()],
        ..Default::default()
    };
    let Some(s) = server(&opts) else { return };
    let cfg = config("dedup_t_m_refused", s.settings(json!({})));
    for (variant, want) in [
        ("page-compressed", "innodb_compression_algorithm, which is none"),
        ("compressed", "innodb_read_only_compressed=ON makes ROW_FORMAT=COMPRESSED tables read-only"),
    ] {
        let err = open(SystemKind::Mariadb, variant, &cfg).err().expect("the variant must be refused");
        let e = err.chain();
        eprintln!("{e}");
        assert!(
            e.starts_with(&format!("mariadb 127.0.0.1:{} as tester: variant {variant:?} cannot run", s.port)),
            "{e}"
        );
        assert!(e.contains(want) && e.contains("drop it from `variants`"), "{e}");
        assert_eq!(err.class(), Some(ErrorClass::Config));
    }
    // What the server can serve still opens.
    assert!(open_mdb(&cfg).is_ok());
}

// ----- faults -----

#[test]
fn server_killed_mid_stage_is_a_clear_error_and_the_next_call_reconnects() {
    let Some(mut s) = server(&ServerOptions::default()) else { return };
    let lab = "dedup_t_m_killed";
    let ns = ns(lab, 1);
    let password = s.password.clone();
    let endpoint = format!("mariadb 127.0.0.1:{} as tester", s.port);
    let mut b = open_mdb(&config(lab, s.settings(json!({"connect_timeout": 3})))).unwrap();
    b.reset(&ns).unwrap();
    assert_eq!(b.insert_one(&ns, &record(0, 0, b"kept".to_vec())).unwrap(), 1);

    // The server is killed (SIGKILL) while LOAD DATA streams.
    let mut records = (1..400u64).map(|i| {
        if i == 150 {
            s.kill();
        }
        Ok(record(i, 0, random_bytes(i, 20_000)))
    });
    let err = b.bulk_insert(&ns, &mut records).unwrap_err();
    drop(records);
    let e = err.chain();
    eprintln!("{e}");
    assert_eq!(err.class(), Some(ErrorClass::ConnectionLost), "{e}");
    assert!(e.starts_with(&endpoint) && e.contains("the connection to the server was lost"), "{e}");

    // While it is down: a clear connect error.
    let err = b.count(&ns).unwrap_err();
    let e = err.chain();
    eprintln!("{e}");
    assert_eq!(err.class(), Some(ErrorClass::Unreachable), "{e}");
    assert!(e.starts_with(&format!("{endpoint}: connecting: nothing accepts connections")), "{e}");
    assert!(!e.contains(&password));

    // Back up (after crash recovery): the next call reconnects; the load was rolled back.
    s.start_again().unwrap();
    assert_eq!(b.count(&ns).unwrap(), 1);
    assert_eq!(b.read_one(&ns, &record(0, 0, vec![]).id).unwrap().as_deref(), Some(&b"kept"[..]));

    // Killed between two calls: the call that finds it says so.
    s.kill();
    let err = b.insert_one(&ns, &record(1, 0, b"x".to_vec())).unwrap_err();
    let e = err.chain();
    eprintln!("{e}");
    assert!(e.starts_with(&endpoint), "{e}");
    assert_eq!(err.class(), Some(ErrorClass::ConnectionLost), "{e}");
    assert!(!e.contains(&password));
}

#[test]
fn unreachable_server_is_named_with_the_fix() {
    let port = free_port().unwrap();
    let cfg = config("dedup_t_m_down", json!({"host": "127.0.0.1", "port": port, "user": "u", "sslmode": "disable"}));
    let e = open_mdb(&cfg).err().unwrap();
    eprintln!("{e}");
    assert!(e.starts_with(&format!("mariadb 127.0.0.1:{port} as u: connecting: nothing accepts connections")), "{e}");
    assert!(e.contains("is the server running"), "{e}");
    assert_eq!(open_class(&cfg), Some(ErrorClass::Unreachable));
}

#[test]
fn silent_server_hits_the_connect_timeout() {
    // Accepts TCP (the kernel does, into the backlog) but never speaks.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let secret = format!("s3cret-{}", hex_token(4));
    let (_g, pw) = secret_file(&secret);
    let cfg = config(
        "dedup_t_m_silent",
        json!({"host": "127.0.0.1", "port": port, "user": "u", "password_file": pw.to_str().unwrap(), "connect_timeout": 1}),
    );
    let e = open_mdb(&cfg).err().unwrap();
    eprintln!("{e}");
    assert!(e.starts_with(&format!("mariadb 127.0.0.1:{port} as u: connecting: no complete answer within 1 s")), "{e}");
    assert!(!e.contains(&secret));
    assert_eq!(open_class(&cfg), Some(ErrorClass::Timeout));
    drop(listener);
}
