//! Secrets of every server system, written nowhere: not on a successful run, not on a run
//! that fails with the real password, not on one that fails with a wrong one.
//!
//! Each system runs three times from the CLI with its test server's distinctive password
//! (`scripts/services.sh` makes 32 hex digits) or a distinctive wrong one, with every
//! export and the trace on. Then stdout, stderr and every byte under the results and
//! scratch directories (`run.json`, `measurements.jsonl`, `discarded.jsonl`, the exports,
//! `events.jsonl`, `trace.jsonl`) are searched for both. The PostgreSQL warm + cold run with
//! every export is `postgresql::the_real_password_is_written_nowhere_by_a_successful_run`.

use crate::support::{files_with_content, server_env};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// One server system under test: how to reach it and where its secret lives.
struct System {
    name: &'static str,
    /// The variables the test server exports (checked before anything runs).
    vars: &'static [&'static str],
    /// The variable that holds the secret the run reads.
    secret_var: &'static str,
    /// A variable naming who logs in: a wrong value must fail with the real secret sent.
    user_var: &'static str,
    /// The `[systems.<name>]` table (without the header).
    settings: fn() -> String,
}

const SYSTEMS: &[System] = &[
    System {
        name: "postgresql",
        vars: &["DEDUP_PG_HOST", "DEDUP_PG_PORT", "DEDUP_PG_USER", "DEDUP_PG_PASSWORD"],
        secret_var: "DEDUP_PG_PASSWORD",
        user_var: "DEDUP_PG_USER",
        settings: String::new,
    },
    System {
        name: "mariadb",
        vars: &["DEDUP_MARIADB_HOST", "DEDUP_MARIADB_PORT", "DEDUP_MARIADB_USER", "DEDUP_MARIADB_PASSWORD"],
        secret_var: "DEDUP_MARIADB_PASSWORD",
        user_var: "DEDUP_MARIADB_USER",
        settings: || "variants = [\"dynamic\"]\n".into(),
    },
    System {
        name: "clickhouse",
        vars: &["DEDUP_CLICKHOUSE_HOST", "DEDUP_CLICKHOUSE_PORT", "DEDUP_CLICKHOUSE_USER", "DEDUP_CLICKHOUSE_PASSWORD"],
        secret_var: "DEDUP_CLICKHOUSE_PASSWORD",
        user_var: "DEDUP_CLICKHOUSE_USER",
        settings: || "variants = [\"mergetree\"]\n".into(),
    },
    System {
        name: "redis",
        vars: &["DEDUP_REDIS_HOST", "DEDUP_REDIS_PORT", "DEDUP_REDIS_USER", "DEDUP_REDIS_PASSWORD"],
        secret_var: "DEDUP_REDIS_PASSWORD",
        user_var: "DEDUP_REDIS_USER",
        settings: || "variants = [\"default\"]\n".into(),
    },
    System {
        name: "s3",
        vars: &["DEDUP_S3_ENDPOINT", "DEDUP_S3_ACCESS_KEY", "DEDUP_S3_SECRET_KEY"],
        secret_var: "DEDUP_S3_SECRET_KEY",
        user_var: "DEDUP_S3_ACCESS_KEY",
        settings: || "variants = [\"default\"]\n".into(),
    },
    System {
        name: "kafka",
        vars: &["DEDUP_KAFKA_HOST", "DEDUP_KAFKA_TEST_SASL_PORT", "DEDUP_KAFKA_TEST_PASSWORD"],
        // SCRAM on the broker's SASL listener; the user comes from the variable below
        // (`user_env`), the password from the test password's variable.
        secret_var: "DEDUP_KAFKA_TEST_PASSWORD",
        user_var: "DEDUP_T_KAFKA_USER",
        settings: || {
            format!(
                "variants = [\"default\"]\nport = {}\nsasl_mechanism = \"scram-sha-512\"\n\
                 password_env = \"DEDUP_KAFKA_TEST_PASSWORD\"\nbootstrap_only = true\n",
                std::env::var("DEDUP_KAFKA_TEST_SASL_PORT").unwrap()
            )
        },
    },
];

