//! The Redis backend against REAL servers started by `scripts/services.sh up redis`: a
//! standalone server and a 3-master cluster, both used through the ACL user `dedup`
//! (`~dedup:* +@all -@dangerous +save +config|get`), never the default user. The default
//! (admin) user appears only to ask the servers themselves what exists (`redis-cli --scan`).
//! Fault tests that kill a node start a throwaway cluster of their own in a temp dir.
//! Skips without `DEDUP_REDIS_*` unless `DEDUP_LAB_REQUIRE_SERVERS=1`.

use crate::support::journal;
use dedup_lab_backends::{BackendConfig, conformance};
use dedup_lab_core::{
    BackendError, CellStatus, ErrorClass, JournalLine, LabName, Namespace, Operation, Stage, SystemKind,
};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VARS: &[&str] = &[
    "DEDUP_REDIS_HOST",
    "DEDUP_REDIS_PORT",
    "DEDUP_REDIS_USER",
    "DEDUP_REDIS_PASSWORD",
    "DEDUP_REDIS_CLUSTER_PORT",
    "DEDUP_REDIS_ADMIN_PASSWORD",
];

struct Env {
    host: String,
    port: u16,
    cluster_port: u16,
    admin_password: String,
}

fn env() -> Option<Env> {
    let v = crate::support::server_env("redis", VARS)?;
    Some(Env {
        host: v[0].clone(),
        port: v[1].parse().unwrap(),
        cluster_port: v[4].parse().unwrap(),
        admin_password: v[5].clone(),
    })
}

fn config(lab: &str, settings: serde_json::Value) -> BackendConfig {
    BackendConfig::new(lab.parse().unwrap(), "redis", "DEDUP_REDIS", settings, std::env::temp_dir())
}

