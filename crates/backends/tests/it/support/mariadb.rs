//! MariaDB test helpers: the shared test server of `scripts/services.sh` (settings from
//! `DEDUP_MARIADB_*`, SQL as root through the `mariadb` client on its socket), and throwaway
//! servers started by a test (`mariadb-install-db` into a temp dir, `mariadbd --no-defaults`
//! on a free 127.0.0.1 port, TLS and `local_infile` as asked), stopped and deleted on drop.
//!
//! Used by the backend tests and, through `#[path]`, by the binary's tests: it needs only
//! std, tempfile and serde_json.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared server's settings, when `scripts/services.sh env mariadb` was evaluated.
pub fn shared_env() -> Option<SharedServer> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some(SharedServer {
        host: var("DEDUP_MARIADB_HOST")?,
        port: var("DEDUP_MARIADB_PORT")?.parse().ok()?,
        user: var("DEDUP_MARIADB_USER")?,
        password: var("DEDUP_MARIADB_PASSWORD")?,
        data_dir: var("DEDUP_MARIADB_DATA_DIR").map(PathBuf::from),
        socket: var("DEDUP_MARIADB_SOCKET")?,
        root_password: var("DEDUP_MARIADB_ROOT_PASSWORD")?,
    })
}

/// The local test server of `scripts/services.sh`.
#[derive(Debug, Clone)]
pub struct SharedServer {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub data_dir: Option<PathBuf>,
    pub socket: String,
    pub root_password: String,
}

impl SharedServer {
    /// Runs SQL as root over the socket; the rows, tab-separated fields.
    pub fn root_sql(&self, sql: &str) -> Vec<Vec<String>> {
        client_sql(&["--socket", &self.socket, "-uroot"], &self.root_password, sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn database_exists(&self, db: &str) -> bool {
        let rows =
            self.root_sql(&format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'"));
        rows[0][0] != "0"
    }
}

/// Runs SQL through the `mariadb` client (`args` say where and who); rows of fields.
pub fn client_sql(args: &[&str], password: &str, sql: &str) -> Result<Vec<Vec<String>>, String> {
    let out = Command::new("mariadb")
        .arg("--no-defaults")
        .args(args)
        .args(["-N", "-B", "-e", sql])
        .env("MYSQL_PWD", password)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running mariadb: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split('\t').map(str::to_string).collect()).collect())
}

/// How to set up a throwaway server.
#[derive(Default, Clone)]
pub struct ServerOptions {
    /// PEM certificate and key: enables TLS.
    pub tls: Option<(String, String)>,
    /// `--local-infile=0` when false (the default here is on).
    pub no_local_infile: bool,
    /// Further `mariadbd` options.
    pub extra: Vec<String>,
}

/// A throwaway MariaDB server; user `tester` with every privilege, over TCP.
pub struct MariaServer {
    pub port: u16,
    pub password: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    args: Vec<String>,
    password_file: PathBuf,
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

impl MariaServer {
    /// Why throwaway servers cannot run here, if they cannot.
    pub fn unavailable() -> Option<String> {
        for bin in ["/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db"] {
            if !Path::new(bin).exists() {
                return Some(format!("{bin} is missing (apt-get install mariadb-server)"));
            }
        }
        if is_root() && Command::new("id").arg("mysql").output().map(|o| !o.status.success()).unwrap_or(true) {
            return Some("running as root but there is no `mysql` OS user to run a server as".into());
        }
        None
    }

