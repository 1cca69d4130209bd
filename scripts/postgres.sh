#!/usr/bin/env bash
# Local PostgreSQL for agentstream: a private cluster (own data dir, own port, trust
# auth) run from Debian's server binaries. No Docker, no system service.
#
#   scripts/postgres.sh start    start the cluster where AGENTSTREAM_DATABASE_URL points,
#                                or reuse a server that already answers SQL there; then
#                                create the URL's database if it is missing
#   scripts/postgres.sh stop     stop the cluster this checkout started (nobody else's)
#   scripts/postgres.sh status   does a server answer? is ours running?
#   scripts/postgres.sh logs [-f] [-n N]   tail the server log
#
# Environment:
#   AGENTSTREAM_DATABASE_URL         default postgresql://postgres@127.0.0.1:5432/agentstream
#   AGENTSTREAM_PG_START_TIMEOUT     seconds to wait for SELECT 1 (default 60)
#
# State lives in <repo>/.services/postgres (git-ignored): data/, postgres.log. initdb
# refuses to run as root, so as root the cluster belongs to the `postgres` OS user; if
# that user cannot reach the repo (e.g. it is under /root, mode 700) the cluster goes to
# /tmp/agentstream-pg-<hash of the repo path> instead, and the script says so.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/_log.sh
source "$SCRIPT_DIR/_log.sh"
ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"
SERVICES="$ROOT/.services"
REPO_HASH="$(printf '%s' "$ROOT" | sha256sum | cut -c1-10)"
TMP_HOME="/tmp/agentstream-pg-$REPO_HASH"
START_TIMEOUT="${AGENTSTREAM_PG_START_TIMEOUT:-60}"
PG_USER_OS=postgres     # OS user that owns the cluster when we run as root

say() { printf 'postgres: %s\n' "$*"; }
die() { printf 'postgres: ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- URL -------------------------------------------------------------------------------
# Sets DB_USER DB_PASSWORD DB_HOST DB_PORT DB_NAME. Accepts SQLAlchemy-style schemes
# (postgresql+psycopg://) too. Python's urllib does the percent-decoding properly.
parse_url() {
    local assignments
    assignments="$(python3 - "${AGENTSTREAM_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/agentstream}" <<'PY'
import shlex, sys
from urllib.parse import urlsplit, unquote
u = urlsplit(sys.argv[1])
if not u.scheme.split("+")[0] in ("postgresql", "postgres"):
    sys.exit(f"not a postgresql:// URL: {sys.argv[1]}")
vals = {
    "DB_USER": unquote(u.username or "postgres"),
    "DB_PASSWORD": unquote(u.password or ""),
    "DB_HOST": u.hostname or "127.0.0.1",
    "DB_PORT": str(u.port or 5432),
    "DB_NAME": unquote(u.path.lstrip("/")) or "agentstream",
}
for k, v in vals.items():
    print(f"{k}={shlex.quote(v)}")
PY
)" || die "cannot parse AGENTSTREAM_DATABASE_URL"
    eval "$assignments"
}

# --- binaries --------------------------------------------------------------------------
# BIN = server binaries. An existing cluster keeps the major version it was made with
# (PG_VERSION); a new one gets the newest installed.
find_bin() {
    BIN=""
    local home v
    for home in "$SERVICES/postgres" "$TMP_HOME"; do
        if [[ -f "$home/data/PG_VERSION" ]]; then
            v="$(cat "$home/data/PG_VERSION")"
            [[ -x "/usr/lib/postgresql/$v/bin/postgres" ]] && { BIN="/usr/lib/postgresql/$v/bin"; return 0; }
        fi
    done
    # shellcheck disable=SC2012  # names are major versions (15, 16, ...)
    v="$(ls -1 /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -n "$v" && -x "/usr/lib/postgresql/$v/bin/postgres" ]]; then
        BIN="/usr/lib/postgresql/$v/bin"
    elif command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
        BIN="$(dirname -- "$(command -v pg_ctl)")"     # non-Debian layouts
    fi
    [[ -n "$BIN" ]]
}

find_psql() {
    PSQL=""
    if [[ -n "${BIN:-}" && -x "$BIN/psql" ]]; then PSQL="$BIN/psql"
    elif command -v psql >/dev/null; then PSQL="$(command -v psql)"
    fi
    [[ -n "$PSQL" ]]
}

install_postgres() {
    ((EUID == 0)) || die "PostgreSQL is not installed and we are not root: sudo apt-get install -y postgresql"
    command -v apt-get >/dev/null || die "PostgreSQL is not installed and there is no apt-get; install PostgreSQL server binaries"
    local t0; t0="$(now)"
    say "PostgreSQL not installed; apt-get install postgresql (once)"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null
    say "installed in $(since "$t0") s"
    # The Debian package creates and starts its own "main" cluster on 5432 (scram auth,
    # so not usable by us). Stop any such cluster on our port, and make it manual so a
    # reboot or `service postgresql start` does not take the port back.
    if command -v pg_lsclusters >/dev/null; then
        local ver name port _rest
        while read -r ver name port _rest; do
            [[ "$port" == "$DB_PORT" ]] || continue
            say "stopping Debian's auto-started cluster $ver/$name on port $port (set to manual start)"
            pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
            [[ -f "/etc/postgresql/$ver/$name/start.conf" ]] && echo manual >"/etc/postgresql/$ver/$name/start.conf"
        done < <(pg_lsclusters --no-header 2>/dev/null)
    fi
}

