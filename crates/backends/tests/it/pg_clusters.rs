//! The PostgreSQL / CockroachDB wire backend against throwaway PostgreSQL clusters started
//! by the test itself (see `support/pgcluster.rs`): real TLS with a CA made here, two
//! unreplicated servers behind one address, and faults (wrong or missing password,
//! unreachable and silent servers, missing privileges, a server that dies mid-stage).
//!
//! These need only the PostgreSQL server binaries, not `scripts/services.sh`. Without them
//! the cluster tests print why and return (they fail with `DEDUP_LAB_REQUIRE_SERVERS=1`).

use crate::support::pgcluster::{ClusterOptions, PgCluster, free_port, hex_token};
use crate::support::*;
use dedup_lab_backends::postgresql::PgBackend;
use dedup_lab_backends::{BackendConfig, open};
use dedup_lab_core::{Backend, BackendError, ErrorClass, SystemKind};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use serde_json::json;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

fn cluster(opts: &ClusterOptions) -> Option<PgCluster> {
    if let Some(why) = PgCluster::unavailable() {
        skip(&format!("cannot start a throwaway PostgreSQL cluster: {why}"));
        return None;
    }
    Some(PgCluster::start(opts).unwrap_or_else(|e| panic!("starting a throwaway cluster: {e}")))
}

fn pg_config(lab: &str, settings: serde_json::Value) -> BackendConfig {
    isolated_config(lab, "postgresql", settings)
}

fn open_pg(cfg: &BackendConfig) -> Result<Box<dyn Backend>, String> {
    open(SystemKind::Postgresql, "extended", cfg).map_err(|e| e.chain())
}

/// The class of the error opening `cfg` fails with.
fn open_class(cfg: &BackendConfig) -> Option<ErrorClass> {
    open(SystemKind::Postgresql, "extended", cfg).err().expect("opening must fail").class()
}

/// The class of an operation's error.
fn class_of<T>(r: Result<T, BackendError>) -> Option<ErrorClass> {
    r.err().expect("expected an error").class()
}

// ----- TLS -----

struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// A CA and a server certificate it signed for `localhost` and 127.0.0.1.
fn pki() -> Pki {
    let ca = ca("dedup-lab test CA");
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, &ca).unwrap();
    Pki { ca_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

#[test]
fn tls_verify_full_require_and_clear_failures() {
    let pki = pki();
    let Some(c) =
        cluster(&ClusterOptions { tls: Some((pki.cert_pem.clone(), pki.key_pem.clone())), ..Default::default() })
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, ca("some other CA").pem()).unwrap();
    let ca_path = ca_file.to_str().unwrap();
    let lab = "dedup_t_tls";
    let ns = ns(lab, 1);

    // verify-full with the right CA, by IP and by name; the connection is really encrypted.
    for host in ["127.0.0.1", "localhost"] {
        let cfg = pg_config(lab, c.settings(json!({"host": host, "sslmode": "verify-full", "sslrootcert": ca_path})));
        let mut b = open_pg(&cfg).unwrap_or_else(|e| panic!("verify-full via {host}: {e}"));
        let report = b.preflight(&ns).unwrap_or_else(|e| panic!("{}", e.chain()));
        assert!(
            report.checks[0].contains("TLS") && report.checks[0].contains("sslmode=verify-full"),
            "{:?}",
            report.checks
        );
        assert!(!report.checks[0].contains("no TLS"), "{:?}", report.checks);
    }
    // sslrootcert alone implies verify-full.
    let cfg = pg_config(lab, c.settings(json!({"sslrootcert": ca_path})));
    let mut obj = c.settings(json!({"sslrootcert": ca_path}));
    obj.as_object_mut().unwrap().remove("sslmode");
    let cfg2 = pg_config(lab, obj);
    assert!(open_pg(&cfg).is_ok());
    let mut b = open_pg(&cfg2).unwrap();
    assert!(b.preflight(&ns).unwrap().checks[0].contains("sslmode=verify-full"));

    // Wrong CA: a clear sentence naming the CA file; no password.
    let cfg =
        pg_config(lab, c.settings(json!({"sslmode": "verify-full", "sslrootcert": other_ca_file.to_str().unwrap()})));
    let e = open_pg(&cfg).err().expect("a certificate from another CA must be refused");
    eprintln!("{e}");
    assert!(e.starts_with(&format!("postgresql 127.0.0.1:{}/postgres as postgres: connecting: TLS:", c.port)), "{e}");
    assert!(e.contains("not signed by the CA in sslrootcert") && e.contains("other-ca.pem"), "{e}");
    assert!(!e.contains(&c.password));
    assert_eq!(open_class(&cfg), Some(ErrorClass::Config), "a certificate the settings refuse");

    // Wrong host name: connect to 127.0.0.1 but check the certificate against another name.
    let cfg = pg_config(
        lab,
        c.settings(json!({"host": "db.wrong-name.test", "hostaddr": "127.0.0.1", "sslmode": "verify-full", "sslrootcert": ca_path})),
    );
    let e = open_pg(&cfg).err().expect("a certificate for another name must be refused");
    eprintln!("{e}");
    assert!(e.contains("not valid for host name \"db.wrong-name.test\""), "{e}");
    assert!(e.starts_with("postgresql db.wrong-name.test (127.0.0.1):"), "{e}");
    assert_eq!(open_class(&cfg), Some(ErrorClass::Config));

    // A CA file that is missing or not PEM.
    let cfg = pg_config(lab, c.settings(json!({"sslmode": "verify-full", "sslrootcert": "/nonexistent/ca.pem"})));
    let e = open_pg(&cfg).err().unwrap();
    assert!(e.contains("cannot read sslrootcert /nonexistent/ca.pem"), "{e}");

    // require: encrypted, certificate not checked (even with the wrong CA around).
    let cfg = pg_config(lab, c.settings(json!({"sslmode": "require", "sslrootcert": other_ca_file.to_str().unwrap()})));
    let mut b = open_pg(&cfg).unwrap_or_else(|e| panic!("require: {e}"));
    assert!(b.preflight(&ns).unwrap().checks[0].contains("sslmode=require"));

    // disable: plaintext against a TLS-capable server still works when asked for.
    let cfg = pg_config(lab, c.settings(json!({"sslmode": "disable"})));
    let mut b = open_pg(&cfg).unwrap();
    assert!(b.preflight(&ns).unwrap().checks[0].contains("no TLS"));

    // The CockroachDB path: TLS by default (require), unnest bulk path, over real TLS.
    let mut s = c.settings(json!({"batch_rows": 10}));
    s.as_object_mut().unwrap().remove("sslmode");
    let cfg = isolated_config(lab, "cockroachdb", s);
    let mut b = PgBackend::open_cockroach_path_on_postgres(&cfg).unwrap_or_else(|e| panic!("{}", e.chain()));
    b.reset(&ns).unwrap();
    let recs: Vec<_> = (0..25).map(|i| record(i, 0, random_bytes(i, 700))).collect();
    assert_eq!(b.bulk_insert(&ns, &mut stream(recs.clone())).unwrap(), 25);
    assert_eq!(b.read_one(&ns, &recs[24].id).unwrap().as_deref(), Some(&recs[24].data[..]));
    b.teardown(&ns).unwrap();
    // …and refuses `prefer`, which could fall back to plaintext.
    let cfg = isolated_config(lab, "cockroachdb", c.settings(json!({"sslmode": "prefer"})));
    let e = err_text(PgBackend::open_cockroach_path_on_postgres(&cfg).map(|_| ()));
    assert!(e.contains("sslmode=prefer") && e.contains("needs TLS"), "{e}");
}

// ----- two servers behind one address -----

/// A round-robin TCP proxy on 127.0.0.1: connection n goes to `targets[n % len]`. Bounded:
/// at most 64 connections, stops on drop.
struct RoundRobinProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl RoundRobinProxy {
    fn start(targets: Vec<SocketAddr>) -> RoundRobinProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let accept = std::thread::spawn(move || {
            for (n, incoming) in listener.incoming().take(64).enumerate() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = incoming else { continue };
                let Ok(server) = TcpStream::connect_timeout(&targets[n % targets.len()], Duration::from_secs(5)) else {
                    continue;
                };
                pipe(client, server);
            }
        });
        RoundRobinProxy { addr, stop, accept: Some(accept) }
    }
}

fn pipe(a: TcpStream, b: TcpStream) {
    for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }
}

