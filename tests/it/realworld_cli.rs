//! Real-world datasets from the outside: a full run (generate, verify, analyze, run on the
//! embedded backends) over a read-only source changes nothing in it and leaves no scratch
//! file; bad sources fail only their own datasets and cells, with messages naming the file
//! (and entry); a resumed run whose source changed refuses; Ctrl-C removes scratch files.

use dedup_lab_core::{CellStatus, JournalLine};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dedup-lab"));
    c.env_remove("DEDUP_LAB_CONFIG").env_remove("DEDUP_LAB_SCRATCH").stdin(Stdio::null());
    c
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Out {
    let out: Output = bin().args(args).output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(args: &[&str]) -> Out {
    let o = run(args);
    assert_eq!(o.code, 0, "{args:?}:\n{}\n{}", o.stdout, o.stderr);
    o
}

/// Everything about a tree that a write could change: per entry its type, size, mode,
/// mtime, and the SHA-256 of files / the target of links (directories' mtimes change
/// when anything is created or removed in them).
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let what = if m.file_type().is_symlink() {
            format!("link -> {}", fs::read_link(&p).unwrap().display())
        } else if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            "dir".into()
        } else {
            hex::encode(Sha256::digest(fs::read(&p).unwrap()))
        };
        let line = format!("{what} size={} mode={:o} mtime={}.{}", m.len(), m.mode(), m.mtime(), m.mtime_nsec());
        out.insert(rel, line);
    }
    out
}

/// Makes a source tree read-only for the duration of a test, the strongest way the sandbox
/// allows: a read-only bind mount (root ignores permissions, not a read-only mount), else
/// `chattr +i` on everything, else nothing (said on stderr). Undone on drop.
struct ReadOnly {
    path: PathBuf,
    how: &'static str,
    undo: Vec<Vec<String>>,
}

impl ReadOnly {
    fn new(src: &Path, mount_point: &Path) -> ReadOnly {
        let sh = |args: &[&str]| Command::new(args[0]).args(&args[1..]).output().is_ok_and(|o| o.status.success());
        fs::create_dir_all(mount_point).unwrap();
        let (s, m) = (src.to_str().unwrap(), mount_point.to_str().unwrap());
        if sh(&["mount", "--bind", s, m]) {
            if sh(&["mount", "-o", "remount,ro,bind", m]) && fs::write(mount_point.join(".probe"), b"x").is_err() {
                return ReadOnly { path: mount_point.into(), how: "read-only bind mount", undo: vec![umount(m)] };
            }
            sh(&["umount", m]);
        }
        if sh(&["chattr", "-R", "+i", s]) && fs::write(src.join(".probe"), b"x").is_err() {
            let undo = vec![vec!["chattr".into(), "-R".into(), "-i".into(), s.into()]];
            return ReadOnly { path: src.into(), how: "chattr +i", undo };
        }
        // Under the test command the protection is part of what is proven: no silent downgrade.
        assert!(
            std::env::var("DEDUP_LAB_REQUIRE_SERVERS").map_or(true, |v| v != "1"),
            "DEDUP_LAB_REQUIRE_SERVERS=1 but neither a read-only bind mount nor chattr +i works here"
        );
        eprintln!(
            "note: neither a read-only bind mount nor chattr +i works here; the source is only checked unchanged"
        );
        ReadOnly { path: src.into(), how: "unprotected", undo: Vec::new() }
    }
}

fn umount(m: &str) -> Vec<String> {
    vec!["umount".into(), "-l".into(), m.into()]
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        for cmd in &self.undo {
            let _ = Command::new(&cmd[0]).args(&cmd[1..]).status();
        }
    }
}