# --- where our cluster lives -------------------------------------------------------------
as_pg() {  # run a command as the cluster owner; cd / so postgres never trips over cwd perms
    if ((EUID == 0)); then (cd / && runuser -u "$PG_USER_OS" -- "$@"); else "$@"; fi
}

resolve_home() {
    # An existing cluster stays where it is.
    if [[ -f "$SERVICES/postgres/data/PG_VERSION" ]]; then PGHOME="$SERVICES/postgres"
    elif [[ -f "$TMP_HOME/data/PG_VERSION" ]]; then PGHOME="$TMP_HOME"
    elif ((EUID != 0)); then PGHOME="$SERVICES/postgres"
    else
        id "$PG_USER_OS" >/dev/null 2>&1 || die "no '$PG_USER_OS' OS user (it comes with the postgresql package)"
        mkdir -p "$SERVICES"
        if runuser -u "$PG_USER_OS" -- test -x "$SERVICES"; then
            PGHOME="$SERVICES/postgres"
        else
            PGHOME="$TMP_HOME"
            say "user $PG_USER_OS cannot traverse $SERVICES; the cluster lives in $PGHOME"
        fi
    fi
    DATA="$PGHOME/data"
    LOG_FILE="$PGHOME/postgres.log"
    # The Unix socket goes next to the data dir, unless that path is too long for a
    # socket (sun_path is 108 bytes); TCP is what clients use anyway.
    SOCK_DIR="$PGHOME"
    if (( ${#SOCK_DIR} + 20 > 100 )); then SOCK_DIR="$TMP_HOME-sock"; fi
}

ours_running() {  # is the cluster in $DATA running?
    [[ -f "$DATA/postmaster.pid" && -n "${BIN:-}" ]] || return 1
    as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

# --- SQL -------------------------------------------------------------------------------------
psql_admin() {  # psql against the maintenance db "postgres", over TCP, as the URL's user
    PGPASSWORD="$DB_PASSWORD" PGCONNECT_TIMEOUT=3 "$PSQL" -X -q -v ON_ERROR_STOP=1 \
        -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d postgres "$@"
}

sql_ok() { [[ -n "${PSQL:-}" ]] && [[ "$(psql_admin -tAc 'select 1' 2>/dev/null)" == 1 ]]; }

port_in_use() { (exec 3<>"/dev/tcp/$DB_HOST/$DB_PORT") 2>/dev/null; }

ensure_database() {
    # psql interpolates :'var' / :"var" only in input read from stdin/-f, not in -c.
    local exists
    exists="$(printf '%s\n' "select 1 from pg_database where datname = :'db';" |
        psql_admin -tA -v db="$DB_NAME")"
    if [[ "$exists" == 1 ]]; then
        say "database \"$DB_NAME\" exists"
        return 0
    fi
    if printf '%s\n' 'create database :"db";' | psql_admin -v db="$DB_NAME" 2>/dev/null; then
        say "created database \"$DB_NAME\""
    else
        # Lost a race with another starter? Then it exists now, which is all we want.
        exists="$(printf '%s\n' "select 1 from pg_database where datname = :'db';" |
            psql_admin -tA -v db="$DB_NAME")"
        [[ "$exists" == 1 ]] || die "could not create database \"$DB_NAME\" as user $DB_USER"
    fi
}

show_failure() {
    printf 'postgres: ---- last 40 lines of %s ----\n' "$LOG_FILE" >&2
    tail -n 40 "$LOG_FILE" >&2 2>/dev/null || echo "(no log yet)" >&2
}

# --- commands -----------------------------------------------------------------------------
init_cluster() {
    [[ -f "$DATA/PG_VERSION" ]] && return 0
    local locale=C t0
    # C.UTF-8: byte-order collation like C (fast, stable), but UTF-8 aware ctype.
    locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$' && locale=C.UTF-8
    mkdir -p "$DATA"
    ((EUID == 0)) && chown -R "$PG_USER_OS:" "$PGHOME"
    chmod 700 "$DATA"
    t0="$(now)"
    say "initdb $DATA ($("$BIN/postgres" --version | awk '{print $3}'), superuser $DB_USER, trust auth, UTF8, locale $locale)"
    if ! as_pg "$BIN/initdb" -D "$DATA" -U "$DB_USER" --auth=trust -E UTF8 --locale="$locale" \
            --no-instructions >"$PGHOME/initdb.log" 2>&1; then
        tail -n 40 "$PGHOME/initdb.log" >&2
        rm -rf "$DATA"
        die "initdb failed"
    fi
    # Our settings live in a file of their own, rewritten on every start.
    printf "\n# agentstream: settings written by scripts/postgres.sh\ninclude_if_exists = 'agentstream.conf'\n" \
        >>"$DATA/postgresql.conf"
    say "initdb done in $(since "$t0") s"
}

write_settings() {
    mkdir -p "$SOCK_DIR"
    ((EUID == 0)) && chown "$PG_USER_OS:" "$SOCK_DIR"
    local f="$DATA/agentstream.conf"
    cat >"$f" <<EOF
# Written by scripts/postgres.sh on every start (from AGENTSTREAM_DATABASE_URL).
listen_addresses = '$DB_HOST'
port = $DB_PORT
unix_socket_directories = '$SOCK_DIR'
max_connections = 100
shared_buffers = 256MB
# Durability is part of the contract: a committed row survives a crash. Keep these on.
fsync = on
synchronous_commit = on
full_page_writes = on
EOF
    ((EUID == 0)) && chown "$PG_USER_OS:" "$f"
    return 0
}

cmd_start() {
    parse_url
    mkdir -p "$SERVICES"
    exec 9>"$SERVICES/.postgres.lock"      # no two starts at once
    flock 9

    find_bin || true
    find_psql || true
    if sql_ok; then
        if [[ -n "$BIN" ]] && resolve_home && ours_running; then
            say "already running ($DATA), answers at $DB_HOST:$DB_PORT"
        else
            say "reusing the server that answers at $DB_HOST:$DB_PORT"
        fi
        ensure_database
        return 0
    fi
    if [[ -z "$BIN" ]]; then
        install_postgres
        find_bin || die "PostgreSQL server binaries not found after installing"
        find_psql || die "psql not found after installing"
    fi
    resolve_home

    local t0 t_start
    t0="$(now)"
    if ours_running; then
        say "our cluster ($DATA) is running but does not answer yet; waiting"
        t_start="$t0"
    else
        if port_in_use; then
            local hint="" debian=""
            command -v pg_lsclusters >/dev/null &&
                debian="$(pg_lsclusters --no-header 2>/dev/null | awk -v p="$DB_PORT" '$3 == p && $4 == "online" {print $1" "$2}' | head -n 1)"
            [[ -n "$debian" ]] && hint=" (it is Debian's cluster $debian: 'pg_ctlcluster $debian stop' frees the port)"
            die "$DB_HOST:$DB_PORT is taken by a server that does not accept '$DB_USER' without a password$hint; free the port or set AGENTSTREAM_DATABASE_URL"
        fi
        init_cluster
        write_settings
        t_start="$(now)"
        say "starting PostgreSQL at $DB_HOST:$DB_PORT, data in $DATA"
        # pg_ctl puts the postmaster in its own session, so a Ctrl-C in the calling
        # make does not reach it. -w waits until the postmaster reports "ready" (or
        # dies); SELECT 1 below then proves it answers at the URL's address.
        # 9>&-: the server must not inherit (and hold forever) our lock.
        if ! as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG_FILE" -w -t "$START_TIMEOUT" start >/dev/null 9>&-; then
            show_failure
            ours_running && die "PostgreSQL did not become ready in ${START_TIMEOUT} s (still running; 'scripts/postgres.sh stop' stops it)"
            die "PostgreSQL failed to start (full log: $LOG_FILE)"
        fi
    fi

    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if sql_ok; then
            say "ready in $(since "$t_start") s (SELECT 1 at $DB_HOST:$DB_PORT as $DB_USER)"
            ensure_database
            return 0
        fi
        if ! ours_running; then
            show_failure
            die "PostgreSQL exited during startup (full log: $LOG_FILE)"
        fi
        sleep 0.3
    done
    show_failure
    die "no SELECT 1 at $DB_HOST:$DB_PORT after ${START_TIMEOUT} s (the server is still running; 'scripts/postgres.sh stop' stops it)"
}

cmd_stop() {
    parse_url
    find_bin || true
    resolve_home
    if ! ours_running; then
        say "no cluster started from this checkout is running (others, if any, are left alone)"
        return 0
    fi
    say "stopping $DATA (fast: rolls back open transactions, keeps committed data)"
    as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
    say "stopped"
}

cmd_status() {
    parse_url
    find_bin || true
    find_psql || true
    resolve_home
    if ours_running; then
        say "this checkout's cluster: running ($DATA)"
    else
        say "this checkout's cluster: not running"
    fi
    if sql_ok; then
        local v
        v="$(psql_admin -tAc 'show server_version' 2>/dev/null)"
        say "server $v answers at $DB_HOST:$DB_PORT (user $DB_USER, database $DB_NAME)"
    else
        say "no server answers SQL at $DB_HOST:$DB_PORT as $DB_USER"
        return 3
    fi
}

cmd_logs() {
    resolve_home
    tail_log "$LOG_FILE" "$@"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    logs) shift; cmd_logs "$@" ;;
    *) echo "usage: $0 {start|stop|status|logs [-f] [-n N]}" >&2; exit 2 ;;
esac