impl Drop for RoundRobinProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn preflight_detects_two_unreplicated_servers_behind_one_address() {
    let password = hex_token(12);
    let opts = ClusterOptions { password: Some(password.clone()), ..Default::default() };
    let Some(a) = cluster(&opts) else { return };
    let b = PgCluster::start(&opts).unwrap();
    let lab = "dedup_t_dual";
    let ns = ns(lab, 1);

    // Straight to one server: consistent, and as superuser settle really checkpoints.
    let mut direct = open_pg(&pg_config(lab, a.settings(json!({})))).unwrap();
    let report = direct.preflight(&ns).unwrap_or_else(|e| panic!("{}", e.chain()));
    let text = report.checks.join("\n");
    assert!(text.contains("4 fresh connections saw the same server (system identifier"), "{text}");
    assert!(text.contains("settle: CHECKPOINT"), "{text}");

    // Both behind one address, connections alternating between them.
    let proxy = RoundRobinProxy::start(vec![
        SocketAddr::from(([127, 0, 0, 1], a.port)),
        SocketAddr::from(([127, 0, 0, 1], b.port)),
    ]);
    let mut via = open_pg(&pg_config(lab, a.settings(json!({"port": proxy.addr.port()})))).unwrap();
    let err = via.preflight(&ns).map(|_| ()).unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Config), "the deployment must change");
    let e = err.chain();
    eprintln!("{e}");
    assert!(e.contains("several unreplicated servers answer behind this address"), "{e}");
    assert!(e.contains("fresh connection 1 of 4"), "{e}");
    assert!(e.contains("system identifier"), "{e}");
    assert!(!e.contains(&password));
    // The preflight dropped what it created, on the server it created it on.
    for c in [&a, &b] {
        let n = c.sql("postgres", &format!("SELECT count(*) FROM pg_namespace WHERE nspname = '{lab}'")).unwrap();
        assert_eq!(n[0].as_deref(), Some("0"));
    }
    drop(proxy);
}

// ----- faults -----

#[test]
fn silent_server_hits_the_connect_timeout() {
    // Accepts TCP (the kernel does, into the backlog) but never speaks.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_g, pw) = secret_file("s3cret-never-shown");
    let cfg = pg_config(
        "dedup_t_silent",
        json!({"host": "127.0.0.1", "port": port, "user": "u", "password_file": pw.to_str().unwrap(), "sslmode": "disable", "connect_timeout": 1}),
    );
    // The message proves the timeout fired (a broken timeout would hang here instead).
    let e = open_pg(&cfg).err().unwrap();
    eprintln!("{e}");
    assert!(
        e.starts_with(&format!("postgresql 127.0.0.1:{port}/u as u: connecting: no complete answer within 1 s")),
        "{e}"
    );
    assert!(!e.contains("s3cret-never-shown"));
    assert_eq!(open_class(&cfg), Some(ErrorClass::Timeout));
    drop(listener);
}

#[test]
fn unreachable_server_is_named_with_the_fix() {
    let port = free_port().unwrap();
    let cfg = pg_config("dedup_t_down", json!({"host": "127.0.0.1", "port": port, "user": "u", "sslmode": "disable"}));
    let e = open_pg(&cfg).err().unwrap();
    eprintln!("{e}");
    assert!(
        e.starts_with(&format!("postgresql 127.0.0.1:{port}/u as u: connecting: nothing accepts connections")),
        "{e}"
    );
    assert!(e.contains("is the server running"), "{e}");
    assert_eq!(open_class(&cfg), Some(ErrorClass::Unreachable));
}

