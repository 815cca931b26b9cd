//! ClickHouse against the REAL local server of `scripts/services.sh up clickhouse` (18.16):
//! the shared conformance suite in every variant (blob and native mode), the codec variant
//! refused on a server without codecs, faults, ground truth and CLI runs. Whether a lab is
//! left behind is asked of the server itself (over HTTP as the admin user, with curl), not
//! of the backend.
//!
//! Without the server these tests print why and pass; under `scripts/test.sh`
//! (`DEDUP_LAB_REQUIRE_SERVERS=1`) a missing server fails them. The test user may use only
//! `dedup_lab` and `dedup_t_ch_0` … `dedup_t_ch_9`; each test has its own lab (`_9`: `secrets.rs`).

use dedup_lab_backends::{BackendConfig, conformance};
use dedup_lab_core::{Backend, ErrorClass, Namespace, SystemKind};
use std::process::Command;

const VARS: &[&str] = &[
    "DEDUP_CLICKHOUSE_HOST",
    "DEDUP_CLICKHOUSE_PORT",
    "DEDUP_CLICKHOUSE_USER",
    "DEDUP_CLICKHOUSE_PASSWORD",
    "DEDUP_CLICKHOUSE_ADMIN_PASSWORD",
    "DEDUP_CLICKHOUSE_DATA_DIR",
];

fn ch() -> Option<Vec<String>> {
    crate::support::server_env("clickhouse", VARS)
}

fn config(lab: &str, settings: serde_json::Value) -> BackendConfig {
    BackendConfig::new(lab.parse().unwrap(), "clickhouse", "DEDUP_CLICKHOUSE", settings, std::env::temp_dir())
}

fn open(lab: &str, variant: &str, settings: serde_json::Value) -> Box<dyn Backend> {
    dedup_lab_backends::open(SystemKind::Clickhouse, variant, &config(lab, settings))
        .unwrap_or_else(|e| panic!("{variant}: {}", e.chain()))
}

/// Runs `sql` on the server as the admin user (curl, password in a header read from stdin's
/// environment, never on the command line); returns the TabSeparated answer.
fn admin(env: &[String], sql: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--data-binary", "@-", "-H", "X-ClickHouse-User: default"])
        .arg("-H")
        .arg(format!("X-ClickHouse-Key: {}", env[4]))
        .arg(format!("http://{}:{}/", env[0], env[1]))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(sql.as_bytes())?;
            c.wait_with_output()
        })
        .expect("curl runs (installed by scripts/services.sh)");
    assert!(
        out.status.success(),
        "{sql}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn database_exists(env: &[String], db: &str) -> bool {
    admin(env, &format!("SELECT count() FROM system.databases WHERE name = '{db}'")) != "0"
}

#[test]
fn clickhouse_conforms_in_every_variant() {
    let Some(env) = ch() else { return };
    let lab = "dedup_t_ch_0";
    let cfg = config(lab, serde_json::json!({}));
    let variants = dedup_lab_backends::variants(SystemKind::Clickhouse, &cfg).unwrap();
    assert_eq!(variants, ["mergetree", "replacing"]);
    conformance::check_variants(
        &variants,
        &mut |v| dedup_lab_backends::open(SystemKind::Clickhouse, v, &cfg),
        "collapsingmergetree",
    );
    for variant in &variants {
        let mut b = open(lab, variant, serde_json::json!({}));
        let env2 = env.clone();
        let mut leftovers = move |ns: &Namespace| database_exists(&env2, ns.lab().as_str());
        conformance::run_suite(b.as_mut(), &mut conformance::Suite { lab, leftovers: &mut leftovers });
        conformance::run_native_suite(b.as_mut(), "dedup_t_ch_1");
        assert!(!database_exists(&env, "dedup_t_ch_1"), "{variant}: the native suite left its database");
    }
}

