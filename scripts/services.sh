#!/usr/bin/env bash
# scripts/services.sh — install, start and stop the local test servers that
# dedup-lab's test suite and CLI measure.
#
#   scripts/services.sh up     [system…]   install what is missing, start, wait until ready
#   scripts/services.sh down   [system…]   stop what THIS script started, remove its state
#   scripts/services.sh env    [system…]   print `export …` lines (for eval) for running systems
#   scripts/services.sh status [system…]   one line per system
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
#   DEDUP_LAB_PG_BIN_DIR       force a PostgreSQL bin dir (default: /usr/lib/postgresql/15/bin,
#                              else the newest /usr/lib/postgresql/*/bin)

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
  local pid waited=0
  if [[ ! -f "$MARIADB_MARKER" ]]; then
    log "mariadb: not started by $PROG; nothing to stop"
    return 0
  fi
  if mariadb_running; then
    pid="$(head -n1 -- "$MARIADB_PID")"
    log "mariadb: stopping (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
      if ((waited >= START_TIMEOUT)); then
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 1
      waited=$((waited + 1))
    done
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
usage: $PROG {up|down|env|status} [system…]
systems: ${SYSTEMS[*]} (default: all)
  up      install missing packages, start, wait until ready (idempotent)
  down    stop servers this script started and delete their state
  env     print 'export …' lines for running systems: eval "\$($PROG env)"
  status  show what is running
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
    up | down | env | status) ;;
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
