//! `dedup-lab generate`, `verify` and `analyze` from the outside: filters apply before
//! anything is generated, bad input fails with a clear message and creates nothing, and
//! `verify` catches a tampered dataset.

use assert_cmd::Command;
use serde_json::Value;
use std::fs;
use std::path::Path;

/// The binary, with no configuration from the environment.
fn dedup_lab() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dedup-lab"));
    cmd.env_remove("DEDUP_LAB_CONFIG");
    cmd
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cwd: &Path, args: &[&str]) -> Out {
    let out = dedup_lab().current_dir(cwd).args(args).output().unwrap();
    Out {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Runs and expects success.
fn ok(cwd: &Path, args: &[&str]) -> Out {
    let out = run(cwd, args);
    assert_eq!(out.code, 0, "{args:?} failed:\n{}\n{}", out.stdout, out.stderr);
    out
}

/// Runs and expects a failure (exit 2: bad input), returning stderr.
fn fails(cwd: &Path, args: &[&str]) -> String {
    let out = run(cwd, args);
    assert_eq!(out.code, 2, "{args:?} should fail with exit 2:\n{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("error"), "{args:?}: {}", out.stderr);
    out.stderr
}

/// Sorted names of the entries of a directory.
fn ls(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

fn manifest(dataset_dir: &Path) -> Vec<Value> {
    fs::read_to_string(dataset_dir.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const SMALL: &[&str] = &["--records", "8", "--record-size", "4KiB", "--seed", "1"];

fn generate(cwd: &Path, out: &str, extra: &[&str]) -> Out {
    let mut args = vec!["generate", "--output", out];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    ok(cwd, &args)
}

#[test]
fn filters_select_what_is_generated_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let out = generate(tmp.path(), "data", &["--payload-types", "uuid_keys", "--grades", "U50"]);
    assert!(out.stderr.contains("wrote 1 dataset(s)"), "{}", out.stderr);
    assert!(!out.stderr.contains("random_binary"), "{}", out.stderr);

    // Only the output directory appeared in the working directory (no results, no
    // experiment), and in it only uuid_keys/U50.
    assert_eq!(ls(tmp.path()), ["data"]);
    let root = tmp.path().join("data");
    assert_eq!(ls(&root), ["dedup-lab-datasets.json", "uuid_keys"]);
    assert_eq!(ls(&root.join("uuid_keys")), ["U50"]);
    let ds = root.join("uuid_keys/U50");
    assert_eq!(ls(&ds), ["manifest.jsonl", "records"]);
    let files = ls(&ds.join("records"));
    assert_eq!(files.len(), 8);
    assert!(files.iter().all(|f| f.ends_with(".csv")), "{files:?}");

    let index: Value =
        serde_json::from_str(&fs::read_to_string(root.join("dedup-lab-datasets.json")).unwrap()).unwrap();
    let datasets = index["datasets"].as_array().unwrap();
    assert_eq!(datasets.len(), 1);
    assert_eq!(datasets[0]["path"], "uuid_keys/U50");

    let lines = manifest(&ds);
    assert_eq!(lines.len(), 1 + 8 + 1, "header, 8 records, totals");
    assert_eq!(lines[0]["type"], "header");
    assert_eq!(lines[0]["spec"]["payload"], "uuid_keys");
    assert_eq!(lines[0]["spec"]["grade"], "U50");
    let records = &lines[1..9];
    assert!(records.iter().all(|r| r["type"] == "record" && r["size"] == 4096));
    let dups = records.iter().filter(|r| !r["duplicate_of"].is_null()).count();
    assert_eq!(dups, 4);
    let totals = &lines[9];
    assert_eq!(totals["type"], "totals");
    assert_eq!(totals["records"], 8);
    assert_eq!(totals["duplicate_records"], 4);
    assert_eq!(totals["unique_records"], 4);
    assert_eq!(totals["logical_bytes"], 8 * 4096);
    assert_eq!(totals["unique_bytes"], 4 * 4096);
    // The golden fingerprint (crates/datagen/tests/golden.rs) of this dataset.
    assert_eq!(totals["dataset_sha256"], "b6cd4bc35556c96e0a41a2fc3170636956963c61f83594f2585ed40e28f50801");

    let v = ok(tmp.path(), &["verify", "data"]);
    assert!(v.stdout.contains("ok      uuid_keys/U50 (8 records)"), "{}", v.stdout);
}

#[test]
fn thread_count_and_rerun_do_not_change_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let types = ["--payload-types", "text_document,jsonb_documents", "--grades", "U0,U90"];
    generate(tmp.path(), "one", &[&types[..], &["--threads", "1"]].concat());
    generate(tmp.path(), "three", &[&types[..], &["--threads", "3"]].concat());
    // Generating again into an existing dataset directory replaces it (no --force needed).
    generate(tmp.path(), "three", &[&types[..], &["--threads", "2"]].concat());
    for ds in ["text_document/U0", "text_document/U90", "jsonb_documents/U0", "jsonb_documents/U90"] {
        let a = fs::read(tmp.path().join("one").join(ds).join("manifest.jsonl")).unwrap();
        let b = fs::read(tmp.path().join("three").join(ds).join("manifest.jsonl")).unwrap();
        assert!(a == b, "{ds}: manifests differ between 1 and 3 threads");
        let (a, b) =
            (tmp.path().join("one").join(ds).join("records"), tmp.path().join("three").join(ds).join("records"));
        assert_eq!(ls(&a), ls(&b));
        for f in ls(&a) {
            assert!(fs::read(a.join(&f)).unwrap() == fs::read(b.join(&f)).unwrap(), "{ds}/{f}");
        }
    }
    ok(tmp.path(), &["verify", "three"]);
}

#[test]
fn no_write_prints_the_manifest_fingerprints_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["generate", "--no-write", "--payload-types", "uuid_keys,random_binary", "--grades", "U50"];
    args.extend_from_slice(SMALL);
    let out = ok(tmp.path(), &args);
    assert!(ls(tmp.path()).is_empty(), "{:?}", ls(tmp.path()));
    // The golden fingerprints (crates/datagen/tests/golden.rs), which `generate --output`
    // puts in the manifests.
    assert_eq!(
        out.stdout,
        "uuid_keys/U50 records=8 duplicate_records=4 logical_bytes=32768 \
         dataset_sha256=b6cd4bc35556c96e0a41a2fc3170636956963c61f83594f2585ed40e28f50801\n\
         random_binary/U50 records=8 duplicate_records=4 logical_bytes=32768 \
         dataset_sha256=5475a7de8d20649f83f1f95dab510abd4da69fb4b65efd966d019e6a47957235\n"
    );
    generate(tmp.path(), "data", &["--payload-types", "random_binary", "--grades", "U50"]);
    let totals = manifest(&tmp.path().join("data/random_binary/U50")).pop().unwrap();
    assert_eq!(totals["dataset_sha256"], "5475a7de8d20649f83f1f95dab510abd4da69fb4b65efd966d019e6a47957235");

    for bad in [&["--output", "x"][..], &["--force"]] {
        let mut args = vec!["generate", "--no-write"];
        args.extend_from_slice(bad);
        let err = fails(tmp.path(), &args);
        assert!(err.contains("cannot be used with"), "{err}");
    }
    let err = fails(tmp.path(), &["generate"]);
    assert!(err.contains("--output"), "{err}");
    assert_eq!(ls(tmp.path()), ["data"]);
}

#[test]
fn a_bad_filter_fails_before_anything_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(tmp.path(), &["generate", "--output", "data", "--payload-types", "uuid_keys,bogus"]);
    assert!(err.contains("\"bogus\""), "{err}");
    for valid in ["random_binary", "structured_json", "text_document", "uuid_keys", "jsonb_documents"] {
        assert!(err.contains(valid), "the error should list {valid}: {err}");
    }
    let err = fails(tmp.path(), &["generate", "--output", "data", "--grades", "U0,U100"]);
    assert!(err.contains("\"U100\"") && err.contains("0 to 99"), "{err}");
    // Not even the output directory was created.
    assert!(ls(tmp.path()).is_empty(), "{:?}", ls(tmp.path()));
}

#[test]
fn verify_names_a_tampered_record_file() {
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path(), "data", &["--payload-types", "uuid_keys,random_binary", "--grades", "U50"]);
    ok(tmp.path(), &["verify", "data"]);

    // Flip one byte of one record.
    let victim = tmp.path().join("data/uuid_keys/U50/records/r00000003.csv");
    let mut bytes = fs::read(&victim).unwrap();
    bytes[100] ^= 0x20;
    fs::write(&victim, &bytes).unwrap();
    let out = run(tmp.path(), &["verify", "data"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("FAILED  uuid_keys/U50"), "{}", out.stdout);
    assert!(out.stdout.contains("records/r00000003.csv: SHA-256 differs"), "{}", out.stdout);
    assert!(out.stdout.contains("ok      random_binary/U50"), "the untouched dataset still passes: {}", out.stdout);
    assert!(out.stderr.contains("1 of 2 dataset(s) do not match"), "{}", out.stderr);

    // A truncated record and a missing record are named too.
    bytes.truncate(10);
    fs::write(&victim, &bytes).unwrap();
    fs::remove_file(tmp.path().join("data/random_binary/U50/records/r00000005.bin")).unwrap();
    let out = run(tmp.path(), &["verify", "data"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("records/r00000003.csv: size 10, manifest says 4096"), "{}", out.stdout);
    assert!(out.stdout.contains("records/r00000005.bin: No such file"), "{}", out.stdout);
}

#[test]
fn verify_complains_about_a_manifest_without_totals_or_with_a_record_missing() {
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path(), "data", &["--payload-types", "structured_json", "--grades", "U0"]);
    let path = tmp.path().join("data/structured_json/U0/manifest.jsonl");
    let text = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();

    // Without its totals line (as an interrupted generate would leave it).
    fs::write(&path, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let out = run(tmp.path(), &["verify", "data"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("manifest has no totals line"), "{}", out.stdout);

    // With a record line removed: the totals no longer add up.
    let mut shorter = lines.clone();
    shorter.remove(4);
    fs::write(&path, shorter.join("\n") + "\n").unwrap();
    let out = run(tmp.path(), &["verify", "data"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("totals say 8 records, manifest lists 7"), "{}", out.stdout);
}

#[test]
fn verify_of_a_directory_that_is_not_a_dataset_says_how_to_make_one() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(tmp.path(), &["verify", "."]);
    assert!(err.contains("is not a dataset directory") && err.contains("dedup-lab generate --output"), "{err}");
}

/// Every bad value fails with exit 2, names the value and what would be accepted, and
/// creates nothing.
#[test]
fn bad_input_gets_a_clear_error_and_creates_nothing() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["--payload-types", "random"], &["\"random\"", "valid payload types: random_binary, structured_json"]),
        (&["--grades", "U100"], &["\"U100\"", "U<n> with n a whole number from 0 to 99"]),
        (&["--grades=U-5"], &["\"U-5\"", "U<n> with n a whole number from 0 to 99"]),
        (&["--grades", "U-5"], &["\"U-5\"", "U<n>"]),
        (&["--grades", "U5O"], &["\"U5O\"", "U<n>"]),
        (&["--grades", "50"], &["\"50\"", "e.g. U0, U50, U90"]),
        (&["--record-size", "0"], &["record size \"0\"", "between 64 B and 1.0 GiB"]),
        (&["--record-size", "2GiB"], &["record size \"2GiB\"", "between 64 B and 1.0 GiB"]),
        (&["--record-size", "99999999999TiB"], &["\"99999999999TiB\"", "expected a size such as"]),
        (&["--record-size", "12XB"], &["\"12XB\"", "expected a size such as 4096, 512KiB"]),
        (&["--record-size", "1MiB..4KiB"], &["\"1MiB..4KiB\"", "lower bound is above its upper bound"]),
        (&["--records", "0"], &["record count \"0\"", "between 1 and"]),
        (&["--profile", "huge"], &["\"huge\"", "valid profiles: quick"]),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (args, needles) in cases {
        let mut all = vec!["generate", "--output", "data"];
        all.extend_from_slice(args);
        let err = fails(tmp.path(), &all);
        for n in *needles {
            assert!(err.contains(n), "{args:?}: expected {n:?} in: {err}");
        }
        assert!(ls(tmp.path()).is_empty(), "{args:?} created {:?}", ls(tmp.path()));
    }
}

#[test]
fn an_existing_directory_that_is_not_a_dataset_is_not_overwritten_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("precious");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("thesis.tex"), "do not touch").unwrap();
    let err = fails(tmp.path(), &["generate", "--output", "precious", "--records", "2", "--record-size", "4KiB"]);
    assert!(err.contains("precious") && err.contains("not a dataset directory"), "{err}");
    assert!(err.contains("--force"), "the error should name the way out: {err}");
    assert_eq!(ls(&dir), ["thesis.tex"], "nothing was written");

    // With --force it writes next to the existing file and leaves that file alone.
    ok(
        tmp.path(),
        &[
            "generate",
            "--output",
            "precious",
            "--force",
            "--records",
            "2",
            "--record-size",
            "4KiB",
            "--payload-types",
            "uuid_keys",
            "--grades",
            "U0",
        ],
    );
    assert_eq!(ls(&dir), ["dedup-lab-datasets.json", "thesis.tex", "uuid_keys"]);
    assert_eq!(fs::read_to_string(dir.join("thesis.tex")).unwrap(), "do not touch");
    // Now it is a dataset directory: generating into it again needs no --force.
    ok(
        tmp.path(),
        &[
            "generate",
            "--output",
            "precious",
            "--records",
            "2",
            "--record-size",
            "4KiB",
            "--payload-types",
            "uuid_keys",
            "--grades",
            "U0",
        ],
    );
}