fn entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn journal(run_dir: &Path) -> Vec<JournalLine> {
    fs::read_to_string(run_dir.join("measurements.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn cells(run_dir: &Path) -> Vec<(String, CellStatus, Option<String>)> {
    journal(run_dir)
        .into_iter()
        .filter_map(|l| match l {
            JournalLine::Cell { cell, status, reason, .. } => Some((cell.to_string(), status, reason)),
            _ => None,
        })
        .collect()
}

fn only_dir(dir: &Path) -> PathBuf {
    let d = entries(dir);
    assert_eq!(d.len(), 1, "{d:?}");
    dir.join(&d[0])
}

#[test]
fn a_full_run_never_changes_the_source_and_leaves_no_scratch() {
    let t = tempfile::tempdir().unwrap();
    let c = crate::corpus::build(t.path());
    std::os::unix::fs::symlink("a_text.txt", c.root.join("link_to_a.txt")).unwrap();
    let ro = ReadOnly::new(&c.root, &t.path().join("ro"));
    eprintln!("source protected by: {}", ro.how);
    let src = ro.path.display().to_string();
    let before = snapshot(&c.root);
    let scratch = t.path().join("scratch");
    let stage = t.path().join("stage");
    fs::create_dir_all(&scratch).unwrap();
    fs::create_dir_all(&stage).unwrap();
    let config = t.path().join("lab.toml");
    fs::write(
        &config,
        format!(
            "[real_world]\ncorpus = \"{src}\"\n[real_world.archives]\npath = \"{src}/*.tar*\"\nexpand_archives = true\n"
        ),
    )
    .unwrap();
    let (cfg, out, res) = (config.to_str().unwrap(), t.path().join("out"), t.path().join("res"));
    let (scratch_s, stage_s) = (scratch.to_str().unwrap(), stage.to_str().unwrap());
    let common = ["--config", cfg, "--record-size", "4KiB", "--scratch", scratch_s];

    // generate: real-world and synthetic datasets side by side.
    let mut args = vec!["generate", "--output", out.to_str().unwrap(), "--records", "4"];
    args.extend(["--payload-types", "corpus,archives,text_document", "--grades", "U0,U90"]);
    args.extend(common);
    let g = ok(&args);
    assert!(g.stderr.contains("scanning real-world source corpus"), "{}", g.stderr);
    ok(&["verify", out.to_str().unwrap()]);
    // U0 is the whole source: every archive entry appears, named; U90 copies its first tenth.
    let u0 = fs::read_to_string(out.join("corpus/U0/manifest.jsonl")).unwrap();
    for entry in ["statements.xlsx!/xl/worksheets/sheet1.xml", "corpus/one.txt", "inner.zip!/n.txt", "ls.1"] {
        assert!(u0.contains(&format!("\"entry\":\"{entry}\"")), "{entry} missing from the U0 manifest");
    }
    let manifest = fs::read_to_string(out.join("corpus/U90/manifest.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = manifest
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "record")
        .collect();
    assert!(
        records.iter().all(|r| r["source"]["file"].as_str().unwrap().starts_with(&src)),
        "every record names its file"
    );
    assert!(records.iter().all(|r| r["source"]["offset"].is_u64()));
    let header: serde_json::Value = serde_json::from_str(manifest.lines().next().unwrap()).unwrap();
    assert_eq!(header["spec"]["real_world"]["name"], "corpus");
    assert!(header["spec"]["real_world"]["files"][0]["mtime_ns"].is_i64());

    // analyze: from the spec (with staged copies) and from the dataset directory.
    let mut args = vec!["analyze", "--payload-types", "corpus", "--grades", "U50", "--json", "--stage-to", stage_s];
    args.extend(common);
    let a = ok(&args);
    let v: serde_json::Value = serde_json::from_str(&a.stdout).unwrap();
    assert!(v["corpus/U50"]["record_dedup_ratio"].as_f64().unwrap() > 1.5, "{}", a.stdout);
    let a = ok(&["analyze", out.to_str().unwrap()]);
    assert!(a.stdout.contains("corpus/U90"), "{}", a.stdout);

    // run on the embedded backends, with staging and source hashes.
    let mut args = vec!["run", "--systems", "sqlite,lsm,files", "--results", res.to_str().unwrap()];
    args.extend(["--payload-types", "corpus", "--grades", "U0,U50", "--stage-to", stage_s, "--verify-sources"]);
    args.extend(common);
    let r = ok(&args);
    assert!(r.stdout.contains("corpus"), "{}", r.stdout);
    let run_dir = only_dir(&res);
    let cs = cells(&run_dir);
    assert_eq!(cs.len(), 6, "{cs:?}");
    assert!(cs.iter().all(|(_, s, _)| *s == CellStatus::Ok), "{cs:?}");
    let info: serde_json::Value = serde_json::from_str(&fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    let files = &info["spec"]["datasets"][0]["real_world"]["files"];
    assert!(files.as_array().unwrap().iter().all(|f| f["sha256"].is_string()), "{files}");

    // generate --no-write, from the command line.
    let corpus_arg = format!("corpus={src}");
    let mut args = vec!["generate", "--no-write", "--real-world", &corpus_arg, "--grades", "U99"];
    args.extend(["--record-size", "4KiB", "--scratch", scratch_s]);
    let n = ok(&args);
    assert!(n.stdout.contains("corpus/U99 records="), "{}", n.stdout);

    assert_eq!(snapshot(&c.root), before, "the source must not change in any way");
    assert!(entries(&scratch).is_empty(), "scratch left behind: {:?}", entries(&scratch));
    assert!(entries(&stage).is_empty(), "staged copies left behind: {:?}", entries(&stage));
    drop(ro);
    assert_eq!(snapshot(&c.root), before);
}

#[test]
fn bad_sources_fail_only_their_own_datasets_and_cells() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::create_dir_all(d.join("good")).unwrap();
    fs::write(d.join("good/a.txt"), crate::corpus::content(1, 30_000, true)).unwrap();
    fs::write(d.join("broken.zip"), b"PK\x03\x04 not a zip").unwrap();
    fs::create_dir_all(d.join("empty")).unwrap();
    fs::create_dir_all(d.join("loop")).unwrap();
    std::os::unix::fs::symlink(d.join("loop"), d.join("loop/again")).unwrap();
    let tgz =
        crate::corpus::gz(&crate::corpus::tar_bytes(&[("inner/big.bin", &crate::corpus::content(2, 100_000, false))]));
    fs::write(d.join("cut.tar.gz"), &tgz[..tgz.len() / 2]).unwrap();
    let defs = [
        format!("good={}", d.join("good").display()),
        format!("missing={}", d.join("nowhere").display()),
        format!("corrupt={}", d.join("broken.zip").display()),
        format!("empty={}", d.join("empty").display()),
        format!("looping={}", d.join("loop").display()),
        format!("truncated={}", d.join("cut.tar.gz").display()),
    ];
    let mut args: Vec<&str> = vec!["--record-size", "4KiB", "--grades", "U0,U50"];
    for def in &defs {
        args.extend(["--real-world", def]);
    }
    let expect = [
        ("missing", "nowhere: does not exist"),
        ("corrupt", "broken.zip: not a readable zip archive"),
        ("empty", "holds no data"),
        ("looping", "loop/again: a symlink loop"),
        ("truncated", "cut.tar.gz: corrupt or truncated tar archive after entry inner/big.bin"),
    ];

    let out = d.join("out");
    let mut g = vec!["generate", "--output", out.to_str().unwrap()];
    g.extend(&args);
    let o = run(&g);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(out.join("good/U0/manifest.jsonl").is_file() && out.join("good/U50/manifest.jsonl").is_file());
    for (name, why) in expect {
        assert!(o.stderr.contains(&format!("FAILED {name}/U0: ")) && o.stderr.contains(why), "{name}: {}", o.stderr);
        assert!(!out.join(name).exists(), "{name}: nothing written for a failed dataset");
    }
    ok(&["verify", out.to_str().unwrap()]);

    let mut a = vec!["analyze"];
    a.extend(&args);
    let o = run(&a);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stdout.contains("good/U50") && o.stdout.contains("corrupt/U0") && o.stdout.contains("FAILED"));

    let res = d.join("res");
    let mut r = vec!["run", "--systems", "sqlite", "--results", res.to_str().unwrap()];
    r.extend(&args);
    let o = run(&r);
    assert_eq!(o.code, 1, "{}\n{}", o.stdout, o.stderr);
    let cs = cells(&only_dir(&res));
    assert_eq!(cs.len(), 12, "{cs:?}");
    for (key, status, reason) in &cs {
        let name = key.split_whitespace().nth(1).unwrap();
        if name == "good" {
            assert_eq!(*status, CellStatus::Ok, "{key}: {reason:?}");
        } else {
            let why = expect.iter().find(|(n, _)| *n == name).unwrap().1;
            assert_eq!(*status, CellStatus::Failed, "{key}");
            assert!(reason.as_deref().unwrap_or("").contains(why), "{key}: {reason:?}");
        }
    }
}

#[test]
fn an_unreadable_file_is_named_when_run_unprivileged() {
    // As root every file is readable; run the binary as `nobody` to see the real error.
    let setpriv = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    let can = Command::new("setpriv").args(setpriv).arg(env!("CARGO_BIN_EXE_dedup-lab")).arg("--version").output();
    if !can.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("DEDUP_LAB_REQUIRE_SERVERS").map_or(true, |v| v != "1"),
            "DEDUP_LAB_REQUIRE_SERVERS=1 but the binary cannot run as an unprivileged user here (setpriv)"
        );
        eprintln!("skipping: cannot run the binary as an unprivileged user here (setpriv)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let d = t.path().join("data");
    fs::create_dir_all(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(d.join("secret.bin"), b"top secret").unwrap();
    fs::set_permissions(d.join("secret.bin"), fs::Permissions::from_mode(0o000)).unwrap();
    let out = Command::new("setpriv")
        .args(setpriv)
        .arg(env!("CARGO_BIN_EXE_dedup-lab"))
        .args(["analyze", "--record-size", "4KiB", "--grades", "U0"])
        .arg("--real-world")
        .arg(format!("locked={}", d.display()))
        .env_remove("DEDUP_LAB_CONFIG")
        .env("TMPDIR", t.path())
        .current_dir(t.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("secret.bin: permission denied"), "{stderr}");
}

#[test]
fn a_resumed_run_refuses_a_changed_source() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("a.bin"), crate::corpus::content(1, 40_000, false)).unwrap();
    let res = t.path().join("res");
    let def = format!("data={}", d.display());
    let base = ["run", "--systems", "files", "--results", res.to_str().unwrap(), "--grades", "U50"];
    let mut args = base.to_vec();
    args.extend(["--record-size", "4KiB", "--real-world", &def, "--verify-sources"]);
    ok(&args);
    let id = entries(&res).pop().unwrap();
    let resume = ["run", "--results", res.to_str().unwrap(), "--resume", &id];
    let o = ok(&resume);
    assert!(o.stderr.contains("1 of 1 cells finished"), "{}", o.stderr);

    // Same size and mtime, other bytes: only the SHA-256 (--verify-sources) tells.
    let meta = fs::metadata(d.join("a.bin")).unwrap();
    fs::write(d.join("a.bin"), crate::corpus::content(2, 40_000, false)).unwrap();
    fs::File::options().write(true).open(d.join("a.bin")).unwrap().set_modified(meta.modified().unwrap()).unwrap();
    let o = run(&resume);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains(&format!("cannot resume run {id}: real-world source data")), "{}", o.stderr);
    assert!(o.stderr.contains("a.bin: its content (SHA-256) differs"), "{}", o.stderr);

    fs::write(d.join("a.bin"), crate::corpus::content(1, 50_000, false)).unwrap();
    let o = run(&resume);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("a.bin: now 50000 B"), "{}", o.stderr);
}