    pub fn start(opts: &ServerOptions) -> Result<MariaServer, String> {
        let dir = tempfile::Builder::new().prefix("dedup-lab-mdbtest-").tempdir().map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).map_err(|e| e.to_string())?;
        let password = hex_token(12);
        let password_file = dir.path().join("pw");
        std::fs::write(&password_file, format!("{password}\n")).map_err(|e| e.to_string())?;
        let root = is_root();
        if root {
            chown_mysql(dir.path())?;
            chown_mysql(&data)?;
        }
        let user = if root { vec!["--user=mysql".to_string()] } else { Vec::new() };
        let out = Command::new("/usr/bin/mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(&user)
            .args(["--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "mariadb-install-db: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let init = dir.path().join("init.sql");
        std::fs::write(
            &init,
            format!(
                "CREATE USER IF NOT EXISTS 'tester'@'%' IDENTIFIED BY '{password}';\n\
                 GRANT ALL PRIVILEGES ON *.* TO 'tester'@'%' WITH GRANT OPTION;\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", data.display()),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={}", dir.path().join("s.sock").display()),
            format!("--pid-file={}", dir.path().join("m.pid").display()),
            format!("--log-error={}", dir.path().join("error.log").display()),
            format!("--init-file={}", init.display()),
            format!("--local-infile={}", if opts.no_local_infile { 0 } else { 1 }),
            "--innodb-buffer-pool-size=32M".into(),
            "--innodb-log-file-size=16M".into(),
            "--skip-name-resolve".into(),
            "--max-connections=40".into(),
        ];
        args.extend(user);
        args.extend(opts.extra.iter().cloned());
        if let Some((cert, key)) = &opts.tls {
            for (name, pem) in [("server.crt", cert), ("server.key", key)] {
                let p = dir.path().join(name);
                std::fs::write(&p, pem).map_err(|e| e.to_string())?;
                if root {
                    chown_mysql(&p)?;
                }
            }
            args.push(format!("--ssl-cert={}", dir.path().join("server.crt").display()));
            args.push(format!("--ssl-key={}", dir.path().join("server.key").display()));
        }
        let mut s = MariaServer { port: 0, password, dir, child: None, args, password_file };
        let mut last = String::new();
        for _ in 0..5 {
            s.port = free_port()?;
            match s.spawn() {
                Ok(()) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("/usr/sbin/mariadbd")
            .args(&self.args)
            .arg(format!("--port={}", self.port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                return Err(format!("mariadbd exited ({status}): {}", self.log_tail()));
            }
            if self.sql("SELECT 1").is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("mariadbd not ready after 60 s: {}", self.log_tail()))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Runs SQL as `tester` over TCP (plaintext); rows of fields.
    pub fn sql(&self, sql: &str) -> Result<Vec<Vec<String>>, String> {
        let port = self.port.to_string();
        client_sql(&["-h", "127.0.0.1", "-P", &port, "-utester", "--ssl=0"], &self.password, sql)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn password_file(&self) -> &Path {
        &self.password_file
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server at once (SIGKILL): no shutdown, crash recovery on the next start.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server cleanly (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }

    /// Starts the stopped server again on the same port.
    pub fn start_again(&mut self) -> Result<(), String> {
        if self.child.is_none() {
            self.spawn()?;
        }
        Ok(())
    }

    /// Backend settings for this server as `tester` (plaintext unless changed).
    pub fn settings(&self, extra: serde_json::Value) -> serde_json::Value {
        let mut s = serde_json::json!({
            "host": "127.0.0.1",
            "port": self.port,
            "user": "tester",
            "password_file": self.password_file.to_str().unwrap(),
            "sslmode": "disable",
            "connect_timeout": 10,
            "data_dir": self.data_dir().to_str().unwrap(),
        });
        if let serde_json::Value::Object(m) = extra {
            for (k, v) in m {
                s[k] = v;
            }
        }
        s
    }

    /// A shell command that restarts this server (SIGTERM, wait, start on the same port,
    /// wait until it answers): a `cold_command` for the runner. The server started by the
    /// command belongs to no test process; `Drop` stops it through its pid file.
    pub fn restart_command(&self) -> String {
        let pid_file = self.dir.path().join("m.pid");
        let args: Vec<String> = self.args.iter().map(|a| format!("'{a}'")).collect();
        // The server removes its pid file when it has shut down (a first server that is
        // the test's child stays a zombie until reaped, so `kill -0` cannot tell).
        format!(
            "(kill -TERM \"$(cat '{pid}')\"; for i in $(seq 1 600); do [ -e '{pid}' ] || break; sleep 0.1; done; \
             (setsid /usr/sbin/mariadbd {args} --port={port} </dev/null >/dev/null 2>&1 &); \
             for i in $(seq 1 300); do MYSQL_PWD=$(cat '{pw}') mariadb --no-defaults -h 127.0.0.1 -P {port} -utester \
             --ssl=0 -e 'SELECT 1' >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1)",
            pid = pid_file.display(),
            args = args.join(" "),
            port = self.port,
            pw = self.password_file.display()
        )
    }
}

impl Drop for MariaServer {
    fn drop(&mut self) {
        self.kill();
        // A server started by restart_command is not our child: stop it through its pid file,
        // after checking that the process is a server on this data directory.
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("m.pid")) {
            let pid = pid.trim().to_string();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ours = String::from_utf8_lossy(&cmdline).contains(&self.data_dir().display().to_string());
            if !pid.is_empty() && ours {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        }
    }
}

fn chown_mysql(p: &Path) -> Result<(), String> {
    let ok =
        Command::new("chown").args(["mysql:mysql", &p.display().to_string()]).status().map_err(|e| e.to_string())?;
    if ok.success() { Ok(()) } else { Err(format!("chown mysql {}", p.display())) }
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
