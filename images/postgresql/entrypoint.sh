#!/bin/bash
# Entrypoint of docker.io/mlplatform/postgresql:15 (Debian bookworm's PostgreSQL 15, run as postgres, uid/gid 999).
#
# First start (no $PGDATA/PG_VERSION): initdb (UTF8, C.UTF-8, data checksums, scram-sha-256), then create the
# role $POSTGRES_USER (LOGIN, not a superuser) with the password read from the file $POSTGRES_PASSWORD_FILE and
# the database $POSTGRES_DB owned by it. The password never appears in argv, in the environment or in a log: psql
# reads the file itself. Every start: exec postgres on *:5432, unix socket in /tmp, max_connections from
# $POSTGRES_MAX_CONNECTIONS (default 100); extra arguments are passed on to postgres (e.g. -c shared_buffers=256MB).
#
# Writable paths: $PGDATA's parent (a volume) and /tmp (an emptyDir); the root filesystem may be read-only.
# The superuser "postgres" has no password and is reachable only through the unix socket, as uid 999
# (kubectl exec ... -- psql -d DB). The password is applied on the first start only.
set -Eeuo pipefail

PGDATA=${PGDATA:-/var/lib/postgresql/data/pgdata}
max_connections=${POSTGRES_MAX_CONNECTIONS:-100}
socket_dir=/tmp

log() { printf '%s postgres-entrypoint: %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The password file's content, minus one trailing newline, is the password.
check_password_file() {
  local f=${POSTGRES_PASSWORD_FILE:-}
  [ -n "$f" ] || die "POSTGRES_PASSWORD_FILE is not set: name a file (a mounted Secret) holding the password"
  [ -r "$f" ] || die "POSTGRES_PASSWORD_FILE=$f is not a readable file"
  [ -n "$(tr -d '\n' < "$f" | head -c1)" ] || die "POSTGRES_PASSWORD_FILE=$f is empty"
  [ "$(tr -cd '\n' < "$f" | wc -c)" -le 1 ] || die "the password in $f must be one line"
  [ "$(tr -cd '\000' < "$f" | wc -c)" -eq 0 ] || die "the password in $f contains a NUL byte"
}

init_cluster() {
  local target=$PGDATA stage sockdir
  [ -n "${POSTGRES_USER:-}" ] || die "POSTGRES_USER is not set (the role to create on the first start)"
  [ -n "${POSTGRES_DB:-}" ] || die "POSTGRES_DB is not set (the database to create on the first start)"
  check_password_file
  if [ -d "$target" ]; then
    [ -z "$(ls -A "$target")" ] || die "PGDATA=$target is not empty but holds no cluster (no PG_VERSION): refusing to initialise over it"
    stage=$target # an empty mount point: initialise in place (an interrupted first start leaves it to be emptied)
  else
    mkdir -p "$(dirname "$target")"
    # initialise beside the target and rename it at the end, so an interrupted first start is simply redone
    stage=$(dirname "$target")/.$(basename "$target").initdb
    rm -rf "$stage"
  fi
  log "first start: initialising $target for role '$POSTGRES_USER' and database '$POSTGRES_DB'"
  initdb --pgdata="$stage" --username=postgres --encoding=UTF8 --locale=C.UTF-8 --data-checksums \
    --no-instructions --auth-local=peer --auth-host=scram-sha-256 >&2 || die "initdb failed"
  cat > "$stage/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER      ADDRESS     METHOD
local   all       postgres              peer
local   all       all                   scram-sha-256
host    all       all       0.0.0.0/0   scram-sha-256
host    all       all       ::/0        scram-sha-256
EOF
  # A private, socket-only server: nobody else can connect (and readiness over TCP fails) until it is done.
  sockdir=$(mktemp -d /tmp/postgres-init.XXXXXX)
  pg_ctl --pgdata="$stage" --wait --timeout=120 --silent \
    -o "-c listen_addresses= -c unix_socket_directories=$sockdir" start >&2
  psql -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -U postgres -d postgres \
    -v app_user="$POSTGRES_USER" -v app_db="$POSTGRES_DB" -v pwfile="$POSTGRES_PASSWORD_FILE" <<'SQL'
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
-- psql runs `cat FILE` itself; the value is quoted by :'pw' (one trailing newline is dropped).
\set pw `cat :'pwfile'`
SELECT :'app_user' = 'postgres' AS app_is_postgres,
       NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') AS db_missing \gset
\if :app_is_postgres
ALTER ROLE postgres PASSWORD :'pw';
\else
CREATE ROLE :"app_user" LOGIN PASSWORD :'pw';
\endif
\unset pw
\if :db_missing
CREATE DATABASE :"app_db" OWNER :"app_user";
\else
ALTER DATABASE :"app_db" OWNER TO :"app_user";
\endif
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;
SQL
  pg_ctl --pgdata="$stage" --wait --timeout=120 --silent --mode=fast stop >&2
  rmdir "$sockdir"
  [ "$stage" = "$target" ] || mv "$stage" "$target"
  log "first start: initialisation done"
}

[ "$(id -u)" != 0 ] || die "refusing to run as root: run as uid 999 (postgres), e.g. runAsUser: 999"
case $max_connections in '' | *[!0-9]*) die "POSTGRES_MAX_CONNECTIONS=$max_connections is not a number" ;; esac
umask 0077
[ -s "$PGDATA/PG_VERSION" ] || init_cluster
# A volume's fsGroup handling may have added group permissions; postgres refuses to start on those.
chmod 0700 "$PGDATA"
exec postgres -D "$PGDATA" -c listen_addresses='*' -c port=5432 -c unix_socket_directories="$socket_dir" \
  -c max_connections="$max_connections" "$@"