/// 18.16 has no column codecs: the codec variant is refused when it opens (so at preflight),
/// with a sentence naming the version it needs.
#[test]
fn the_codec_variant_is_refused_by_a_server_without_codecs() {
    let Some(_env) = ch() else { return };
    let cfg = config("dedup_t_ch_2", serde_json::json!({"variants": ["mergetree-zstd"]}));
    assert_eq!(dedup_lab_backends::variants(SystemKind::Clickhouse, &cfg).unwrap(), ["mergetree-zstd"]);
    let e = match dedup_lab_backends::open(SystemKind::Clickhouse, "mergetree-zstd", &cfg) {
        Ok(_) => panic!("18.16 has no codecs; the variant must be refused"),
        Err(e) => e,
    };
    let msg = e.chain();
    assert!(msg.contains("needs column codecs, which ClickHouse has from 19.1; this server is 18.16"), "{msg}");
    assert_eq!(e.class(), Some(ErrorClass::Config));
}

/// Runs `dedup-lab` with `envs` set; returns (exit code, stdout, stderr).
fn cli(envs: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dedup-lab"))
        .envs(envs.iter().copied())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config file holding `lab`, in `dir`.
fn lab_config(dir: &std::path::Path, lab: &str, extra: &str) -> String {
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, format!("lab = \"{lab}\"\n{extra}")).unwrap();
    cfg.to_str().unwrap().to_string()
}

