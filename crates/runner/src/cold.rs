//! The configured cold-cache command of a system (`cold_command` in `[systems.<name>]`),
//! run through `sh -c` before each stage of a cold cell, e.g. to restart a server or to
//! evict its files from the page cache. Its exit status and output go into the stage's
//! notes; a command that fails or outlives its timeout fails the stage, since the stage
//! would otherwise be measured warm while the journal says cold.
//!
//! The command's output is journaled, so it runs without the variables that may hold a
//! secret (`DEDUP_*` names with PASSWORD, SECRET, TOKEN, KEY or CREDENTIAL in them, and every
//! variable a `*_env` setting names), unless `cold_pass_env` passes one through by name: an
//! `env` in a cold command would otherwise write a password into the results.

use crate::RunError;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a cold command may run unless `cold_timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// At most this much of the command's output is kept (the end of it).
const KEPT_OUTPUT: usize = 2000;

/// A system's cold-cache command with its time limit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ColdCommand {
    pub command: String,
    /// Seconds.
    pub timeout_secs: u64,
    /// Secret-holding variables the config passes through by name (`cold_pass_env`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_env: Vec<String>,
}

/// Whether the environment variable `name` may hold a secret: a `DEDUP_*` name with a
/// secret word in it, or one of `named` (the variables `*_env` settings point at).
pub fn holds_secret(name: &str, named: &[String]) -> bool {
    if named.iter().any(|n| n == name) {
        return true;
    }
    let upper = name.to_ascii_uppercase();
    upper.starts_with("DEDUP_")
        && ["PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL"].iter().any(|w| upper.contains(w))
}

/// What the command is told about the stage it prepares, as environment variables.
pub struct ColdContext<'a> {
    /// `system/variant`.
    pub system: &'a str,
    pub stage: &'a str,
    pub lab: &'a str,
    /// Directories holding the lab's data on this machine (may be empty for a remote server).
    pub data_paths: &'a [std::path::PathBuf],
    /// Variables named by `*_env` settings (they hold secrets), withheld from the command.
    pub secret_vars: &'a [String],
}

impl ColdCommand {
    /// Runs the command and waits for it; returns the note to record.
    pub fn run(&self, ctx: &ColdContext) -> Result<String, RunError> {
        let fail = |what: String| RunError::Invalid(format!("cold_command `{}` {what}", self.command));
        let paths = std::env::join_paths(ctx.data_paths).unwrap_or_default();
        let mut child = {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(&self.command)
                .env("DEDUP_LAB_SYSTEM", ctx.system)
                .env("DEDUP_LAB_STAGE", ctx.stage)
                .env("DEDUP_LAB_LAB", ctx.lab)
                .env("DEDUP_LAB_DATA_PATHS", paths)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            // Its own process group, so a timeout kills everything the shell started.
            for (name, _) in std::env::vars_os() {
                if let Some(name) = name.to_str()
                    && holds_secret(name, ctx.secret_vars)
                    && !self.pass_env.iter().any(|p| p == name)
                {
                    c.env_remove(name);
                }
            }
            std::os::unix::process::CommandExt::process_group(&mut c, 0);
            c.spawn().map_err(|e| fail(format!("could not start: {e}")))?
        };
        // Both pipes are drained on threads, so a chatty command cannot block on a full pipe.
        let readers: Vec<_> = [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .map(|p| std::thread::spawn(move || tail_of(p)))
        .collect();
        let started = Instant::now();
        let timeout = Duration::from_secs(self.timeout_secs);
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if started.elapsed() >= timeout || crate::interrupted() => {
                    // SAFETY: kill(2) with the negated process group id of our own child.
                    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(fail(format!("could not be waited for: {e}"))),
            }
        };
        let elapsed = started.elapsed().as_secs_f64();
        let output: Vec<String> = readers.into_iter().filter_map(|r| r.join().ok()).filter(|s| !s.is_empty()).collect();
        let output =
            if output.is_empty() { "no output".to_string() } else { format!("output: {}", output.join(" | ")) };
        match status {
            None if crate::interrupted() => Err(RunError::Interrupted),
            None => Err(fail(format!(
                "did not finish within its timeout of {} s and was killed ({output}); raise cold_timeout or fix the command",
                self.timeout_secs
            ))),
            Some(s) if s.success() => {
                Ok(format!("cold: ran `{}`: exit status 0 after {elapsed:.2} s, {output}", self.command))
            }
            Some(s) => Err(fail(format!("failed with {s} after {elapsed:.2} s ({output})"))),
        }
    }
}

/// Reads a pipe to its end and keeps the last [`KEPT_OUTPUT`] bytes, lines joined by ` / `.
fn tail_of(mut r: Box<dyn Read + Send>) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * KEPT_OUTPUT {
                    kept.drain(..kept.len() - KEPT_OUTPUT);
                }
            }
        }
    }
    let cut = kept.len().saturating_sub(KEPT_OUTPUT);
    let text = String::from_utf8_lossy(&kept[cut..]);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let joined = lines.join(" / ");
    if cut > 0 { format!("…{joined}") } else { joined }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ColdContext<'static> {
        ColdContext {
            system: "sqlite/default",
            stage: "bulk_insert",
            lab: "dedup_lab",
            data_paths: &[],
            secret_vars: &[],
        }
    }

    fn cmd(c: &str, timeout_secs: u64) -> ColdCommand {
        ColdCommand { command: c.into(), timeout_secs, pass_env: Vec::new() }
    }

    #[test]
    fn secret_variables_are_recognised() {
        let named = ["MY_PG_PW".to_string()];
        for secret in ["DEDUP_PG_PASSWORD", "DEDUP_S3_SECRET_KEY", "DEDUP_MINIO_ACCESS_KEY", "MY_PG_PW"] {
            assert!(holds_secret(secret, &named), "{secret}");
        }
        for plain in ["DEDUP_PG_HOST", "DEDUP_LAB_STAGE", "PATH", "PGPASSWORD_NOT_OURS_X"] {
            assert!(!holds_secret(plain, &named), "{plain}");
        }
    }

    #[test]
    fn records_output_and_sees_the_stage() {
        let note = cmd("echo restarted $DEDUP_LAB_SYSTEM $DEDUP_LAB_STAGE; echo warn >&2", 60).run(&ctx()).unwrap();
        assert!(note.contains("exit status 0"), "{note}");
        assert!(note.contains("restarted sqlite/default bulk_insert"), "{note}");
        assert!(note.contains("warn"), "{note}");
    }

    #[test]
    fn a_failing_command_fails_with_its_status_and_output() {
        let e = cmd("echo no such service; exit 3", 60).run(&ctx()).unwrap_err().chain();
        assert!(e.contains("exit status: 3") && e.contains("no such service"), "{e}");
    }

    #[test]
    fn a_command_past_its_timeout_is_killed_with_its_children() {
        let e = cmd("echo started; sleep 30 & wait", 1).run(&ctx()).unwrap_err().chain();
        assert!(e.contains("did not finish within its timeout of 1 s") && e.contains("started"), "{e}");
    }

    #[test]
    fn long_output_keeps_its_end() {
        let note = cmd("seq 1 100000", 60).run(&ctx()).unwrap();
        assert!(note.contains("100000") && !note.contains(" 1 / 2 / 3 /") && note.len() < 4000, "{}", note.len());
    }
}