/// One CLI run of `system` with extra environment `envs`; returns its output, the results
/// and scratch directories living in `dir`.
fn run_system(dir: &Path, system: &System, user: &str, envs: &[(&str, &str)]) -> Output {
    let results = dir.join("r");
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let cfg = dir.join("c.toml");
    // ClickHouse's test user may create only the labs `scripts/services.sh` lists.
    let lab = if system.name == "clickhouse" { "dedup_t_ch_9" } else { "dedup_t_secrets" };
    let mut toml = format!("lab = \"{lab}\"\n[systems.{}]\n{}", system.name, (system.settings)());
    if system.name == "kafka" {
        toml.push_str(&format!("user = \"{user}\"\n"));
    }
    std::fs::write(&cfg, toml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dedup-lab"));
    cmd.env("DEDUP_LAB_SCRATCH", &scratch).env(system.user_var, user);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.args(["run", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap()])
        .args(["--systems", system.name])
        .args(["--payload-types", "uuid_keys", "--grades", "U50", "--records", "4", "--record-size", "4KiB"])
        .args(["--export", "csv,json,md,tex,html"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Panics when any of `secrets` appears in the output or under `dir`.
fn assert_written_nowhere(what: &str, dir: &Path, out: &Output, secrets: &[&str]) {
    let mut places: Vec<(String, Vec<u8>)> =
        vec![("stdout".into(), out.stdout.clone()), ("stderr".into(), out.stderr.clone())];
    places.extend(files_with_content(dir).into_iter().map(|(p, c)| (p.display().to_string(), c)));
    for secret in secrets {
        assert!(secret.len() >= 16, "{what}: the secret is distinctive enough to search for");
        for (place, content) in &places {
            let hit = content.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!hit, "{what}: {place} holds a secret");
        }
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn no_systems_secret_is_written_on_success_or_failure() {
    let mut tested = Vec::new();
    for system in SYSTEMS {
        if server_env(system.name, system.vars).is_none() {
            continue;
        }
        let secret = std::env::var(system.secret_var).unwrap();
        assert!(
            secret.len() >= 16,
            "{}: the test server's secret is distinctive ({} chars)",
            system.name,
            secret.len()
        );
        let user = match system.name {
            "kafka" => {
                crate::kafka::scram_user("dedup", &secret);
                "dedup".to_string()
            }
            _ => std::env::var(system.user_var).unwrap(),
        };

        // 1. Success with the real secret: every export, trace and events written.
        let t = tempfile::tempdir().unwrap();
        let out = run_system(t.path(), system, &user, &[]);
        assert!(out.status.success(), "{}: {}", system.name, text(&out));
        let run = crate::support::run_dir(&t.path().join("r"));
        for want in ["run.json", "measurements.jsonl", "trace.jsonl", "events.jsonl", "report.html", "report.md"] {
            assert!(run.join(want).is_file(), "{}: {want} was written", system.name);
        }
        assert_written_nowhere(&format!("{} success", system.name), t.path(), &out, &[&secret]);

        // 2. Failure with the real secret sent: a user the server does not know.
        let t = tempfile::tempdir().unwrap();
        let out = run_system(t.path(), system, "nosuchuser_7c1e", &[]);
        assert!(!out.status.success(), "{}: an unknown user fails: {}", system.name, text(&out));
        assert_written_nowhere(&format!("{} unknown user", system.name), t.path(), &out, &[&secret]);

        // 3. Failure with a distinctive wrong secret.
        let wrong = format!("wrong-{}-secret-5d0f3b9a71", system.name);
        let t = tempfile::tempdir().unwrap();
        let out = run_system(t.path(), system, &user, &[(system.secret_var, &wrong)]);
        assert!(!out.status.success(), "{}: a wrong secret fails: {}", system.name, text(&out));
        assert_written_nowhere(&format!("{} wrong secret", system.name), t.path(), &out, &[&secret, &wrong]);
        tested.push(system.name);
    }
    eprintln!("secrets checked for: {tested:?}");
}