#[test]
fn wrong_or_missing_password_and_missing_privileges() {
    let Some(c) = cluster(&ClusterOptions::default()) else {
        return;
    };
    let lab = "dedup_t_perm";
    let ns = ns(lab, 1);

    let wrong = format!("wrong-{}", hex_token(6));
    let (_g, wrong_file) = secret_file(&wrong);
    let e = open_pg(&pg_config(lab, c.settings(json!({"password_file": wrong_file.to_str().unwrap()})))).err().unwrap();
    eprintln!("{e}");
    assert!(
        e.starts_with(&format!(
            "postgresql 127.0.0.1:{}/postgres as postgres: connecting: authentication failed",
            c.port
        )),
        "{e}"
    );
    assert!(!e.contains(&wrong) && !e.contains(&c.password), "{e}");
    let wrong_cfg = pg_config(lab, c.settings(json!({"password_file": wrong_file.to_str().unwrap()})));
    assert_eq!(open_class(&wrong_cfg), Some(ErrorClass::Authentication));

    let mut s = c.settings(json!({}));
    s.as_object_mut().unwrap().remove("password_file");
    let e = open_pg(&pg_config(lab, s.clone())).err().unwrap();
    eprintln!("{e}");
    assert!(e.contains("asks for a password but none is set; set $DEDUP_TEST_NO_SUCH_ENV_PASSWORD"), "{e}");
    assert_eq!(open_class(&pg_config(lab, s)), Some(ErrorClass::Authentication));

    // A role that may log in but not create schemas in the database.
    let pw = hex_token(8);
    c.sql("postgres", &format!("CREATE ROLE dedup_noperm LOGIN PASSWORD '{pw}'")).unwrap();
    c.sql("postgres", "CREATE DATABASE labdb").unwrap();
    let (_g2, pw_file) = secret_file(&pw);
    let cfg = pg_config(
        lab,
        c.settings(json!({"user": "dedup_noperm", "database": "labdb", "password_file": pw_file.to_str().unwrap()})),
    );
    let mut b = open_pg(&cfg).unwrap();
    let e = err_text(b.reset(&ns));
    eprintln!("{e}");
    assert!(e.starts_with(&format!("postgresql 127.0.0.1:{}/labdb as dedup_noperm: resetting schema", c.port)), "{e}");
    assert!(e.contains("GRANT CREATE ON DATABASE labdb TO dedup_noperm"), "{e}");
    assert!(!e.contains(&pw));
    assert_eq!(class_of(b.reset(&ns)), Some(ErrorClass::Permission));
    let e = err_text(b.preflight(&ns));
    assert!(e.contains("permission denied"), "{e}");
    // Once granted, it works.
    c.sql("postgres", "GRANT CREATE ON DATABASE labdb TO dedup_noperm").unwrap();
    b.reset(&ns).unwrap();
    b.teardown(&ns).unwrap();
}

#[test]
fn teardown_never_cascades_outside_the_lab() {
    let Some(c) = cluster(&ClusterOptions::default()) else {
        return;
    };
    let lab = "dedup_t_cascade";
    let ns = ns(lab, 1);
    let mut b = open_pg(&pg_config(lab, c.settings(json!({})))).unwrap();
    b.reset(&ns).unwrap();
    c.sql("postgres", &format!("CREATE VIEW public.outside_view AS SELECT k FROM {lab}.c0")).unwrap();
    let e = err_text(b.teardown(&ns));
    eprintln!("{e}");
    assert!(e.contains("never cascades") && e.contains("outside_view"), "{e}");
    assert!(err_text(b.reset(&ns)).contains("outside_view"));
    let views = c.sql("postgres", "SELECT count(*) FROM pg_views WHERE viewname = 'outside_view'").unwrap();
    assert_eq!(views[0].as_deref(), Some("1"), "the view outside the lab must survive");
    c.sql("postgres", "DROP VIEW public.outside_view").unwrap();
    b.teardown(&ns).unwrap();
    let n = c.sql("postgres", &format!("SELECT count(*) FROM pg_namespace WHERE nspname = '{lab}'")).unwrap();
    assert_eq!(n[0].as_deref(), Some("0"));
}