#[test]
fn preflight_connects_creates_drops_and_checks_consistency() {
    let Some(env) = ch() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = lab_config(tmp.path(), "dedup_t_ch_4", "");
    let (code, stdout, stderr) = cli(&[], &["preflight", "--config", &cfg, "--systems", "clickhouse"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for want in ["ok      clickhouse/mergetree", "ok      clickhouse/replacing", "18.16", "fresh connections"] {
        assert!(stdout.contains(want), "{want}: {stdout}");
    }
    assert!(!database_exists(&env, "dedup_t_ch_4"), "preflight drops what it created");
    assert!(!format!("{stdout}{stderr}").contains(&env[3]), "the password was printed");
}

/// Issue point 10: random bytes at U90 kept by `ReplacingMergeTree` after `OPTIMIZE … FINAL`
/// take about a tenth of the bytes of U0 (EDR ≈ 10 within 15 %); plain `MergeTree` keeps
/// every copy (EDR ≈ 1). Physical sizes come from the table directories (the `fs` probe).
#[test]
fn ground_truth_replacing_mergetree_keeps_a_tenth_of_u90_and_mergetree_keeps_all() {
    let Some(_env) = ch() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = lab_config(tmp.path(), "dedup_t_ch_5", "");
    let results = tmp.path().join("r");
    let (code, stdout, stderr) = cli(
        &[],
        &[
            "run",
            "--config",
            &cfg,
            "--results",
            results.to_str().unwrap(),
            "--systems",
            "clickhouse",
            "--payload-types",
            "random_binary",
            "--grades",
            "U0,U90",
            "--records",
            "200",
            "--record-size",
            "64KiB",
            "--stages",
            "bulk_insert,maintenance",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let lines = crate::support::journal(&results);
    // (variant, grade) -> (logical bytes, bytes kept after maintenance above the empty table)
    let mut kept = std::collections::BTreeMap::new();
    let mut bulk = std::collections::BTreeMap::new();
    for m in crate::support::stages(&lines) {
        assert!(m.valid, "{}: {:?}", m.cell, m.invalid_reasons);
        assert!(m.physical.method.starts_with("fs"), "the table directories are probed: {}", m.physical.method);
        let key = (m.cell.variant.clone(), m.cell.grade.to_string());
        match m.stage {
            dedup_lab_core::Stage::BulkInsert => {
                assert_eq!(m.rows_reported, Some(200), "every batch is verified by count()");
                bulk.insert(key, (m.logical_bytes, m.physical.before));
            }
            dedup_lab_core::Stage::Maintenance => {
                assert!(m.notes.iter().any(|n| n.contains("OPTIMIZE TABLE … FINAL")), "{:?}", m.notes);
                let (logical, empty) = bulk[&key];
                kept.insert(key, (logical, m.physical.after - empty));
            }
            _ => {}
        }
    }
    assert_eq!(kept.len(), 4, "{kept:?}");
    let edr = |v: &str, g: &str| {
        let (logical, kept) = kept[&(v.to_string(), g.to_string())];
        logical as f64 / kept as f64
    };
    let ratio =
        |v: &str| kept[&(v.to_string(), "U0".to_string())].1 as f64 / kept[&(v.to_string(), "U90".into())].1 as f64;
    for (what, value, want, tol) in [
        ("replacing U90 EDR", edr("replacing", "U90"), 10.0, 0.15),
        ("replacing U0/U90 bytes", ratio("replacing"), 10.0, 0.15),
        ("mergetree U90 EDR", edr("mergetree", "U90"), 1.0, 0.1),
        ("mergetree U0 EDR", edr("mergetree", "U0"), 1.0, 0.1),
        ("replacing U0 EDR", edr("replacing", "U0"), 1.0, 0.1),
    ] {
        eprintln!("{what}: {value:.3}");
        assert!((value - want).abs() <= want * tol, "{what}: {value:.3}, expected {want} ± {:.0} %", tol * 100.0);
    }
}

/// Issue point 8, three faults through the CLI: each gives a clear error naming the
/// endpoint and its class, is journaled as a failed cell, and the run goes on (sqlite's
/// cells are measured). The password is never printed nor journaled.
#[test]
fn wrong_password_unreachable_host_and_no_create_fail_their_cells_and_the_run_goes_on() {
    let Some(env) = ch() else { return };
    let wrong = "definitely-wrong-ch-pw-4711";
    // (what, environment overrides, words the failed cell's reason must hold)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [&'a str]);
    let cases: [Case; 3] = [
        (
            "wrong password",
            vec![("DEDUP_CLICKHOUSE_PASSWORD", wrong)],
            &["authentication", "password", "DEDUP_CLICKHOUSE_PASSWORD"],
        ),
        ("unreachable", vec![("DEDUP_CLICKHOUSE_PORT", "1")], &["unreachable", "127.0.0.1:1", "is the server running"]),
        ("no CREATE", vec![("DEDUP_CLICKHOUSE_USER", "dedup_noddl")], &["permission", "code 392", "allow_ddl"]),
    ];
    for (what, envs, wants) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = lab_config(tmp.path(), "dedup_t_ch_6", "");
        let results = tmp.path().join("r");
        let (code, stdout, stderr) = cli(
            &envs,
            &["run", "--config", &cfg, "--results", results.to_str().unwrap(), "--systems", "clickhouse,sqlite"]
                .into_iter()
                .chain(["--payload-types", "uuid_keys", "--grades", "U50", "--records", "4", "--record-size", "4KiB"])
                .collect::<Vec<_>>(),
        );
        assert_eq!(code, Some(1), "{what}: {stdout}{stderr}");
        let journal_text =
            std::fs::read_to_string(crate::support::run_dir(&results).join("measurements.jsonl")).unwrap();
        for text in [&stdout, &stderr, &journal_text] {
            assert!(!text.contains(wrong) && !text.contains(&env[3]), "{what}: a password was printed or journaled");
        }
        let mut failed = 0;
        for l in crate::support::journal(&results) {
            if let dedup_lab_core::JournalLine::Cell { cell, status, reason, .. } = l {
                if cell.system == SystemKind::Clickhouse {
                    assert_eq!(status, dedup_lab_core::CellStatus::Failed, "{what}: {cell}");
                    let reason = reason.unwrap_or_default();
                    for want in wants {
                        assert!(reason.contains(want), "{what}: {want:?} missing in {reason}");
                    }
                    failed += 1;
                } else {
                    assert_eq!(status, dedup_lab_core::CellStatus::Ok, "{what}: {cell}: {reason:?}");
                }
            }
        }
        assert_eq!(failed, 2, "{what}: both variants' cells are journaled as failed");
    }
    assert!(!database_exists(&env, "dedup_t_ch_6"));
}

/// Issue point 8: a mutation that cannot finish. The admin adds a column whose DEFAULT throws
/// for every stored row, so rewriting a part (which computes it) fails on the server; the delete gives up after
/// `mutation_timeout` with an error naming the mutation and why 18.16 cannot say more, and
/// the lab can still be torn down.
#[test]
fn a_failing_mutation_is_a_clear_error_and_teardown_still_works() {
    let Some(env) = ch() else { return };
    let lab = "dedup_t_ch_7";
    let mut b = open(lab, "mergetree", serde_json::json!({"mutation_timeout": 2}));
    let ns = Namespace::new(&lab.parse().unwrap(), 1);
    b.reset(&ns).unwrap();
    let r = conformance::record(1, 0, 1024);
    assert_eq!(b.insert_one(&ns, &r).unwrap(), 1);
    admin(&env, &format!("ALTER TABLE {lab}.c0 ADD COLUMN boom UInt8 DEFAULT throwIf(length(k) > 0)"));
    let e = b.delete_one(&ns, &r.id).unwrap_err();
    let msg = e.chain();
    assert!(msg.contains(&format!("of `{lab}`.`c0` is not done after 2 s")), "{msg}");
    assert!(
        msg.contains("keeps no failure reason in system.mutations") || msg.contains("failed on the server"),
        "{msg}"
    );
    assert!(matches!(e.class(), Some(ErrorClass::Timeout | ErrorClass::Server)), "{msg}");
    b.teardown(&ns).unwrap();
    assert!(!database_exists(&env, lab));
}

/// A throwaway ClickHouse server of this test alone (its own directory and free ports), for
/// faults that kill or restart a server: the shared server of `scripts/services.sh` serves
/// other tests at the same time. Started, stopped and restarted by shell scripts in its
/// directory (`start.sh`, `stop.sh`, `restart.sh`), so a `cold_command` can restart it too.
struct Throwaway {
    dir: tempfile::TempDir,
    port: u16,
    password: String,
}

impl Throwaway {
    const BIN: &'static str = "/usr/sbin/clickhouse-server";

    /// `None` (after saying why) when no server binary or `clickhouse` user exists and
    /// servers are not required.
    fn start() -> Option<Throwaway> {
        let missing = if !std::path::Path::new(Self::BIN).exists() {
            Some(format!("{} is missing (scripts/services.sh up clickhouse installs it)", Self::BIN))
        } else if !Command::new("id").arg("clickhouse").output().is_ok_and(|o| o.status.success()) {
            Some("no `clickhouse` user".to_string())
        } else {
            None
        };
        if let Some(why) = missing {
            assert!(!crate::support::servers_required(), "DEDUP_LAB_REQUIRE_SERVERS=1 but {why}");
            eprintln!("skipping: {why}");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("dedup-ch-throwaway").tempdir_in("/tmp").unwrap();
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (port, tcp) = (free(), free());
        let password = format!("tw{}", std::process::id());
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("config.xml"),
            format!(
                "<?xml version=\"1.0\"?><yandex><logger><level>warning</level><log>{d}/log/server.log</log>\
                 <errorlog>{d}/log/error.log</errorlog></logger><listen_host>127.0.0.1</listen_host>\
                 <http_port>{port}</http_port><tcp_port>{tcp}</tcp_port><path>{d}/data/</path>\
                 <tmp_path>{d}/tmp/</tmp_path><users_config>{d}/users.xml</users_config>\
                 <default_profile>default</default_profile><default_database>default</default_database>\
                 <mark_cache_size>67108864</mark_cache_size><timezone>UTC</timezone>\
                 <merge_tree><old_parts_lifetime>1</old_parts_lifetime></merge_tree></yandex>"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("users.xml"),
            format!(
                "<?xml version=\"1.0\"?><yandex><profiles><default/></profiles><users><default>\
                 <password>{password}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile>\
                 <quota>default</quota></default></users><quotas><default/></quotas></yandex>"
            ),
        )
        .unwrap();
        let ping = format!(
            "for i in $(seq 600); do [ \"$(curl -s --max-time 1 http://127.0.0.1:{port}/ping)\" = Ok. ] && exit 0; \
             sleep 0.1; done; echo 'the throwaway server did not answer' >&2; exit 1"
        );
        let scripts = [
            (
                "start.sh",
                format!(
                    "set -e\ncd /\nsetsid setpriv --reuid=clickhouse --regid=clickhouse --init-groups -- {} \
                     --config-file={d}/config.xml </dev/null >>{d}/log/stderr.log 2>&1 &\necho $! > {d}/pid\n{ping}\n",
                    Self::BIN
                ),
            ),
            (
                "stop.sh",
                format!(
                    "p=$(cat {d}/pid 2>/dev/null) || exit 0\nkill -${{1:-TERM}} $p 2>/dev/null || exit 0\n\
                     for i in $(seq 600); do kill -0 $p 2>/dev/null || exit 0; sleep 0.1; done; kill -KILL $p\n"
                ),
            ),
            ("restart.sh", format!("sh {d}/stop.sh && sh {d}/start.sh")),
        ];
        for (name, text) in scripts {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        for sub in ["data", "tmp", "log"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let chown = Command::new("chown").args(["-R", "clickhouse:"]).arg(dir.path()).status().unwrap();
        assert!(chown.success());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = Throwaway { dir, port, password };
        t.sh("start.sh", &[]);
        Some(t)
    }

    fn sh(&self, script: &str, args: &[&str]) {
        let st = Command::new("sh").arg(self.dir.path().join(script)).args(args).status().unwrap();
        assert!(st.success(), "{script} failed");
    }

    fn pid(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pid")).unwrap().trim().to_string()
    }

    /// Environment for the CLI pointing at this server (overriding the shared server's).
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DEDUP_CLICKHOUSE_HOST", "127.0.0.1".into()),
            ("DEDUP_CLICKHOUSE_PORT", self.port.to_string()),
            ("DEDUP_CLICKHOUSE_USER", "default".into()),
            ("DEDUP_CLICKHOUSE_PASSWORD", self.password.clone()),
            ("DEDUP_CLICKHOUSE_DATA_DIR", self.dir.path().join("data").display().to_string()),
        ]
    }

    fn query(&self, sql: &str) -> String {
        let env = ["127.0.0.1".to_string(), self.port.to_string(), String::new(), String::new(), self.password.clone()];
        admin(&env, sql)
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = Command::new("sh").arg(self.dir.path().join("stop.sh")).arg("KILL").status();
    }
}

fn cli_owned(envs: &[(&'static str, String)], args: &[&str]) -> (Option<i32>, String, String) {
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cli(&envs, args)
}

/// Issue point 5: the default `cold_command` of the test setup restarts the server before
/// every stage; the backend reconnects, every stage stays valid, and the server really was
/// restarted (a new process each time).
#[test]
fn a_cold_command_that_restarts_the_server_runs_before_every_stage() {
    let Some(t) = Throwaway::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let pids = tmp.path().join("pids");
    let d = t.dir.path().display();
    let cfg = lab_config(
        tmp.path(),
        "dedup_lab",
        &format!(
            "[systems.clickhouse]\nvariants = [\"mergetree\"]\ncold_timeout = 120\ncold_command = \"sh {d}/restart.sh && \
             cat {d}/pid >> {}\"\n",
            pids.display()
        ),
    );
    let results = tmp.path().join("r");
    let (code, stdout, stderr) = cli_owned(
        &t.env(),
        &["run", "--config", &cfg, "--results", results.to_str().unwrap(), "--systems", "clickhouse"]
            .into_iter()
            .chain(["--caches", "cold", "--stages", "bulk_insert,perfile_insert", "--payload-types", "text_document"])
            .chain(["--grades", "U50", "--records", "6", "--record-size", "16KiB"])
            .collect::<Vec<_>>(),
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let pids: Vec<String> = std::fs::read_to_string(&pids).unwrap().lines().map(String::from).collect();
    assert_eq!(pids.len(), 2, "one restart per stage: {pids:?}");
    assert_ne!(pids[0], pids[1]);
    let lines = crate::support::journal(&results);
    let stages = crate::support::stages(&lines);
    assert_eq!(stages.len(), 2);
    for m in stages {
        assert!(m.valid, "{:?}", m.invalid_reasons);
        assert!(m.notes.join(" | ").contains("dropped the HTTP connections"), "{:?}", m.notes);
        assert_eq!(m.rows_counted, Some(6));
    }
}

/// Issue point 8: the server killed in the middle of the bulk stage. The stage fails with
/// an error naming the endpoint, the cell is journaled as failed, the run goes on (sqlite
/// is measured), and once the server is back `cleanup` drops what the cell left.
#[test]
fn the_server_killed_mid_stage_fails_the_cell_and_cleanup_runs_after() {
    let Some(t) = Throwaway::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = lab_config(
        tmp.path(),
        "dedup_lab",
        "[systems.clickhouse]\nvariants = [\"mergetree\"]\nbatch_bytes = \"16KiB\"\n",
    );
    let results = tmp.path().join("r");
    let envs: Vec<(&str, String)> = t.env();
    let run = Command::new(env!("CARGO_BIN_EXE_dedup-lab"))
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["run", "--config", &cfg, "--results", results.to_str().unwrap(), "--systems", "clickhouse,sqlite"])
        .args(["--stages", "bulk_insert", "--payload-types", "random_binary", "--grades", "U0"])
        .args(["--records", "4000", "--record-size", "8KiB"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until the bulk insert has written rows, then kill the server.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let rows = Command::new("curl")
            .args(["-s", "--max-time", "1", "-H", "X-ClickHouse-User: default", "-H"])
            .arg(format!("X-ClickHouse-Key: {}", t.password))
            .arg(format!("http://127.0.0.1:{}/?query=SELECT%20count()%20FROM%20dedup_lab.c0", t.port))
            .output()
            .unwrap();
        if String::from_utf8_lossy(&rows.stdout).trim().parse::<u64>().is_ok_and(|n| n > 0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the bulk insert never wrote a row");
    }
    let killed = t.pid();
    t.sh("stop.sh", &["KILL"]);
    let out = run.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let mut seen = 0;
    for l in crate::support::journal(&results) {
        if let dedup_lab_core::JournalLine::Cell { cell, status, reason, .. } = l {
            if cell.system == SystemKind::Clickhouse {
                let reason = reason.unwrap_or_default();
                assert_eq!(status, dedup_lab_core::CellStatus::Failed, "{reason}");
                assert!(reason.contains(&format!("127.0.0.1:{}", t.port)), "names the endpoint: {reason}");
                assert!(
                    ["connection lost", "unreachable", "is the server running"].iter().any(|w| reason.contains(w)),
                    "says what happened: {reason}"
                );
                seen += 1;
            } else {
                assert_eq!(status, dedup_lab_core::CellStatus::Ok, "{cell}: {reason:?}");
            }
        }
    }
    assert_eq!(seen, 1);
    // The server comes back with what the interrupted cell left; cleanup drops it.
    t.sh("start.sh", &[]);
    assert_ne!(t.pid(), killed);
    let (code, stdout, stderr) = cli_owned(
        &t.env(),
        &["cleanup", "--config", &cfg, "--results", tmp.path().to_str().unwrap(), "--systems", "clickhouse"],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("dropped clickhouse"), "{stdout}");
    assert_eq!(t.query("SELECT count() FROM system.databases WHERE name = 'dedup_lab'"), "0");
}

/// Issue points 4 and 5 through the CLI, both variants: placement `across` (two tables, each
/// holding rows), native insertion mode (typed columns), every stage including `refill`,
/// and a byte budget that skips a cell before anything is written.
#[test]
fn every_axis_across_native_refill_and_a_byte_budget() {
    let Some(env) = ch() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = lab_config(tmp.path(), "dedup_t_ch_2", "");
    let results = tmp.path().join("r");
    let (code, stdout, stderr) = cli(
        &[],
        &["run", "--config", &cfg, "--results", results.to_str().unwrap(), "--systems", "clickhouse"]
            .into_iter()
            .chain(["--placements", "across", "--insertion-mode", "native", "--payload-types", "structured_json"])
            .chain(["--stages", "bulk_insert,perfile_insert,perfile_delete,maintenance,refill"])
            .chain(["--grades", "U50", "--records", "4", "--record-size", "1KiB"])
            .collect::<Vec<_>>(),
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let lines = crate::support::journal(&results);
    let stages = crate::support::stages(&lines);
    assert_eq!(stages.len(), 10, "five stages × two variants");
    for m in &stages {
        assert!(m.valid, "{} {}: {:?}", m.cell, m.stage, m.invalid_reasons);
        if m.stage == dedup_lab_core::Stage::BulkInsert {
            let d = &m.internal_after.details;
            for t in ["table c0", "table c1"] {
                assert!(d[t]["rows"].as_u64().unwrap() > 0, "across fills both tables: {d:?}");
            }
            let notes = m.notes.join(" | ");
            assert!(notes.contains("`amount` Nullable(Decimal(18, 2))"), "typed columns: {notes}");
        }
    }
    assert!(stages.iter().any(|m| m.stage == dedup_lab_core::Stage::Refill && m.rows_counted > Some(0)));
    assert!(!database_exists(&env, "dedup_t_ch_2"));

    // A budget below the dataset: the cells are skipped and journaled, nothing is created.
    let cfg = lab_config(tmp.path(), "dedup_t_ch_2", "[systems.clickhouse]\nmax_bytes = \"1KiB\"\n");
    let results = tmp.path().join("budget");
    let (code, stdout, stderr) = cli(
        &[],
        &["run", "--config", &cfg, "--results", results.to_str().unwrap(), "--systems", "clickhouse"]
            .into_iter()
            .chain(["--payload-types", "random_binary", "--grades", "U0", "--records", "4", "--record-size", "4KiB"])
            .collect::<Vec<_>>(),
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let mut skipped = 0;
    for l in crate::support::journal(&results) {
        if let dedup_lab_core::JournalLine::Cell { status, reason, .. } = l {
            assert_eq!(status, dedup_lab_core::CellStatus::Skipped);
            assert!(reason.unwrap_or_default().contains("max_bytes"));
            skipped += 1;
        }
    }
    assert_eq!(skipped, 2);
}

/// Issue point 6: the password may come from a file (`password_file`) as well as from
/// `DEDUP_CLICKHOUSE_PASSWORD`; a wrong one in the file names the file, never the password.
#[test]
fn the_password_comes_from_a_file_and_is_never_shown() {
    let Some(env) = ch() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("pw");
    std::fs::write(&file, format!("{}\n", env[3])).unwrap();
    let settings = serde_json::json!({"password_file": file, "password_env": "DEDUP_T_CH_NO_SUCH_VAR"});
    let mut b = open("dedup_t_ch_8", "mergetree", settings.clone());
    assert!(b.server_version().unwrap().starts_with("18."));
    std::fs::write(&file, "wrong-in-file-0815\n").unwrap();
    let e = match dedup_lab_backends::open(SystemKind::Clickhouse, "mergetree", &config("dedup_t_ch_8", settings)) {
        Ok(_) => panic!("a wrong password must be refused"),
        Err(e) => e,
    };
    let msg = e.chain();
    assert_eq!(e.class(), Some(ErrorClass::Authentication), "{msg}");
    assert!(msg.contains("password_file") && msg.contains(file.to_str().unwrap()), "{msg}");
    assert!(!msg.contains("wrong-in-file-0815") && !msg.contains(&env[3]), "{msg}");
}
