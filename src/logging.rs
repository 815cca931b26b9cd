//! Log discipline: what goes to stderr, and how much. The `log` facade with a small logger
//! of our own: `-q` shows errors only, the default adds warnings and progress notes, `-v`
//! adds debug lines (each cell and stage as it runs), `-vv` trace. `RUST_LOG` works as Rust
//! users expect (`debug`, `dedup_lab=debug,rustls=info`, …) and wins over `-v`/`-q` for the
//! targets it names; targets it does not name keep the `-v`/`-q` level. Results go to files
//! and stdout, never through the log; progress bars draw on a terminal only.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger {
    /// `(target prefix, level)`, longest prefix first; `""` matches everything.
    directives: Vec<(String, LevelFilter)>,
}

/// The default level of our own crates for `-v` count `verbose` and `-q` count `quiet`;
/// other crates (HTTP, TLS, Kafka protocol) stay at warnings unless `-vv`.
fn defaults(verbose: u8, quiet: u8) -> Vec<(String, LevelFilter)> {
    let (ours, others) = match (verbose, quiet) {
        (_, q) if q > 0 => (LevelFilter::Error, LevelFilter::Error),
        (0, _) => (LevelFilter::Info, LevelFilter::Warn),
        (1, _) => (LevelFilter::Debug, LevelFilter::Warn),
        _ => (LevelFilter::Trace, LevelFilter::Debug),
    };
    vec![("dedup_lab".into(), ours), (String::new(), others)]
}

/// `RUST_LOG`'s directives: `level` or `target=level`, comma-separated. Unknown words are
/// reported once and skipped.
fn parse_rust_log(text: &str) -> (Vec<(String, LevelFilter)>, Vec<String>) {
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    for d in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let (target, level) = match d.split_once('=') {
            Some((t, l)) => (t.trim().to_string(), l.trim()),
            None => match d.parse::<LevelFilter>() {
                Ok(_) => (String::new(), d),
                // A bare target means "everything from it" (as env_logger reads it).
                Err(_) => (d.to_string(), "trace"),
            },
        };
        match level.parse::<LevelFilter>() {
            Ok(l) => out.push((target.replace('-', "_"), l)),
            Err(_) => bad.push(d.to_string()),
        }
    }
    (out, bad)
}

/// `RUST_LOG`'s directives, then the flag defaults for the targets none of them covers (a
/// directive covers its own prefix: `debug` covers everything, `dedup_lab_runner` does not
/// cover `dedup_lab`), longest prefix first.
fn merge(mut rust_log: Vec<(String, LevelFilter)>, defaults: Vec<(String, LevelFilter)>) -> Vec<(String, LevelFilter)> {
    let covered = |p: &str| rust_log.iter().any(|(q, _)| p.starts_with(q.as_str()));
    let keep: Vec<_> = defaults.into_iter().filter(|(p, _)| !covered(p)).collect();
    rust_log.extend(keep);
    rust_log.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    rust_log
}

impl Logger {
    fn level_for(&self, target: &str) -> LevelFilter {
        self.directives
            .iter()
            .find(|(p, _)| target.starts_with(p.as_str()))
            .map(|(_, l)| *l)
            .unwrap_or(LevelFilter::Warn)
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= self.level_for(m.target())
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // Our own warnings and notes read as they always did; other crates' lines say where
        // they come from.
        let ours = r.target().starts_with("dedup_lab");
        match (r.level(), ours) {
            (Level::Error, _) => eprintln!("error: {}", r.args()),
            (Level::Warn, true) => eprintln!("warning: {}", r.args()),
            (Level::Info, true) => eprintln!("{}", r.args()),
            (level, _) => eprintln!("{}: {}: {}", level.as_str().to_ascii_lowercase(), r.target(), r.args()),
        }
    }

    fn flush(&self) {}
}

/// Installs the logger (once, first thing in `main`).
pub fn init(verbose: u8, quiet: u8) {
    let mut directives: Vec<(String, LevelFilter)> = Vec::new();
    let mut bad = Vec::new();
    if let Ok(text) = std::env::var("RUST_LOG") {
        let (d, b) = parse_rust_log(&text);
        directives = d;
        bad = b;
    }
    let directives = merge(directives, defaults(verbose, quiet));
    let max = directives.iter().map(|(_, l)| *l).max().unwrap_or(LevelFilter::Warn);
    if log::set_boxed_logger(Box::new(Logger { directives })).is_ok() {
        log::set_max_level(max);
    }
    for b in bad {
        log::warn!(
            "RUST_LOG: `{b}` is not a level or target=level (levels: error, warn, info, debug, trace, off); ignored"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logger(rust_log: &str, v: u8, q: u8) -> Logger {
        Logger { directives: merge(parse_rust_log(rust_log).0, defaults(v, q)) }
    }

    #[test]
    fn levels_from_flags_and_rust_log() {
        let l = logger("", 0, 0);
        assert_eq!(l.level_for("dedup_lab::cmd::run"), LevelFilter::Info);
        assert_eq!(l.level_for("rustls::client"), LevelFilter::Warn);
        assert_eq!(logger("", 0, 1).level_for("dedup_lab"), LevelFilter::Error);
        assert_eq!(logger("", 1, 0).level_for("dedup_lab_runner::engine"), LevelFilter::Debug);
        assert_eq!(logger("", 2, 0).level_for("ureq"), LevelFilter::Debug);
        let l = logger("debug", 0, 1);
        assert_eq!(l.level_for("ureq::pool"), LevelFilter::Debug, "RUST_LOG names everything: it wins over -q");
        assert_eq!(l.level_for("dedup_lab"), LevelFilter::Debug, "and over -q for our own crates too");
        let l = logger("dedup_lab_runner=trace", 0, 1);
        assert_eq!(l.level_for("dedup_lab_runner::engine"), LevelFilter::Trace);
        assert_eq!(l.level_for("dedup_lab::cmd"), LevelFilter::Error, "the rest of ours keeps -q");
        let l = logger("dedup-lab=trace,rustls=off", 0, 0);
        assert_eq!(l.level_for("dedup_lab::cmd"), LevelFilter::Trace);
        assert_eq!(l.level_for("rustls::x"), LevelFilter::Off);
        assert_eq!(l.level_for("ureq"), LevelFilter::Warn, "unnamed targets keep the flag level");
        let (_, bad) = parse_rust_log("loud,info,x=verbose");
        assert_eq!(bad, ["x=verbose"]);
    }
}