/// Asks the server itself, as the admin, for the keys matching `pattern` on `port`.
fn admin_scan(env: &Env, port: u16, pattern: &str) -> Vec<String> {
    let out = Command::new("redis-cli")
        .env("REDISCLI_AUTH", &env.admin_password)
        .args(["--no-auth-warning", "-h", &env.host, "-p", &port.to_string(), "--scan", "--pattern", pattern])
        .output()
        .expect("redis-cli runs (installed by scripts/services.sh)");
    assert!(out.status.success(), "redis-cli: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn admin(env: &Env, port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .env("REDISCLI_AUTH", &env.admin_password)
        .args(["--no-auth-warning", "-h", &env.host, "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every master's port: the standalone server, or the three masters of the cluster.
fn ports(env: &Env, cluster: bool) -> Vec<u16> {
    if cluster { (0..3).map(|i| env.cluster_port + i).collect() } else { vec![env.port] }
}

fn conforms(cluster: bool, lab: &str) {
    let Some(env) = env() else { return };
    let port = if cluster { env.cluster_port } else { env.port };
    let cfg = config(lab, serde_json::json!({ "port": port }));
    let variants = dedup_lab_backends::variants(SystemKind::Redis, &cfg).unwrap();
    conformance::check_variants(&variants, &mut |v| dedup_lab_backends::open(SystemKind::Redis, v, &cfg), "zstd");
    let mut b =
        dedup_lab_backends::open(SystemKind::Redis, "default", &cfg).unwrap_or_else(|e| panic!("{}", e.chain()));
    if cluster {
        assert!(b.endpoint().contains("cluster of 3 masters"), "{}", b.endpoint());
    }
    let masters = ports(&env, cluster);
    let mut leftovers =
        |ns: &Namespace| masters.iter().any(|p| !admin_scan(&env, *p, &format!("dedup:{}:*", ns.lab())).is_empty());
    conformance::run_suite(b.as_mut(), &mut conformance::Suite { lab, leftovers: &mut leftovers });
    let native = format!("{lab}_native");
    conformance::run_native_suite(b.as_mut(), &native);
    assert!(!leftovers(&Namespace::new(&native.parse().unwrap(), 2)), "the native suite left keys");
}

#[test]
fn redis_standalone_conforms() {
    conforms(false, "dedup_t_redis_standalone");
}

#[test]
fn redis_cluster_conforms() {
    conforms(true, "dedup_t_redis_cluster");
}

// ----- the CLI against the real servers -----

fn cli(args: &[&str], envs: &[(&str, String)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dedup-lab"));
    for (k, v) in envs {
        c.env(k, v);
    }
    c.args(args).stdin(Stdio::null()).output().unwrap()
}

fn write_config(dir: &Path, lab: &str, settings: &str) -> String {
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, format!("lab = \"{lab}\"\n\n[systems.redis]\n{settings}")).unwrap();
    cfg.to_str().unwrap().to_string()
}

/// Every stage (with refill), both insertion modes, both placements, by memory and by the
/// RDB file, on the standalone server and on the cluster: every cell valid, rows counted
/// by the server, the RDB probe labelled `fs`, and nothing left under the lab's prefix.
#[test]
fn full_runs_on_standalone_and_cluster_by_memory_and_by_rdb() {
    let Some(env) = env() else { return };
    for (cluster, probe) in [(false, "internal"), (false, "fs"), (true, "internal"), (true, "fs")] {
        let port = if cluster { env.cluster_port } else { env.port };
        let lab = format!("dedup_t_redis_run_{}_{probe}", if cluster { "cluster" } else { "standalone" });
        let tmp = tempfile::tempdir().unwrap();
        let cfg = write_config(tmp.path(), &lab, &format!("port = {port}\nprobe = \"{probe}\"\n"));
        let results = tmp.path().join("r");
        let out = cli(
            &[
                "run",
                "--config",
                &cfg,
                "--results",
                results.to_str().unwrap(),
                "--systems",
                "redis",
                "--stages",
                "bulk_insert,perfile_insert,perfile_delete,maintenance,refill",
                "--insertion-mode",
                "both",
                "--placements",
                "within,across",
                "--payload-types",
                "structured_json,text_document",
                "--grades",
                "U50",
                "--records",
                "6",
                "--record-size",
                "16KiB",
            ],
            &[],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let lines = journal(&results);
        let mut cells = 0;
        for l in &lines {
            match l {
                JournalLine::Cell { status, reason, cell, .. } => {
                    cells += 1;
                    assert_eq!(*status, CellStatus::Ok, "{cell}: {reason:?}");
                }
                JournalLine::Stage(m) => {
                    assert!(m.valid, "{}: {:?}", m.cell, m.invalid_reasons);
                    assert!(m.physical.method.starts_with(probe), "{}: {}", m.cell, m.physical.method);
                    if m.stage == Stage::Maintenance {
                        assert!(m.notes.iter().any(|n| n.contains("MEMORY PURGE")), "{:?}", m.notes);
                    }
                    if m.cell.mode == dedup_lab_core::InsertionMode::Native && m.stage == Stage::BulkInsert {
                        assert!(
                            m.notes
                                .iter()
                                .any(|n| n.contains("one hash per record") || n.contains("one string per record")),
                            "{:?}",
                            m.notes
                        );
                    }
                }
            }
        }
        assert_eq!(cells, 8, "2 payloads × 2 modes × 2 placements (cluster {cluster}, {probe})");
        for p in ports(&env, cluster) {
            assert!(admin_scan(&env, p, &format!("dedup:{lab}:*")).is_empty(), "keys left on {p}");
        }
    }
}

/// A byte budget below a cell's size skips it (journaled, never half-written).
#[test]
fn a_byte_budget_skips_cells_before_anything_is_written() {
    let Some(env) = env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let lab = "dedup_t_redis_budget";
    let cfg = write_config(tmp.path(), lab, &format!("port = {}\nmax_bytes = \"10KiB\"\n", env.port));
    let results = tmp.path().join("r");
    let out = cli(
        &[
            "run",
            "--config",
            &cfg,
            "--results",
            results.to_str().unwrap(),
            "--systems",
            "redis",
            "--payload-types",
            "uuid_keys",
            "--grades",
            "U0",
            "--records",
            "4",
            "--record-size",
            "16KiB",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = journal(&results);
    assert!(lines.iter().all(|l| matches!(l, JournalLine::Cell { status: CellStatus::Skipped, .. })), "{lines:?}");
    assert!(admin_scan(&env, env.port, &format!("dedup:{lab}:*")).is_empty());
}

// ----- faults -----

/// A wrong password: an authentication error naming the endpoint and where the password
/// came from, never the password; the run journals the failed cells and goes on with the
/// next system.
#[test]
fn a_wrong_password_fails_its_cells_and_the_run_goes_on() {
    let Some(env) = env() else { return };
    let wrong = "wrong-redis-pw-0815".to_string();
    let pwdir = tempfile::tempdir().unwrap();
    let pwfile = pwdir.path().join("pw");
    std::fs::write(&pwfile, &wrong).unwrap();
    let cfg = config("dedup_t_redis_wrongpw", serde_json::json!({ "port": env.port, "password_file": pwfile }));
    let e = match dedup_lab_backends::open(SystemKind::Redis, "default", &cfg) {
        Ok(_) => panic!("a wrong password must fail"),
        Err(e) => e,
    };
    assert_eq!(e.class(), Some(ErrorClass::Authentication), "{}", e.chain());
    assert!(
        e.chain().contains(&format!("password_file {}", pwfile.display()))
            && e.chain().contains(&format!(":{}", env.port)),
        "{}",
        e.chain()
    );
    assert!(!e.chain().contains(&wrong));

    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("r");
    let out = cli(
        &[
            "run",
            "--results",
            results.to_str().unwrap(),
            "--systems",
            "redis,sqlite",
            "--payload-types",
            "uuid_keys",
            "--grades",
            "U50",
            "--records",
            "4",
            "--record-size",
            "4KiB",
        ],
        &[("DEDUP_REDIS_PASSWORD", wrong.clone())],
    );
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("WRONGPASS") && all.contains("$DEDUP_REDIS_PASSWORD"), "{all}");
    assert!(!all.contains(&wrong), "the password was printed");
    let text = std::fs::read_to_string(crate::support::run_dir(&results).join("measurements.jsonl")).unwrap();
    assert!(!text.contains(&wrong), "the password was journaled");
    for l in journal(&results) {
        if let JournalLine::Cell { cell, status, .. } = l {
            let want = if cell.system == SystemKind::Redis { CellStatus::Failed } else { CellStatus::Ok };
            assert_eq!(status, want, "{cell}");
        }
    }
}

/// A command the ACL denies: the user `dedup_limited` (`~dedup:* +@all -@dangerous`, none of
/// the extras) cannot read where the RDB file is. Preflight names the command and the rule
/// that allows it; a run by the RDB file fails its cells with that message, journals them,
/// goes on, and cleanup of `dedup:*` still works with the same user. By memory the same
/// user measures everything: `+@all -@dangerous` is all a memory run needs.
#[test]
fn a_command_the_acl_denies_is_named_with_the_rule_that_allows_it() {
    let Some(env) = env() else { return };
    let Ok(limited) = std::env::var("DEDUP_REDIS_LIMITED_USER") else {
        assert!(!crate::support::servers_required(), "DEDUP_REDIS_LIMITED_USER unset");
        return;
    };
    let lab = "dedup_t_redis_acl";
    let cfg = config(lab, serde_json::json!({ "port": env.port, "user": limited, "probe": "fs" }));
    let mut b = dedup_lab_backends::open(SystemKind::Redis, "default", &cfg).unwrap();
    let e = b.preflight(&Namespace::new(&lab.parse().unwrap(), 2)).unwrap_err();
    assert_eq!(e.class(), Some(ErrorClass::Permission), "{}", e.chain());
    assert!(e.chain().contains(&format!("ACL SETUSER {limited} +config|get")), "{}", e.chain());

    let tmp = tempfile::tempdir().unwrap();
    let cfg_file =
        write_config(tmp.path(), lab, &format!("port = {}\nuser = \"{limited}\"\nprobe = \"fs\"\n", env.port));
    let results = tmp.path().join("r");
    let out = cli(
        &[
            "run",
            "--config",
            &cfg_file,
            "--results",
            results.to_str().unwrap(),
            "--systems",
            "redis",
            "--payload-types",
            "uuid_keys,text_document",
            "--grades",
            "U50",
            "--records",
            "4",
            "--record-size",
            "4KiB",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let lines = journal(&results);
    let failed: Vec<_> = lines
        .iter()
        .filter_map(|l| match l {
            JournalLine::Cell { status: CellStatus::Failed, reason, .. } => reason.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 2, "both cells ran (the run went on) and failed: {lines:?}");
    assert!(failed.iter().all(|r| r.contains("+config|get") && r.contains("NOPERM")), "{failed:?}");
    let out =
        cli(&["cleanup", "--config", &cfg_file, "--results", tmp.path().to_str().unwrap(), "--systems", "redis"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(admin_scan(&env, env.port, &format!("dedup:{lab}:*")).is_empty());

    // By memory, the confined user needs nothing more.
    let cfg = config(lab, serde_json::json!({ "port": env.port, "user": limited }));
    let mut b = dedup_lab_backends::open(SystemKind::Redis, "default", &cfg).unwrap();
    assert_eq!(b.unsupported(Operation::Maintenance), None);
    b.preflight(&Namespace::new(&lab.parse().unwrap(), 2)).unwrap_or_else(|e| panic!("{}", e.chain()));
}

/// A record outside the configured ACL pattern cannot even be named: every key comes from
/// the lab prefix. And a user whose ACL lacks the prefix gets NOPERM named with `~dedup:*`.
#[test]
fn keys_outside_the_acl_pattern_are_refused_by_the_server_with_the_rule() {
    let Some(env) = env() else { return };
    // The admin makes a user that may touch only other:* keys (dropped again below).
    let pw = "acl-test-pw-42";
    let user = "dedup_t_wrong_keys";
    assert_eq!(
        admin(&env, env.port, &["ACL", "SETUSER", user, "on", &format!(">{pw}"), "~other:*", "+@all", "-@dangerous"]),
        "OK"
    );
    let pwdir = tempfile::tempdir().unwrap();
    std::fs::write(pwdir.path().join("pw"), pw).unwrap();
    let cfg = config(
        "dedup_t_redis_keys",
        serde_json::json!({ "port": env.port, "user": user, "password_file": pwdir.path().join("pw") }),
    );
    let mut b = dedup_lab_backends::open(SystemKind::Redis, "default", &cfg).unwrap();
    let e = b.reset(&Namespace::new(&"dedup_t_redis_keys".parse().unwrap(), 1)).unwrap_err();
    admin(&env, env.port, &["ACL", "DELUSER", user]);
    assert_eq!(e.class(), Some(ErrorClass::Permission), "{}", e.chain());
    assert!(e.chain().contains(&format!("ACL SETUSER {user} ~dedup:*")), "{}", e.chain());
}

// ----- a throwaway cluster whose nodes a test may kill -----

/// Three cluster masters in a temp dir on free ports, with the same ACL users as the
/// shared servers. Dropped: every node is killed.
struct Throwaway {
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    nodes: Vec<Option<Child>>,
    admin_pw: String,
    user_pw: String,
}

fn free_port() -> u16 {
    // The cluster bus listens on port + 10000: take an ephemeral port at most 55535 whose
    // bus port is free as well.
    for _ in 0..200 {
        let p = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port();
        if p <= 55535 && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair below 55535");
}

impl Throwaway {
    fn start() -> Option<Throwaway> {
        if Command::new("redis-server").arg("--version").output().is_err() {
            assert!(!crate::support::servers_required(), "redis-server is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut t = Throwaway {
            dir,
            ports: Vec::new(),
            nodes: Vec::new(),
            admin_pw: "admin-pw-t".into(),
            user_pw: "user-pw-t".into(),
        };
        while t.ports.len() < 3 {
            let p = free_port();
            if !t.ports.contains(&p) {
                t.ports.push(p);
                t.nodes.push(None);
            }
        }
        for i in 0..3 {
            t.start_node(i);
        }
        for i in 0..3 {
            t.wait(i, "PING", "PONG");
        }
        let addrs: Vec<String> = t.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .env("REDISCLI_AUTH", &t.admin_pw)
            .args(["--no-auth-warning", "--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(out.status.success(), "cluster create: {}", String::from_utf8_lossy(&out.stdout));
        for i in 0..3 {
            t.wait(i, "CLUSTER INFO", "cluster_state:ok");
        }
        Some(t)
    }

    fn start_node(&mut self, i: usize) {
        let d = self.dir.path().join(format!("n{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let conf = d.join("redis.conf");
        std::fs::write(
            &conf,
            format!(
                "bind 127.0.0.1\nport {}\ndir {}\ncluster-enabled yes\ncluster-config-file nodes.conf\n\
                 cluster-node-timeout 2000\nsave \"\"\nappendonly no\nuser default on >{} ~* &* +@all\n\
                 user dedup on >{} ~dedup:* resetchannels +@all -@dangerous +save +config|get\n",
                self.ports[i],
                d.display(),
                self.admin_pw,
                self.user_pw
            ),
        )
        .unwrap();
        let child =
            Command::new("redis-server").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        self.nodes[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Waits (bounded) until `cmd` on node `i` answers with text containing `want`.
    fn wait(&self, i: usize, cmd: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("redis-cli")
                .env("REDISCLI_AUTH", &self.admin_pw)
                .args(["--no-auth-warning", "-p", &self.ports[i].to_string()])
                .args(cmd.split(' '))
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains(want) {
                return;
            }
            assert!(Instant::now() < deadline, "node {i}: `{cmd}` never answered {want}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn config(&self, lab: &str) -> BackendConfig {
        let pw = self.dir.path().join("user.pw");
        std::fs::write(&pw, &self.user_pw).unwrap();
        config(lab, serde_json::json!({ "port": self.ports[0], "user": "dedup", "password_file": pw, "batch_rows": 8 }))
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// A master killed in the middle of a bulk insert: the stage fails with a connection
/// error that names the node; once the node is back, the same backend cleans the lab's
/// keys and the next stage runs.
#[test]
fn a_cluster_node_killed_mid_stage_fails_the_stage_and_the_run_recovers() {
    if env().is_none() {
        return;
    }
    let Some(mut t) = Throwaway::start() else { return };
    let lab: LabName = "dedup_t_redis_kill".parse().unwrap();
    let ns = Namespace::new(&lab, 2);
    let mut b = dedup_lab_backends::open(SystemKind::Redis, "default", &t.config(lab.as_str())).unwrap();
    b.reset(&ns).unwrap();
    let victim = t.ports[2];
    let mut sent = 0u64;
    let result = {
        let t = &mut t;
        let mut recs = (0..400u64).map(|i| {
            sent += 1;
            if i == 200 {
                t.kill(2);
            }
            Ok::<_, BackendError>(conformance::record(i, (i % 2) as u8, 1024))
        });
        b.bulk_insert(&ns, &mut recs)
    };
    let e = result.expect_err("a bulk insert across a killed master must fail");
    assert!(sent > 200, "the node died mid-stage");
    assert!(
        matches!(e.class(), Some(ErrorClass::ConnectionLost | ErrorClass::Unreachable)),
        "{:?}: {}",
        e.class(),
        e.chain()
    );
    assert!(e.chain().contains(&format!("127.0.0.1:{victim}")), "names the node: {}", e.chain());

    // Preflight names the master that is gone.
    let e = b.preflight(&ns).expect_err("preflight with a dead master must fail");
    assert!(e.chain().contains(&format!("master 127.0.0.1:{victim} is not reachable")), "{}", e.chain());

    t.start_node(2);
    for i in 0..3 {
        t.wait(i, "CLUSTER INFO", "cluster_state:ok");
    }
    b.drop_lab(&lab).unwrap_or_else(|e| panic!("cleanup after the restart: {}", e.chain()));
    assert_eq!(b.count(&ns).unwrap(), 0);
    let mut recs = (0..50u64).map(|i| Ok::<_, BackendError>(conformance::record(i, 0, 1024)));
    assert_eq!(b.bulk_insert(&ns, &mut recs).unwrap(), 50, "the run continues");
    b.teardown(&ns).unwrap();
}

// ----- throwaway standalone servers: TLS, and a cold step that restarts from the RDB -----

/// One standalone server in a temp dir, started from `conf` (extra config lines).
struct Standalone {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Standalone {
    fn start(dir: tempfile::TempDir, port: u16, conf: &str, ping: &[&str]) -> Standalone {
        let file = dir.path().join("redis.conf");
        std::fs::write(
            &file,
            format!(
                "bind 127.0.0.1\ndir {}\ndbfilename dump.rdb\nappendonly no\nuser default on >admin-pw-t ~* &* +@all\n\
                 user dedup on >user-pw-t ~dedup:* resetchannels +@all -@dangerous +save +config|get\n{conf}",
                dir.path().display()
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("user.pw"), "user-pw-t").unwrap();
        let child =
            Command::new("redis-server").arg(&file).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let s = Standalone { dir, child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("redis-cli")
                .env("REDISCLI_AUTH", "admin-pw-t")
                .args(["--no-auth-warning", "-p", &port.to_string()])
                .args(ping)
                .arg("PING")
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains("PONG") {
                return s;
            }
            assert!(Instant::now() < deadline, "the throwaway server on {port} never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn redis_installed() -> bool {
    let ok = Command::new("redis-server").arg("--version").output().is_ok();
    assert!(ok || !crate::support::servers_required(), "redis-server is not installed");
    ok
}

/// TLS (Debian's redis-server is built with it): `verify-full` against a CA made here
/// works end to end; a CA that did not sign the server's certificate is a configuration
/// error that names `sslrootcert`; `prefer` is refused (Redis has no opportunistic TLS).
#[test]
fn tls_verify_full_works_and_a_wrong_ca_is_explained() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
    if env().is_none() || !redis_installed() {
        return;
    }
    let ca = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
    };
    let issuer = ca("dedup-lab test CA");
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = p.signed_by(&key, &issuer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    std::fs::write(d.join("ca.pem"), issuer.pem()).unwrap();
    std::fs::write(d.join("other-ca.pem"), ca("another CA").pem()).unwrap();
    std::fs::write(d.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(d.join("server.key"), key.serialize_pem()).unwrap();
    let port = free_port();
    let conf = format!(
        "port 0\ntls-port {port}\ntls-cert-file {0}/server.pem\ntls-key-file {0}/server.key\n\
         tls-ca-cert-file {0}/ca.pem\ntls-auth-clients no\n",
        d.display()
    );
    let ca_arg = format!("{}/ca.pem", d.display());
    let server = Standalone::start(dir, port, &conf, &["--tls", "--cacert", &ca_arg]);
    let settings = |ca: &str| {
        serde_json::json!({ "host": "localhost", "port": port, "user": "dedup", "password_file": server.dir.path().join("user.pw"),
                            "sslmode": "verify-full", "sslrootcert": server.dir.path().join(ca) })
    };
    let lab = "dedup_t_redis_tls";
    let mut b = dedup_lab_backends::open(SystemKind::Redis, "default", &config(lab, settings("ca.pem")))
        .unwrap_or_else(|e| panic!("{}", e.chain()));
    let ns = Namespace::new(&lab.parse().unwrap(), 1);
    b.reset(&ns).unwrap();
    let mut recs = (0..20u64).map(|i| Ok::<_, BackendError>(conformance::record(i, 0, 4096)));
    assert_eq!(b.bulk_insert(&ns, &mut recs).unwrap(), 20);
    assert_eq!(
        b.read_one(&ns, &conformance::record(3, 0, 4096).id).unwrap(),
        Some(conformance::record(3, 0, 4096).data)
    );
    b.preflight(&ns).unwrap_or_else(|e| panic!("{}", e.chain()));

    let e = match dedup_lab_backends::open(SystemKind::Redis, "default", &config(lab, settings("other-ca.pem"))) {
        Ok(_) => panic!("a CA that did not sign the certificate must be refused"),
        Err(e) => e,
    };
    assert_eq!(e.class(), Some(ErrorClass::Config), "{}", e.chain());
    assert!(e.chain().contains("not signed by the CA in sslrootcert"), "{}", e.chain());
    let mut prefer = settings("ca.pem");
    prefer["sslmode"] = "prefer".into();
    prefer.as_object_mut().unwrap().remove("sslrootcert");
    let e = dedup_lab_backends::open(SystemKind::Redis, "default", &config(lab, prefer)).err().unwrap();
    assert!(e.chain().contains("nothing to prefer"), "{}", e.chain());
}

/// Cold cells: the `cold_command` restarts the server (`SHUTDOWN SAVE`, start again), which
/// loads its RDB file; every stage stays valid, the data survives the restart (the delete
/// stage finds every record), and the server really restarted (a new run id each time).
#[test]
fn a_cold_command_restarts_the_server_from_its_rdb_file() {
    if env().is_none() || !redis_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Standalone::start(
        dir,
        port,
        &format!("port {port}\ndaemonize yes\npidfile redis.pid\nlogfile redis.log\n"),
        &[],
    );
    let d = server.dir.path().to_path_buf();
    let log = d.join("run_ids.log");
    let cli_admin = format!("REDISCLI_AUTH=admin-pw-t redis-cli --no-auth-warning -p {port}");
    // Restart from the RDB file, then note the new server's run id.
    let command = format!(
        "{cli_admin} SHUTDOWN SAVE >/dev/null 2>&1; redis-server {conf} && \
         until {cli_admin} PING 2>/dev/null | grep -q PONG; do sleep 0.05; done && \
         {cli_admin} INFO server | grep run_id >> {log}",
        conf = d.join("redis.conf").display(),
        log = log.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        "dedup_t_redis_cold",
        &format!(
            "port = {port}\nuser = \"dedup\"\npassword_file = {:?}\ncold_command = {command:?}\ncold_timeout = 60\n",
            d.join("user.pw").display().to_string()
        ),
    );
    let results = tmp.path().join("r");
    let out = cli(
        &[
            "run",
            "--config",
            &cfg,
            "--results",
            results.to_str().unwrap(),
            "--systems",
            "redis",
            "--caches",
            "cold",
            "--stages",
            "bulk_insert,perfile_insert,perfile_delete",
            "--payload-types",
            "text_document",
            "--grades",
            "U50",
            "--records",
            "6",
            "--record-size",
            "16KiB",
        ],
        &[],
    );
    // The daemonized server outlives the child handle: stop it by its pid file.
    let stop = || {
        let _ = Command::new("sh").arg("-c").arg(format!("{cli_admin} SHUTDOWN NOSAVE")).output();
    };
    if !out.status.success() {
        stop();
        panic!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    let lines = journal(&results);
    stop();
    for l in &lines {
        match l {
            JournalLine::Stage(m) => {
                assert!(m.valid, "{}: {:?}", m.cell, m.invalid_reasons);
                assert!(m.notes.iter().any(|n| n.contains("cold")), "{:?}", m.notes);
            }
            JournalLine::Cell { status, reason, .. } => assert_eq!(*status, CellStatus::Ok, "{reason:?}"),
        }
    }
    let ids: std::collections::BTreeSet<String> =
        std::fs::read_to_string(&log).unwrap().lines().map(str::to_string).collect();
    assert!(ids.len() >= 3, "the server restarted before each of the 3 stages: {ids:?}");
}