#[test]
fn force_never_deletes_what_dedup_lab_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let theirs = tmp.path().join("shared/uuid_keys/U0");
    fs::create_dir_all(&theirs).unwrap();
    fs::write(theirs.join("notes.txt"), "mine").unwrap();
    let gen_args =
        ["generate", "--output", "shared", "--force", "--records", "2", "--record-size", "4KiB", "--grades", "U0"];
    let err = fails(tmp.path(), &[&gen_args[..], &["--payload-types", "random_binary,uuid_keys"]].concat());
    assert!(err.contains("uuid_keys/U0 exists but dedup-lab did not write it"), "{err}");
    assert!(err.contains("move it away"), "{err}");
    assert_eq!(fs::read_to_string(theirs.join("notes.txt")).unwrap(), "mine");
    // Checked before anything was generated: random_binary (first in order) is not there either.
    assert_eq!(ls(&tmp.path().join("shared")), ["uuid_keys"]);
}

#[test]
fn an_unwritable_output_gets_a_clear_error() {
    // We may run as root, where permissions stop nothing: use paths no one can create.
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("afile"), "x").unwrap();
    let err = fails(tmp.path(), &["generate", "--output", "afile/sub", "--records", "1"]);
    assert!(err.contains("cannot create output directory afile/sub"), "{err}");
    assert!(err.contains("afile is a file, not a directory"), "{err}");
    assert!(err.contains("choose another --output"), "{err}");
    assert!(!err.contains("os error 20): Not a directory"), "the cause is printed once: {err}");

    let err = fails(tmp.path(), &["generate", "--output", "afile", "--records", "1"]);
    assert!(err.contains("output afile exists and is not a directory; choose another --output"), "{err}");

    let err = fails(tmp.path(), &["generate", "--output", "/proc/dedup-lab-test", "--records", "1"]);
    assert!(
        err.contains("cannot create output directory /proc/dedup-lab-test") && err.contains("choose another --output"),
        "{err}"
    );
    assert_eq!(ls(tmp.path()), ["afile"]);
}

