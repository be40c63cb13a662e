#!/bin/bash
# Entrypoint of docker.io/mlplatform/mariadb:10.11 (Debian bookworm's MariaDB 10.11, run as mysql, uid/gid 999).
#
# First start (no $MARIADB_DATADIR/mysql): mariadb-install-db (root@localhost and mysql@localhost authenticate by
# unix socket only, no test database), then create the database $MARIADB_DATABASE (utf8mb4) and the user
# '$MARIADB_USER'@'%' with ALL on it, password read from the file $MARIADB_PASSWORD_FILE. The password never
# appears in argv or in the environment: it goes hex-encoded through a pipe into the client. Every start: exec
# mariadbd on 0.0.0.0:3306, socket /tmp/mysqld.sock, max_connections from $MARIADB_MAX_CONNECTIONS (default 100),
# log_bin_trust_function_creators=1 (/etc/mysql/my.cnf); extra arguments are passed on to mariadbd.
#
# Writable paths: $MARIADB_DATADIR's parent (a volume, /var/lib/mysql) and /tmp (an emptyDir); the root
# filesystem may be read-only. Admin access: kubectl exec ... -- mariadb (OS user mysql = mysql@localhost).
# The password is applied on the first start only.
set -Eeuo pipefail

MARIADB_DATADIR=${MARIADB_DATADIR:-/var/lib/mysql/data}
max_connections=${MARIADB_MAX_CONNECTIONS:-100}

log() { printf '%s mariadb-entrypoint: %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# hex FILE: the file's bytes as hex, minus one trailing newline
hex() { od -An -v -tx1 "$1" | tr -d ' \n' | sed 's/0a$//'; }

init_datadir() {
  local target=$MARIADB_DATADIR stage tmp pid f=${MARIADB_PASSWORD_FILE:-} i
  [ -n "${MARIADB_USER:-}" ] || die "MARIADB_USER is not set (the user to create on the first start)"
  [ -n "${MARIADB_DATABASE:-}" ] || die "MARIADB_DATABASE is not set (the database to create on the first start)"
  case $MARIADB_USER in root | mysql) die "MARIADB_USER may not be $MARIADB_USER (a socket-only admin account)" ;; esac
  [ -n "$f" ] || die "MARIADB_PASSWORD_FILE is not set: name a file (a mounted Secret) holding the password"
  [ -r "$f" ] || die "MARIADB_PASSWORD_FILE=$f is not a readable file"
  [ -n "$(hex "$f")" ] || die "MARIADB_PASSWORD_FILE=$f is empty"
  [ "$(tr -cd '\n' < "$f" | wc -c)" -le 1 ] || die "the password in $f must be one line"
  if [ -d "$target" ]; then
    [ -z "$(ls -A "$target")" ] || die "MARIADB_DATADIR=$target is not empty but holds no mysql schema: refusing to initialise over it"
    stage=$target
  else
    mkdir -p "$(dirname "$target")"
    stage=$(dirname "$target")/.$(basename "$target").install
    rm -rf "$stage"
  fi
  log "first start: initialising $target for user '$MARIADB_USER' and database '$MARIADB_DATABASE'"
  # --force: a pod's hostname need not resolve; --skip-name-resolve keeps host names out of the grant tables
  mariadb-install-db --datadir="$stage" --auth-root-authentication-method=socket --skip-test-db \
    --auth-root-socket-user="$(id -un)" --skip-name-resolve --force >&2 || die "mariadb-install-db failed"
  # A private server without networking: nobody else can connect (and readiness fails) until it is done.
  tmp=$(mktemp -d /tmp/mariadb-init.XXXXXX)
  mariadbd --datadir="$stage" --skip-networking --socket="$tmp/sock" --pid-file="$tmp/pid" &
  pid=$!
  for i in $(seq 120); do
    mariadb-admin --socket="$tmp/sock" --user="$(id -un)" --silent ping >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || die "the initialising mariadbd exited"
    sleep 0.5
  done
  [ "$i" -lt 120 ] || die "the initialising mariadbd did not answer within 60 s"
  {
    echo "SET NAMES utf8mb4;"
    echo "SET @u = CONVERT(X'$(printf '%s' "$MARIADB_USER" | od -An -v -tx1 | tr -d ' \n')' USING utf8mb4),"
    echo "    @d = CONVERT(X'$(printf '%s' "$MARIADB_DATABASE" | od -An -v -tx1 | tr -d ' \n')' USING utf8mb4),"
    echo "    @p = CONVERT(X'$(hex "$f")' USING utf8mb4);"
    cat <<'SQL'
SET @dq = CONCAT('`', REPLACE(@d, '`', '``'), '`');
SET @s = CONCAT('CREATE DATABASE IF NOT EXISTS ', @dq, ' CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci');
PREPARE st FROM @s; EXECUTE st; DEALLOCATE PREPARE st;
SET @s = CONCAT('CREATE USER ', QUOTE(@u), '@''%'' IDENTIFIED BY ', QUOTE(@p));
PREPARE st FROM @s; EXECUTE st; DEALLOCATE PREPARE st;
SET @s = CONCAT('GRANT ALL PRIVILEGES ON ', @dq, '.* TO ', QUOTE(@u), '@''%''');
PREPARE st FROM @s; EXECUTE st; DEALLOCATE PREPARE st;
SET @p = NULL, @s = NULL;
-- install-db also grants proxying to the build host's name, which --skip-name-resolve ignores with a warning
DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';
FLUSH PRIVILEGES;
SQL
  } | mariadb --socket="$tmp/sock" --user="$(id -un)" --batch
  mariadb-admin --socket="$tmp/sock" --user="$(id -un)" shutdown
  wait "$pid" || die "the initialising mariadbd did not stop cleanly"
  rm -rf "$tmp"
  [ "$stage" = "$target" ] || mv "$stage" "$target"
  log "first start: initialisation done"
}

[ "$(id -u)" != 0 ] || die "refusing to run as root: run as uid 999 (mysql), e.g. runAsUser: 999"
case $max_connections in '' | *[!0-9]*) die "MARIADB_MAX_CONNECTIONS=$max_connections is not a number" ;; esac
umask 0077
[ -d "$MARIADB_DATADIR/mysql" ] || init_datadir
exec mariadbd --datadir="$MARIADB_DATADIR" --max-connections="$max_connections" "$@"
