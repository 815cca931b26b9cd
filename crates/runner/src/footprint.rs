//! The instrument's own footprint: dedup-lab's CPU time during a stage, and the server's
//! where its processes are known, both as the kernel counts them.
//!
//! A measuring tool that shares the machine with the server it measures takes CPU from it.
//! Each stage's [`Footprint`] says how much: the process's user and system time from
//! `getrusage` (every thread; SQLite, zstd and every other C library included), and, when
//! the settings name the server's processes (`server_pids`, `server_pid_files`) or its
//! cgroup (`server_cgroup`), the server's CPU time over the same interval.
//!
//! A server process counts with its whole process tree: PostgreSQL's postmaster forks a
//! backend per connection, so the live descendants' `utime + stime` plus the `cutime +
//! cstime` of those already reaped (the kernel adds a child's time to its parent's when the
//! parent waits for it). A cgroup v2 directory's `cpu.stat` `usage_usec` covers everything
//! in it.

use dedup_lab_backends::BackendConfig;
use dedup_lab_core::Footprint;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The settings that name a server's processes (documented in the README).
pub const KEYS: [&str; 3] = ["server_pids", "server_pid_files", "server_cgroup"];

/// dedup-lab's own CPU time so far: (user, system).
pub fn own_cpu() -> (Duration, Duration) {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the buffer it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    // SAFETY: initialised by the successful call above.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// Where a server's CPU time is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerProcs {
    /// Process ids, each with its process tree; a pid file is read again at every reading
    /// (a restarted server has a new pid).
    Pids { pids: Vec<u32>, pid_files: Vec<PathBuf> },
    /// A cgroup v2 directory.
    Cgroup(PathBuf),
}

impl ServerProcs {
    /// The server processes a system's settings name (`None` when they name none). A value
    /// that is not a pid, or both pids and a cgroup, is a clear error.
    pub fn from_config(cfg: &BackendConfig) -> Result<Option<ServerProcs>, String> {
        let list = |key: &str| cfg.string_list(key).map_err(|e| e.to_string()).map(Option::unwrap_or_default);
        // `server_pids = [1234]` in TOML is a list of numbers; the environment's is a string.
        let raw_pids = match cfg.settings.get("server_pids") {
            Some(serde_json::Value::Array(a)) => {
                a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect()
            }
            _ => list("server_pids")?,
        };
        let pids = raw_pids
            .iter()
            .map(|p| {
                p.trim().parse::<u32>().ok().filter(|&p| p > 0).ok_or_else(|| {
                    format!("{}: setting `server_pids` has {p:?}, expected process ids (whole numbers)", cfg.system)
                })
            })
            .collect::<Result<Vec<u32>, String>>()?;
        let pid_files: Vec<PathBuf> = list("server_pid_files")?.into_iter().map(PathBuf::from).collect();
        let cgroup = cfg.string("server_cgroup").map(PathBuf::from);
        match (pids.is_empty() && pid_files.is_empty(), cgroup) {
            (true, None) => Ok(None),
            (true, Some(dir)) => Ok(Some(ServerProcs::Cgroup(dir))),
            (false, None) => Ok(Some(ServerProcs::Pids { pids, pid_files })),
            (false, Some(_)) => {
                Err(format!("{}: set either `server_cgroup` or `server_pids`/`server_pid_files`, not both", cfg.system))
            }
        }
    }

    /// What a reading covers, for the measurement's notes.
    pub fn describe(&self) -> String {
        match self {
            ServerProcs::Pids { pids, pid_files } => {
                let mut parts: Vec<String> = pids.iter().map(|p| format!("pid {p}")).collect();
                parts.extend(pid_files.iter().map(|f| format!("the pid in {}", f.display())));
                format!("{}, each with its process tree", parts.join(", "))
            }
            ServerProcs::Cgroup(dir) => format!("cgroup {}", dir.display()),
        }
    }

    /// The server's CPU time so far (user + system).
    pub fn cpu(&self) -> Result<Duration, String> {
        match self {
            ServerProcs::Cgroup(dir) => {
                let path = dir.join("cpu.stat");
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                text.lines()
                    .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse::<u64>().ok())
                    .map(Duration::from_micros)
                    .ok_or_else(|| format!("{}: no usage_usec line (is it a cgroup v2 directory?)", path.display()))
            }
            ServerProcs::Pids { pids, pid_files } => {
                let mut roots = pids.clone();
                for f in pid_files {
                    let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
                    let pid = text
                        .lines()
                        .next()
                        .and_then(|l| l.trim().parse::<u32>().ok())
                        .ok_or_else(|| format!("{}: the first line is not a process id", f.display()))?;
                    roots.push(pid);
                }
                tree_cpu(&read_procs(), &roots)
            }
        }
    }
}

/// One process's line of `/proc/<pid>/stat`: parent, own and reaped children's CPU ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    ppid: u32,
    own_ticks: u64,
    children_ticks: u64,
}