fn analysis(json: &str) -> serde_json::Map<String, Value> {
    serde_json::from_str::<Value>(json).unwrap().as_object().unwrap().clone()
}

#[test]
fn analyze_gives_the_known_answer_and_agrees_with_a_generated_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ["--payload-types", "random_binary", "--grades", "U90", "--records", "100", "--record-size", "4KiB"];
    let out = ok(tmp.path(), &[&["analyze", "--json"][..], &spec].concat());
    let a = analysis(&out.stdout);
    let r = &a["random_binary/U90"];
    assert_eq!(r["records"], 100);
    assert_eq!(r["unique_records"], 10);
    let dedup = r["record_dedup_ratio"].as_f64().unwrap();
    assert!((dedup - 10.0).abs() < 1e-9, "{r}");
    let compression = r["compression_ratio"].as_f64().unwrap();
    assert!((0.99..=1.0).contains(&compression), "random bytes do not compress: {r}");
    assert!((r["ideal_ratio"].as_f64().unwrap() - 10.0).abs() < 0.1, "{r}");

    // The same datasets written to disk and analysed from there give the same numbers.
    let spec = [
        "--payload-types",
        "random_binary,text_document",
        "--grades",
        "U0,U90",
        "--records",
        "20",
        "--record-size",
        "8KiB",
        "--seed",
        "5",
    ];
    let from_spec = analysis(&ok(tmp.path(), &[&["analyze", "--json"][..], &spec].concat()).stdout);
    ok(tmp.path(), &[&["generate", "--output", "data"][..], &spec].concat());
    let from_dir = analysis(&ok(tmp.path(), &["analyze", "--json", "data"]).stdout);
    assert_eq!(from_spec.len(), 4);
    assert_eq!(from_spec, from_dir);
}
