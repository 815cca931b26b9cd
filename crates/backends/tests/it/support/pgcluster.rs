//! Throwaway PostgreSQL clusters for tests: `initdb` into a temp dir, start on a free
//! 127.0.0.1 port with scram authentication, stop and delete on drop.
//!
//! Binaries come from `DEDUP_PG_BIN_DIR`, else the newest `/usr/lib/postgresql/*/bin`.
//! As root, the server runs as the `postgres` OS user (`runuser -u postgres --`), since
//! PostgreSQL refuses to run as root.
//!
//! Used by the backend tests and, through `#[path]`, by the binary's tests: it needs only
//! std, tempfile and serde_json.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// How to set up a cluster.
#[derive(Default, Clone)]
pub struct ClusterOptions {
    /// Superuser (`postgres`) password; random when None.
    pub password: Option<String>,
    /// PEM certificate and key: enables `ssl = on`.
    pub tls: Option<(String, String)>,
    /// Extra `postgresql.conf` lines.
    pub conf: Vec<String>,
}

pub struct PgCluster {
    pub port: u16,
    pub password: String,
    /// Holds the data directory; removed on drop.
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// (uid, gid) of the OS user running the server when we are root.
    owner: Option<(u32, u32)>,
    running: bool,
    /// A file with the superuser password (for `password_file`).
    password_file: PathBuf,
}

impl PgCluster {
    /// The server binaries, if installed.
    pub fn bin_dir() -> Option<PathBuf> {
        if let Ok(d) = std::env::var("DEDUP_PG_BIN_DIR") {
            let d = PathBuf::from(d);
            if d.join("initdb").exists() {
                return Some(d);
            }
        }
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let v: u32 = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
                let bin = e.path().join("bin");
                (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((v, bin))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, b)| b)
    }

    /// Why throwaway clusters cannot run here, if they cannot.
    pub fn unavailable() -> Option<String> {
        if Self::bin_dir().is_none() {
            return Some("no PostgreSQL server binaries (set DEDUP_PG_BIN_DIR or install postgresql)".into());
        }
        if is_root() && os_ids("postgres").is_none() {
            return Some("running as root but there is no `postgres` OS user to run a cluster as".into());
        }
        None
    }

    pub fn start(opts: &ClusterOptions) -> Result<PgCluster, String> {
        let bin = Self::bin_dir().ok_or("no PostgreSQL binaries")?;
        let owner = if is_root() { Some(os_ids("postgres").ok_or("no postgres OS user")?) } else { None };
        let dir = tempfile::Builder::new().prefix("dedup-lab-pgtest-").tempdir().map_err(|e| e.to_string())?;
        let password = opts.password.clone().unwrap_or_else(|| hex_token(16));
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, format!("{password}\n")).map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        let mut c = PgCluster { port: 0, password, dir, bin, owner, running: false, password_file: pwfile.clone() };
        c.give_to_owner(c.dir.path())?;
        c.give_to_owner(&pwfile)?;
        let out = c.as_owner(
            &c.bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let mut conf = vec![
            "listen_addresses = '127.0.0.1'".to_string(),
            "unix_socket_directories = ''".into(),
            "fsync = off".into(),
            "shared_buffers = 16MB".into(),
            "max_connections = 40".into(),
            "password_encryption = 'scram-sha-256'".into(),
        ];
        if let Some((cert, key)) = &opts.tls {
            for (name, pem) in [("server.crt", cert), ("server.key", key)] {
                let p = data.join(name);
                std::fs::write(&p, pem).map_err(|e| e.to_string())?;
                c.give_to_owner(&p)?;
                set_mode(&p, 0o600)?;
            }
            conf.extend([
                "ssl = on".into(),
                "ssl_cert_file = 'server.crt'".into(),
                "ssl_key_file = 'server.key'".into(),
            ]);
        }
        conf.extend(opts.conf.iter().cloned());
        let mut text = std::fs::read_to_string(data.join("postgresql.conf")).map_err(|e| e.to_string())?;
        text.push_str("\n# dedup-lab test cluster\n");
        for line in &conf {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(data.join("postgresql.conf"), text).map_err(|e| e.to_string())?;

        // A free port can be taken by someone else before the server binds it: retry.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            c.port = port;
            match c.pg_ctl_start() {
                Ok(()) => {
                    c.running = true;
                    return Ok(c);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let log = self.dir.path().join("server.log");
        let out = self.as_owner(
            &self.bin.join("pg_ctl"),
            &[
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                self.data_dir().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &format!("-p {}", self.port),
            ],
        )?;
        if out.status.success() {
            Ok(())
        } else {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(20).collect();
            Err(format!(
                "pg_ctl start failed: {}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ))
        }
    }

    /// Starts the stopped server again, on the same port.
    pub fn start_again(&mut self) -> Result<(), String> {
        if !self.running {
            self.pg_ctl_start()?;
            self.running = true;
        }
        Ok(())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn password_file(&self) -> &Path {
        &self.password_file
    }

    /// Stops the server (fast shutdown: sessions are ended).
    pub fn stop(&mut self) {
        if self.running {
            let _ = self.as_owner(
                &self.bin.join("pg_ctl"),
                &["stop", "-w", "-t", "60", "-m", "fast", "-D", self.data_dir().to_str().unwrap()],
            );
            self.running = false;
        }
    }

    /// Backend settings for this cluster as the superuser (plaintext unless changed).
    pub fn settings(&self, extra: serde_json::Value) -> serde_json::Value {
        let mut s = serde_json::json!({
            "host": "127.0.0.1",
            "port": self.port,
            "user": "postgres",
            "database": "postgres",
            "password_file": self.password_file.to_str().unwrap(),
            "sslmode": "disable",
            "connect_timeout": 10,
        });
        if let serde_json::Value::Object(m) = extra {
            for (k, v) in m {
                s[k] = v;
            }
        }
        s
    }

    /// A shell command that restarts the server (fast shutdown, then start on the same
    /// port) and waits until it accepts connections: a `cold_command` for the runner.
    pub fn restart_command(&self) -> String {
        let log = self.dir.path().join("server.log");
        let pg_ctl = self.bin.join("pg_ctl");
        let run_as = if self.owner.is_some() { "runuser -u postgres -- " } else { "" };
        format!(
            "cd / && {run_as}{} restart -w -t 60 -m fast -D '{}' -l '{}' -o '-p {}'",
            pg_ctl.display(),
            self.data_dir().display(),
            log.display(),
            self.port
        )
    }

    fn as_owner(&self, program: &Path, args: &[&str]) -> Result<Output, String> {
        let mut cmd = if self.owner.is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args).current_dir("/");
        cmd.output().map_err(|e| format!("running {}: {e}", program.display()))
    }

    fn give_to_owner(&self, path: &Path) -> Result<(), String> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self.as_owner(
                &self.bin.join("pg_ctl"),
                &["stop", "-w", "-t", "30", "-m", "immediate", "-D", self.data_dir().to_str().unwrap()],
            );
        }
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn os_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").args([flag, user]).output().ok()?;
        if !o.status.success() {
            return None;
        }
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn set_mode(p: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Random hex (from the OS's random source).
pub fn hex_token(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).expect("/dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