/// Fields after the command name (which may hold spaces and parentheses, hence the last
/// `)`): state ppid … utime(12th) stime cutime cstime.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some(ProcStat { ppid: f.get(1)?.parse().ok()?, own_ticks: n(11)? + n(12)?, children_ticks: n(13)? + n(14)? })
}

fn read_procs() -> HashMap<u32, ProcStat> {
    let mut out = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        // A process may end between the listing and the read: it is simply not counted.
        if let Some(st) = std::fs::read_to_string(e.path().join("stat")).ok().as_deref().and_then(parse_stat) {
            out.insert(pid, st);
        }
    }
    out
}

/// CPU time of the trees rooted at `roots`: every live member's own ticks plus the ticks of
/// the children it has reaped. A root that is not running is an error naming it.
fn tree_cpu(procs: &HashMap<u32, ProcStat>, roots: &[u32]) -> Result<Duration, String> {
    for r in roots {
        if !procs.contains_key(r) {
            return Err(format!("server process {r} is not running"));
        }
    }
    let in_tree = |mut pid: u32| {
        // Walk up the parents (bounded: a pid table is finite, and pid 0/1 end the walk).
        for _ in 0..procs.len() + 1 {
            if roots.contains(&pid) {
                return true;
            }
            match procs.get(&pid) {
                Some(st) if st.ppid > 1 && st.ppid != pid => pid = st.ppid,
                _ => return false,
            }
        }
        false
    };
    let ticks: u64 =
        procs.iter().filter(|(pid, _)| in_tree(**pid)).map(|(_, st)| st.own_ticks + st.children_ticks).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / hz))
}

/// Measures one stage's footprint: started before its first reading, finished after its
/// read-back.
pub struct Meter<'a> {
    wall: Instant,
    user: Duration,
    sys: Duration,
    server: Option<(&'a ServerProcs, Result<Duration, String>)>,
}

impl<'a> Meter<'a> {
    pub fn start(server: Option<&'a ServerProcs>) -> Meter<'a> {
        let (user, sys) = own_cpu();
        Meter { wall: Instant::now(), user, sys, server: server.map(|s| (s, s.cpu())) }
    }

    pub fn finish(self) -> Footprint {
        let (user, sys) = own_cpu();
        let wall = self.wall.elapsed();
        let (server_cpu_ns, server_note) = match self.server {
            None => (None, None),
            Some((s, before)) => match (before, s.cpu()) {
                (Ok(b), Ok(a)) => (Some(a.saturating_sub(b).as_nanos() as u64), Some(s.describe())),
                (Err(e), _) | (_, Err(e)) => (None, Some(format!("server CPU not read: {e}"))),
            },
        };
        Footprint {
            wall_ns: wall.as_nanos() as u64,
            tool_user_ns: user.saturating_sub(self.user).as_nanos() as u64,
            tool_sys_ns: sys.saturating_sub(self.sys).as_nanos() as u64,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            server_cpu_ns,
            server_note,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_and_parentheses_in_the_name_parses() {
        let line = "4242 (post (gres) x) S 4200 4242 4242 0 -1 4194560 100 0 0 0 37 5 11 2 20 0 1 0 99 1000 10";
        assert_eq!(parse_stat(line), Some(ProcStat { ppid: 4200, own_ticks: 42, children_ticks: 13 }));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_tree_counts_its_descendants_and_their_reaped_children_and_nothing_else() {
        let st = |ppid, own, children| ProcStat { ppid, own_ticks: own, children_ticks: children };
        let procs: HashMap<u32, ProcStat> = [
            (100, st(1, 10, 5)),   // the server
            (101, st(100, 20, 0)), // a backend
            (102, st(101, 3, 1)),  // its child
            (200, st(1, 1000, 0)), // another program
            (201, st(200, 7, 0)),
        ]
        .into_iter()
        .collect();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        let want = Duration::from_nanos((10 + 5 + 20 + 3 + 1) * 1_000_000_000 / hz);
        assert_eq!(tree_cpu(&procs, &[100]).unwrap(), want);
        assert!(tree_cpu(&procs, &[300]).unwrap_err().contains("300 is not running"));
    }

    #[test]
    fn this_process_burning_cpu_shows_in_its_own_tree_and_in_the_meter() {
        let me = ServerProcs::Pids { pids: vec![std::process::id()], pid_files: Vec::new() };
        let meter = Meter::start(Some(&me));
        // Burn 200 ms of CPU as getrusage counts it (however loaded the machine is).
        let cpu = || {
            let (u, s) = own_cpu();
            u + s
        };
        let (start, deadline) = (cpu(), Instant::now() + Duration::from_secs(60));
        let mut x = 0u64;
        while cpu() - start < Duration::from_millis(200) && Instant::now() < deadline {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        let f = meter.finish();
        assert!(f.tool_cpu_ns() >= 200_000_000, "{f:?}");
        // The same CPU read from /proc through the process tree (10 ms ticks).
        assert!(f.server_cpu_ns.unwrap() >= 180_000_000, "{f:?}");
        assert!(f.server_note.unwrap().contains(&format!("pid {}", std::process::id())));
    }
}