#[test]
fn data_paths_follow_the_relation_files_through_vacuum_full() {
    let Some(c) = cluster(&ClusterOptions::default()) else {
        return;
    };
    let lab = "dedup_t_files";
    let ns = ns(lab, 2);
    let data_dir = c.data_dir();
    let mut b = open_pg(&pg_config(lab, c.settings(json!({"data_dir": data_dir.to_str().unwrap()})))).unwrap();
    b.reset(&ns).unwrap();
    let recs: Vec<_> = (0..120).map(|i| record(i, (i % 2) as u8, random_bytes(i, 6000))).collect();
    assert_eq!(b.bulk_insert(&ns, &mut stream(recs.clone())).unwrap(), 120);
    b.settle(&ns).unwrap();
    assert_eq!(b.sizes(&ns).unwrap().details["settle"], "CHECKPOINT");
    // A plain VACUUM (not part of the backend) adds visibility-map forks: they are included.
    c.sql("postgres", &format!("VACUUM {lab}.c0")).unwrap();
    let before = b.data_paths(&ns).unwrap();
    assert!(before.iter().any(|p| p.to_string_lossy().ends_with("_vm")), "{before:?}");
    assert!(before.len() >= 8 && before.iter().all(|p| p.starts_with(&data_dir) && p.exists()), "{before:?}");
    let bytes = |ps: &[std::path::PathBuf]| ps.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum::<u64>();
    let before_bytes = bytes(&before);
    assert!(before_bytes >= 120 * 6000, "{before_bytes}");
    for r in recs.iter().skip(10) {
        b.delete_one(&ns, &r.id).unwrap();
    }
    b.maintenance(&ns).unwrap();
    b.settle(&ns).unwrap();
    let after = b.data_paths(&ns).unwrap();
    assert!(after.iter().all(|p| p.exists()), "{after:?}");
    assert!(after.iter().all(|p| !before.contains(p)), "VACUUM FULL writes new files: {before:?} / {after:?}");
    // The old files are truncated at commit and unlinked after a later checkpoint.
    let old_left: u64 = before.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    assert_eq!(old_left, 0, "{before:?}");
    assert!(bytes(&after) < before_bytes / 4, "{before_bytes} -> {}", bytes(&after));

    // A data_dir that is not this server's is refused, not silently counted as 0.
    let other = tempfile::tempdir().unwrap();
    let mut b2 = open_pg(&pg_config(lab, c.settings(json!({"data_dir": other.path().to_str().unwrap()})))).unwrap();
    let e = err_text(b2.data_paths(&ns));
    assert!(e.contains("does not hold") && e.contains("SHOW data_directory"), "{e}");
    b.teardown(&ns).unwrap();
}

#[test]
fn server_dying_mid_stage_is_a_clear_error_and_the_next_call_reconnects() {
    let Some(mut c) = cluster(&ClusterOptions::default()) else {
        return;
    };
    let lab = "dedup_t_dies";
    let ns = ns(lab, 1);
    let password = c.password.clone();
    let endpoint = format!("postgresql 127.0.0.1:{}/postgres as postgres", c.port);
    let mut b = open_pg(&pg_config(lab, c.settings(json!({"connect_timeout": 3})))).unwrap();
    b.reset(&ns).unwrap();
    assert_eq!(b.insert_one(&ns, &record(0, 0, b"kept".to_vec())).unwrap(), 1);

    // The server stops while a bulk COPY streams.
    let mut records = (1..400u64).map(|i| {
        if i == 100 {
            c.stop();
        }
        Ok(record(i, 0, random_bytes(i, 4000)))
    });
    let err = b.bulk_insert(&ns, &mut records).unwrap_err();
    drop(records);
    assert_eq!(err.class(), Some(ErrorClass::ConnectionLost));
    let e = err.chain();
    eprintln!("{e}");
    assert!(e.starts_with(&endpoint), "{e}");
    assert!(e.contains("the connection to the server was lost"), "{e}");

    // While it is down: a clear connect error.
    let err = b.count(&ns).unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Unreachable));
    let e = err.chain();
    eprintln!("{e}");
    assert!(e.starts_with(&format!("{endpoint}: connecting: nothing accepts connections")), "{e}");
    assert!(!e.contains(&password));

    // Back up: the next call reconnects; the aborted COPY left nothing behind.
    c.start_again().unwrap();
    assert_eq!(b.count(&ns).unwrap(), 1);
    assert_eq!(b.read_one(&ns, &record(0, 0, vec![]).id).unwrap().as_deref(), Some(&b"kept"[..]));

    // A stop between two calls is reported by the call that finds it.
    c.stop();
    let err = b.insert_one(&ns, &record(1, 0, b"x".to_vec())).unwrap_err();
    let class = err.class();
    let e = err.chain();
    eprintln!("{e}");
    // Depending on whether the driver noticed the server's goodbye before the call: lost
    // connection, or (after noticing) a refused reconnect.
    assert!(e.starts_with(&endpoint), "{e}");
    if e.contains("the connection to the server was lost") {
        assert_eq!(class, Some(ErrorClass::ConnectionLost), "{e}");
    } else {
        assert!(e.contains("nothing accepts connections"), "{e}");
        assert_eq!(class, Some(ErrorClass::Unreachable), "{e}");
    }
    assert!(!e.contains(&password));
}