/// Runs `cmd` with the scratch hold FIFO (`DEDUP_LAB_TEST_HOLD_FIFO`) at `fifo` and sends
/// SIGINT while it is held at its first scratch file; returns the exit code and stderr.
/// Deterministic: the command cannot get past that file until the test has signalled it.
fn interrupt_while_spooling(mut cmd: Command, fifo: &Path) -> (i32, String) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = fs::remove_file(fifo);
    assert!(Command::new("mkfifo").arg(fifo).status().unwrap().success(), "mkfifo {}", fifo.display());
    cmd.env("DEDUP_LAB_TEST_HOLD_FIFO", fifo);
    let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    // A non-blocking open for writing fails (ENXIO) until the command opens the FIFO to read:
    // right after it created its first scratch file.
    let writer = loop {
        match fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo) {
            Ok(f) => break f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                if child.try_wait().unwrap().is_some() {
                    let out = child.wait_with_output().unwrap();
                    panic!("the command ended before its first scratch file: {}", String::from_utf8_lossy(&out.stderr));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("opening {}: {e}", fifo.display()),
        }
    };
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    drop(writer); // end of the FIFO: the command goes on and meets the signal's flag
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn ctrl_c_removes_the_scratch_files() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    fs::create_dir_all(&d).unwrap();
    // A .tar.gz cannot be re-read in place: U50's originals are spooled to scratch.
    let tgz = d.join("big.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(fs::File::create(&tgz).unwrap(), flate2::Compression::none());
        let mut b = tar::Builder::new(gz);
        for i in 0..48u64 {
            let mut h = tar::Header::new_gnu();
            let data = crate::corpus::content(i + 1, 2 << 20, false);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, format!("part{i:02}.bin"), &data[..]).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
    }
    let scratch = t.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let def = format!("big={}", tgz.display());
    let common = ["--real-world", &def, "--grades", "U50", "--record-size", "64KiB"];
    let fifo = t.path().join("hold.fifo");

    let out = t.path().join("out");
    let mut cmd = bin();
    cmd.args(["generate", "--threads", "1", "--output", out.to_str().unwrap()]).args(common);
    cmd.env("DEDUP_LAB_SCRATCH", &scratch);
    let (code, stderr) = interrupt_while_spooling(cmd, &fifo);
    assert_eq!(code, 130, "{stderr}");
    assert!(entries(&scratch).is_empty(), "scratch left behind: {:?}", entries(&scratch));
    assert!(!out.join("big/U50").exists(), "a half-written dataset is removed");

    let res = t.path().join("res");
    let mut cmd = bin();
    cmd.args(["run", "--systems", "files", "--results", res.to_str().unwrap()]).args(common);
    cmd.args(["--scratch", scratch.to_str().unwrap()]);
    let (code, stderr) = interrupt_while_spooling(cmd, &fifo);
    assert_eq!(code, 130, "{stderr}");
    assert!(entries(&scratch).is_empty(), "scratch left behind: {:?}", entries(&scratch));
}
