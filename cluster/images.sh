#!/usr/bin/env bash
# Build the local cluster's container images as OCI archives: no Docker engine, no registry, no pulls.
#
#   cluster/images.sh [build] [NAME...]   build the named images (default: all), skipping any whose archive for
#                                         the current definition already exists
#   cluster/images.sh list [NAME...]      print "<reference>\t<archive>" per image, for the current definitions
#                                         (whether built or not: `build` first)
#   cluster/images.sh names [--with-binaries | --without-binaries]
#                                         print the image names (only those packed from binaries of build.sh,
#                                         or only the others)
#   cluster/images.sh names --of REF...   print the names of the images built as these references (repo:tag);
#                                         references of no image here are left out
#
# Each image lands in $IMAGE_DIR/<repository basename>-<tag>-<content hash>.oci.tar: an OCI image layout, tarred,
# one manifest whose ref.name is the tag and whose io.containerd.image.name is the full reference, so both
#   ctr -n k8s.io images import --base-name docker.io/mlplatform/mlflow mlflow-3.17.2-<hash>.oci.tar
#   ctr -n k8s.io images import mlflow-3.17.2-<hash>.oci.tar
# name it docker.io/mlplatform/mlflow:3.17.2. The content hash covers the image's files under images/, the build
# functions below, the versions and the base it starts from. Images built from Debian start from one shared base
# layer (debootstrap minbase + python3, python3-venv, ca-certificates and the security updates, from the Debian
# mirror of the host's apt sources), cached as $IMAGE_DIR/base-bookworm-<key>.oci.tar.
# pause and coredns are packed from the binaries cluster/build.sh leaves in $BIN_DIR, so they are built last.
# cloud-sql-proxy (the Cloud SQL Auth Proxy v2, built from the Go module proxy into a cache keyed by its version) is
# built only when named (`cluster/images.sh build cloud-sql-proxy`): only the Cloud SQL key test needs it.
# mlserver (MLServer 1.7.1 with its MLflow runtime) is built only when named too: only benchmarks/bench_serving.py
# runs it.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

IMAGES_SRC=$(cd "$CLUSTER_DIR/../images" && pwd)
ALL_IMAGES=(busybox gcs-emulator postgresql mariadb mlflow mlflow-3.16 pause coredns)
OPTIONAL_IMAGES=(cloud-sql-proxy mlserver) # built and listed only when named
CLOUD_SQL_PROXY_VERSION=v2.25.3  # v2.18.2 and older are not served by the Go module proxy (403)
DEBIAN_SUITE=bookworm
BASE_PACKAGES=(python3 python3-venv ca-certificates)
BASE_REVISION=1 # bump to rebuild the base on purpose (e.g. to pick up newer security updates)
WHEELHOUSE=$MLP_CACHE/wheels # the wheels pip downloaded, shared by the image builds (bind-mounted into the chroot)
DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORK=
LOGFILE=/dev/null

# ---------------------------------------------------------------------------------------------- host helpers --

# apt_mirror SUITE: the first URI of the host's apt sources (one-line or deb822 format) that serves SUITE.
apt_mirror() {
  local files=() f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || return 0
  awk -v suite="$1" '
    function flush() {
      if (!found && uris != "" && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ")) {
        split(uris, u, " "); print u[1]; found = 1
      }
      types = uris = suites = ""
    }
    FNR == 1 { flush() }
    FILENAME ~ /\.sources$/ {
      if ($0 ~ /^[ \t]*$/) { flush(); next }
      key = $1; $1 = ""; sub(/^ +/, "")
      if (key == "Types:") types = $0; else if (key == "URIs:") uris = $0; else if (key == "Suites:") suites = $0
      next
    }
    !found && $1 == "deb" {
      i = 2
      if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
      if ($(i + 1) == suite) { print $i; found = 1 }
    }
    END { flush() }' "${files[@]}"
}
debian_mirror() { local m; m=$(apt_mirror "$DEBIAN_SUITE"); echo "${m:-http://deb.debian.org/debian}"; }
security_mirror() {
  local m; m=$(apt_mirror "$DEBIAN_SUITE-security"); echo "${m:-http://deb.debian.org/debian-security}"
}

# Debian packages this script runs, installed when missing (a fresh machine).
ensure_tools() {
  local missing=() pair
  for pair in debootstrap:debootstrap umoci:umoci jq:jq setcap:libcap2-bin flock:util-linux; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  [ -x /bin/busybox ] && /bin/busybox --list-full >/dev/null 2>&1 || missing+=(busybox-static)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# quiet CMD...: run CMD with its output in $LOGFILE; on failure show the end of it and stop.
quiet() {
  printf '+ %s\n' "$*" >>"$LOGFILE"
  "$@" >>"$LOGFILE" 2>&1 || { tail -n 40 "$LOGFILE" >&2; die "failed: $* (full log: $LOGFILE)"; }
}

# Unmount everything under DIR (deepest first).
umount_under() {
  local m
  awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
}

cleanup() {
  local rc=$?
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    umount_under "$WORK"
    rm -rf --one-file-system "$WORK"
  fi
  exit $rc
}

# ------------------------------------------------------------------------------------------- chroot helpers --

# in_root ROOT CMD...: run CMD inside ROOT as root with a clean environment (no host PIP_*, proxies or CA paths).
in_root() {
  local root=$1
  shift
  env -i PATH=$DEFAULT_PATH HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$root" "$@"
}

# as_user ROOT UID:GID CMD...: run CMD inside ROOT as UID:GID (for smoke tests).
as_user() {
  local root=$1 user=$2
  shift 2
  env -i PATH=$DEFAULT_PATH HOME=/tmp LANG=C.UTF-8 chroot --userspec="$user" "$root" "$@"
}

mount_proc() { mountpoint -q "$1/proc" || mount -t proc proc "$1/proc"; }

# net_on ROOT: name resolution and the policy that keeps package scripts from starting services.
net_on() {
  rm -f "$1/etc/resolv.conf"
  cat /etc/resolv.conf >"$1/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$1/usr/sbin/policy-rc.d"
  chmod 0755 "$1/usr/sbin/policy-rc.d"
}

# apt_get ROOT ARGS...: apt-get in the chroot (with /proc, unmounted by finish_rootfs).
apt_get() {
  local root=$1
  shift
  mount_proc "$root"
  quiet in_root "$root" apt-get -y -q -o Dpkg::Use-Pty=0 "$@"
}

# venv_install ROOT VENV REQUIREMENTS: a venv with the pinned requirements. pip downloads into a wheelhouse that
# outlives the build (through the host's CA bundle: the egress proxy's CA is only there), then installs from it
# alone; wheelhouse and CA bundle are gone from the image afterwards.
venv_install() {
  local root=$1 venv=$2 req=$3
  quiet in_root "$root" python3 -m venv "$venv"
  cp "$req" "$root/tmp/requirements.txt"
  cp /etc/ssl/certs/ca-certificates.crt "$root/tmp/host-ca.pem"
  mkdir -p "$WHEELHOUSE" "$root/tmp/wheels"
  mount --bind "$WHEELHOUSE" "$root/tmp/wheels"
  quiet in_root "$root" "$venv/bin/pip" download --disable-pip-version-check --no-input --no-cache-dir \
    --cert /tmp/host-ca.pem --dest /tmp/wheels -r /tmp/requirements.txt
  quiet in_root "$root" "$venv/bin/pip" install --disable-pip-version-check --no-input --no-cache-dir \
    --root-user-action=ignore --no-index --find-links /tmp/wheels -r /tmp/requirements.txt
  umount "$root/tmp/wheels"
  quiet in_root "$root" "$venv/bin/pip" check
}

# finish_rootfs ROOT: unmount, drop package lists, caches, logs, docs and the build-time network settings.
finish_rootfs() {
  local root=$1
  umount_under "$root"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root"/root/.cache "$root"/tmp/* "$root"/tmp/.[!.]* \
    "$root"/var/tmp/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian
  find "$root/var/log" -type f -delete
  [ ! -d "$root/usr/share/doc" ] || find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  [ ! -d "$root/usr/share/doc" ] || find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  [ ! -d "$root/usr/share/locale" ] || find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
  rm -f "$root/etc/resolv.conf" "$root/usr/sbin/policy-rc.d"
  : >"$root/etc/resolv.conf"
}

# ------------------------------------------------------------------------------------------- OCI plumbing --

# begin_scratch: an empty image in $L (layout), unpacked at $B (bundle); its rootfs is $R.
begin_scratch() {
  L=$WORK/$NAME/layout B=$WORK/$NAME/bundle R=$WORK/$NAME/bundle/rootfs
  mkdir -p "$WORK/$NAME"
  quiet umoci init --layout "$L"
  quiet umoci new --image "$L:build"
  quiet umoci unpack --image "$L:build" "$B"
}

# begin_from_base: the shared Debian base, unpacked at $B; changes to $R become the image's second layer.
begin_from_base() {
  L=$WORK/$NAME/layout B=$WORK/$NAME/bundle R=$WORK/$NAME/bundle/rootfs
  mkdir -p "$L"
  tar -C "$L" -xf "$(base_archive)"
  quiet umoci tag --image "$L:base" build
  quiet umoci rm --image "$L:base"
  quiet umoci unpack --image "$L:build" "$B"
}

# commit_image [umoci config options...]: repack $B as $REF:$TAG with the given configuration, write the archive.
commit_image() {
  quiet umoci repack --image "$L:build" --history.created_by "cluster/images.sh build $NAME" "$B"
  quiet umoci config --image "$L:build" --tag "$TAG" --architecture amd64 --os linux --author mlplatform \
    --clear=config.env --clear=config.entrypoint --clear=config.cmd --clear=config.labels \
    --config.label "org.opencontainers.image.title=$REF" --config.label "org.opencontainers.image.version=$TAG" \
    --config.label "io.mlplatform.content-hash=$HASH" --history.created_by "umoci config" "$@"
  quiet umoci rm --image "$L:build"
  quiet umoci gc --layout "$L"
  jq --arg name "$REF:$TAG" '.manifests |= map(.annotations["io.containerd.image.name"] = $name)' \
    "$L/index.json" >"$L/index.json.new"
  mv "$L/index.json.new" "$L/index.json"
  tar -C "$L" --sort=name --numeric-owner --owner=0 --group=0 -cf "$OUT.tmp" .
  mv "$OUT.tmp" "$OUT"
}

# ------------------------------------------------------------------------------------------------- the base --

base_key() {
  {
    echo "$DEBIAN_SUITE revision=$BASE_REVISION packages=${BASE_PACKAGES[*]}"
    echo "mirrors=$(debian_mirror) $(security_mirror)"
    declare -f build_base finish_rootfs net_on apt_get in_root
  } | sha256sum | cut -c1-12
}
base_archive() { echo "$IMAGE_DIR/base-$DEBIAN_SUITE-$(base_key).oci.tar"; }

build_base() {
  local out mirror start=$SECONDS L B R f
  out=$(base_archive)
  [ ! -f "$out" ] || return 0
  mirror=$(debian_mirror)
  LOGFILE=$IMAGE_DIR/logs/base.log
  : >"$LOGFILE"
  log "building the $DEBIAN_SUITE base: debootstrap minbase + ${BASE_PACKAGES[*]} from $mirror"
  L=$WORK/base/layout B=$WORK/base/bundle R=$WORK/base/bundle/rootfs
  mkdir -p "$WORK/base"
  quiet umoci init --layout "$L"
  quiet umoci new --image "$L:base"
  quiet umoci unpack --image "$L:base" "$B"
  quiet debootstrap --variant=minbase --include="$(IFS=,; echo "${BASE_PACKAGES[*]}")" "$DEBIAN_SUITE" "$R" "$mirror"
  umount_under "$R"
  # Later package installs skip docs, man pages, translations and recommends.
  cat >"$R/etc/dpkg/dpkg.cfg.d/01-mlplatform-slim" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/lintian/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
EOF
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$R/etc/apt/apt.conf.d/01-mlplatform"
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' "$mirror" "$DEBIAN_SUITE" \
    "$mirror" "$DEBIAN_SUITE" "$(security_mirror)" "$DEBIAN_SUITE" >"$R/etc/apt/sources.list"
  net_on "$R"
  apt_get "$R" update
  apt_get "$R" upgrade
  apt_get "$R" clean
  finish_rootfs "$R"
  rm -f "$R/etc/hostname"
  quiet umoci repack --image "$L:base" --history.created_by "debootstrap --variant=minbase $DEBIAN_SUITE + ${BASE_PACKAGES[*]}" "$B"
  quiet umoci config --image "$L:base" --architecture amd64 --os linux --config.env "PATH=$DEFAULT_PATH" \
    --config.env LANG=C.UTF-8 --history.created_by "umoci config"
  quiet umoci gc --layout "$L"
  tar -C "$L" --sort=name --numeric-owner --owner=0 --group=0 -cf "$out.tmp" .
  mv "$out.tmp" "$out"
  rm -rf --one-file-system "$WORK/base"
  for f in "$IMAGE_DIR/base-$DEBIAN_SUITE"-*.oci.tar; do [ "$f" = "$out" ] || rm -f "$f"; done
  log "built the base in $((SECONDS - start)) s: $(du -m "$out" | cut -f1) MB"
  LOGFILE=$IMAGE_DIR/logs/$NAME.log
}

# ----------------------------------------------------------------------------------------------- the images --
# Each build_* function runs with NAME, REF, TAG, HASH, OUT set and writes $OUT.

# build_mlflow REQUIREMENTS: the tracking server / model server (same venv, user and command as the Dockerfile).
build_mlflow() {
  begin_from_base
  quiet in_root "$R" groupadd --gid 10001 mlflow
  quiet in_root "$R" useradd --uid 10001 --gid 10001 --home-dir /home/mlflow --create-home --shell /usr/sbin/nologin mlflow
  net_on "$R"
  venv_install "$R" /opt/mlflow "$IMAGES_SRC/mlflow/$1"
  # The wheels' own test suites (pandas, scipy, numpy, pyarrow...: 125 MB) are never imported; the Dockerfile
  # prunes them the same way.
  find "$R/opt/mlflow/lib/python3.11/site-packages" -depth -type d -name tests -exec rm -rf {} +
  # The model server of model_serving (`python -m mlplatform_scoring`).
  install -m 0644 "$IMAGES_SRC/mlflow/mlplatform_scoring.py" "$R/opt/mlflow/lib/python3.11/site-packages/"
  # Smoke test as the image's user: the CLI, the drivers and the extras the deployments rely on.
  quiet as_user "$R" 10001:10001 /opt/mlflow/bin/mlflow --version
  quiet as_user "$R" 10001:10001 /opt/mlflow/bin/python -c 'import psycopg2, psycopg, pymysql, google.cloud.storage, sklearn, flask_wtf, prometheus_flask_exporter, uvicorn, mlflow.server.auth, mlplatform_scoring, orjson, uvloop, httptools'
  finish_rootfs "$R"
  commit_image --config.user 10001:10001 --config.workingdir /home/mlflow --config.exposedports 5000/tcp \
    --config.env "PATH=/opt/mlflow/bin:$DEFAULT_PATH" --config.env PYTHONUNBUFFERED=1 \
    --config.env PYTHONDONTWRITEBYTECODE=1 --config.env HOME=/home/mlflow --config.env LANG=C.UTF-8 \
    --config.env GIT_PYTHON_REFRESH=quiet --config.cmd mlflow --config.cmd --version
}

# build_mlserver: MLServer with its MLflow runtime, the peer benchmarks/bench_serving.py measures serving against.
build_mlserver() {
  begin_from_base
  quiet in_root "$R" groupadd --gid 10001 mlserver
  quiet in_root "$R" useradd --uid 10001 --gid 10001 --home-dir /home/mlserver --create-home --shell /usr/sbin/nologin mlserver
  net_on "$R"
  venv_install "$R" /opt/mlserver "$IMAGES_SRC/mlserver/requirements.txt"
  find "$R/opt/mlserver/lib/python3.11/site-packages" -depth -type d -name tests -exec rm -rf {} +
  quiet as_user "$R" 10001:10001 /opt/mlserver/bin/python -c 'import mlserver, mlserver_mlflow, sklearn, uvloop'
  finish_rootfs "$R"
  commit_image --config.user 10001:10001 --config.workingdir /home/mlserver --config.exposedports 8080/tcp \
    --config.env "PATH=/opt/mlserver/bin:$DEFAULT_PATH" --config.env PYTHONUNBUFFERED=1 \
    --config.env PYTHONDONTWRITEBYTECODE=1 --config.env HOME=/home/mlserver --config.env LANG=C.UTF-8 \
    --config.env GIT_PYTHON_REFRESH=quiet --config.cmd mlserver --config.cmd --help
}

build_gcs_emulator() {
  begin_from_base
  quiet in_root "$R" groupadd --gid 10001 gcs
  quiet in_root "$R" useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin gcs
  install -d -o 10001 -g 10001 -m 0755 "$R/data"
  net_on "$R"
  venv_install "$R" /opt/gcs-emulator "$IMAGES_SRC/gcs-emulator/requirements.txt"
  quiet as_user "$R" 10001:10001 /opt/gcs-emulator/bin/gcp-storage-emulator start --help
  finish_rootfs "$R"
  commit_image --config.user 10001:10001 --config.workingdir /data --config.exposedports 9023/tcp \
    --config.env "PATH=/opt/gcs-emulator/bin:$DEFAULT_PATH" --config.env PYTHONUNBUFFERED=1 \
    --config.env PYTHONDONTWRITEBYTECODE=1 --config.env LANG=C.UTF-8 \
    --config.entrypoint /opt/gcs-emulator/bin/gcp-storage-emulator --config.entrypoint --data-dir \
    --config.entrypoint /data --config.entrypoint start --config.entrypoint --host --config.entrypoint 0.0.0.0 \
    --config.entrypoint --port --config.entrypoint 9023
}

build_postgresql() {
  begin_from_base
  # uid/gid 999 as in the postgres images people know; Debian's own adduser would pick a dynamic system uid.
  quiet in_root "$R" groupadd --system --gid 999 postgres
  quiet in_root "$R" useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres
  net_on "$R"
  apt_get "$R" update
  apt_get "$R" install postgresql-common
  sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' "$R/etc/postgresql-common/createcluster.conf"
  apt_get "$R" install postgresql-15 postgresql-client-15
  apt_get "$R" clean
  rm -rf "$R"/etc/postgresql/* "$R"/var/lib/postgresql/* "$R/run/postgresql"
  install -d -o 999 -g 999 -m 0700 "$R/var/lib/postgresql/data"
  chown 999:999 "$R/var/lib/postgresql"
  ln -s /tmp "$R/run/postgresql" # clients' default socket directory is where the server puts it
  install -m 0755 "$IMAGES_SRC/postgresql/entrypoint.sh" "$R/usr/local/bin/postgres-entrypoint"
  local bin=/usr/lib/postgresql/15/bin
  quiet as_user "$R" 999:999 "$bin/postgres" --version
  quiet as_user "$R" 999:999 sh -c "$bin/pg_dump --version && $bin/pg_restore --version && $bin/psql --version && $bin/pg_isready --version"
  finish_rootfs "$R"
  commit_image --config.user 999:999 --config.exposedports 5432/tcp --config.stopsignal SIGINT \
    --config.env "PATH=$bin:$DEFAULT_PATH" --config.env PGDATA=/var/lib/postgresql/data/pgdata \
    --config.env LANG=C.UTF-8 --config.entrypoint /usr/local/bin/postgres-entrypoint
}

build_mariadb() {
  begin_from_base
  quiet in_root "$R" groupadd --system --gid 999 mysql
  quiet in_root "$R" useradd --system --uid 999 --gid 999 --home-dir /var/lib/mysql --no-create-home --shell /usr/sbin/nologin mysql
  net_on "$R"
  apt_get "$R" update
  apt_get "$R" install mariadb-server mariadb-client
  apt_get "$R" clean
  rm -rf "$R"/var/lib/mysql/* "$R/run/mysqld" "$R/etc/mysql/my.cnf"
  install -d -o 999 -g 999 -m 0700 "$R/var/lib/mysql"
  install -m 0644 "$IMAGES_SRC/mariadb/my.cnf" "$R/etc/mysql/my.cnf"
  install -m 0755 "$IMAGES_SRC/mariadb/entrypoint.sh" "$R/usr/local/bin/mariadb-entrypoint"
  quiet as_user "$R" 999:999 mariadbd --version
  quiet as_user "$R" 999:999 sh -c 'mariadb --version && mariadb-dump --version && mariadb-admin --version && command -v mariadb-install-db'
  finish_rootfs "$R"
  commit_image --config.user 999:999 --config.exposedports 3306/tcp --config.env "PATH=$DEFAULT_PATH" \
    --config.env MARIADB_DATADIR=/var/lib/mysql/data --config.env LANG=C.UTF-8 \
    --config.entrypoint /usr/local/bin/mariadb-entrypoint
}

# A test client: Debian's static busybox with a link per applet.
build_busybox() {
  local applet
  begin_scratch
  mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp}
  chmod 1777 "$R/tmp"
  chmod 0700 "$R/root"
  install -m 0755 /bin/busybox "$R/bin/busybox"
  for applet in $(/bin/busybox --list-full); do
    [ "$applet" = bin/busybox ] || ln -sf /bin/busybox "$R/$applet"
  done
  install -m 0644 "$IMAGES_SRC/busybox/passwd" "$IMAGES_SRC/busybox/group" "$R/etc/"
  quiet chroot "$R" /bin/sh -c 'nslookup --help 2>&1 | grep -q Usage && nc --help 2>&1 | grep -q Usage'
  # root by default, as upstream busybox (local-path-provisioner's helper pods create volume directories with it);
  # test pods under the restricted policy set runAsUser: 65534 (nobody).
  commit_image --config.env "PATH=$DEFAULT_PATH" --config.cmd sh
}

build_pause() {
  begin_scratch
  install -m 0755 "$BIN_DIR/pause" "$R/pause"
  commit_image --config.user 65535:65535 --config.entrypoint /pause
}

build_coredns() {
  begin_scratch
  install -m 0755 "$BIN_DIR/coredns" "$R/coredns"
  # Runs as 65532 yet binds :53, as upstream's image: a file capability (the pod adds NET_BIND_SERVICE).
  setcap cap_net_bind_service=+ep "$R/coredns"
  mkdir -p "$R/etc"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$R/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$R/etc/group"
  commit_image --config.user 65532:65532 --config.workingdir / --config.exposedports 53/tcp \
    --config.exposedports 53/udp --config.entrypoint /coredns
}

# The Cloud SQL Auth Proxy v2 from source: consumer module cluster/go/cloud-sql-proxy (committed go.mod/go.sum),
# binary cached under $MLP_CACHE/bin/cloud-sql-proxy-<version>-<go version>; image as upstream's distroless one
# (uid 65532, entrypoint /cloud-sql-proxy).
cloud_sql_proxy_bin() { echo "$MLP_CACHE/bin/cloud-sql-proxy-$CLOUD_SQL_PROXY_VERSION-$GO_VERSION/cloud-sql-proxy"; }
build_cloud_sql_proxy() {
  local bin module=github.com/GoogleCloudPlatform/cloud-sql-proxy/v2
  bin=$(cloud_sql_proxy_bin)
  if [ ! -x "$bin" ]; then
    mkdir -p "$(dirname "$bin")"
    (
      cd "$CLUSTER_DIR/go/cloud-sql-proxy"
      grep -q "$module $CLOUD_SQL_PROXY_VERSION" go.mod || quiet nice -n 10 go get "$module@$CLOUD_SQL_PROXY_VERSION"
      quiet nice -n 10 go build -trimpath -ldflags "-s -w" -o "$bin.tmp" "$module"
    )
    mv "$bin.tmp" "$bin"
  fi
  begin_scratch
  install -m 0755 "$bin" "$R/cloud-sql-proxy"
  mkdir -p "$R/etc/ssl/certs" "$R/tmp"
  chmod 1777 "$R/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$R/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$R/etc/group"
  quiet "$R/cloud-sql-proxy" --version
  commit_image --config.user 65532:65532 --config.workingdir / --config.entrypoint /cloud-sql-proxy
}

# ------------------------------------------------------------------------------------------ the definitions --

# pin NAME FILE: the version pinned for NAME in a requirements file.
pin() { sed -n "s/^$1==\([^ ;]*\).*/\1/Ip" "$2" | head -n1; }

# define NAME: set REF, TAG, BUILD (a command), USES_BASE, USES_BIN, INPUTS (files) and EXTRA (more hash input).
define() {
  USES_BASE=1 USES_BIN=0 INPUTS=() EXTRA=
  case $1 in
    mlflow | mlflow-3.16)
      local req=requirements.txt
      [ "$1" = mlflow ] || req=requirements-${1#mlflow-}.txt
      REF=docker.io/mlplatform/mlflow TAG=$(pin mlflow "$IMAGES_SRC/mlflow/$req") BUILD="build_mlflow $req"
      INPUTS=("$IMAGES_SRC/mlflow/$req" "$IMAGES_SRC/mlflow/mlplatform_scoring.py") ;;
    gcs-emulator)
      REF=docker.io/mlplatform/gcs-emulator BUILD=build_gcs_emulator
      INPUTS=("$IMAGES_SRC/gcs-emulator/requirements.txt")
      TAG=$(pin gcp-storage-emulator "${INPUTS[0]}") ;;
    postgresql)
      REF=docker.io/mlplatform/postgresql TAG=15 BUILD=build_postgresql INPUTS=("$IMAGES_SRC/postgresql/entrypoint.sh") ;;
    mariadb)
      REF=docker.io/mlplatform/mariadb TAG=10.11 BUILD=build_mariadb
      INPUTS=("$IMAGES_SRC/mariadb/entrypoint.sh" "$IMAGES_SRC/mariadb/my.cnf") ;;
    busybox)
      REF=docker.io/mlplatform/busybox TAG=1.35 BUILD=build_busybox USES_BASE=0
      INPUTS=("$IMAGES_SRC/busybox/passwd" "$IMAGES_SRC/busybox/group")
      EXTRA="busybox-static $(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null || echo missing)" ;;
    pause)
      REF=registry.k8s.io/pause TAG=$PAUSE_VERSION BUILD=build_pause USES_BASE=0 USES_BIN=1
      EXTRA="binaries from $(basename "$BIN_DIR")" ;;
    coredns)
      REF=registry.k8s.io/coredns/coredns TAG=$COREDNS_VERSION BUILD=build_coredns USES_BASE=0 USES_BIN=1
      EXTRA="binaries from $(basename "$BIN_DIR")" ;;
    mlserver)
      REF=docker.io/mlplatform/mlserver BUILD=build_mlserver INPUTS=("$IMAGES_SRC/mlserver/requirements.txt")
      TAG=$(pin mlserver "${INPUTS[0]}") ;;
    cloud-sql-proxy)
      REF=gcr.io/cloud-sql-connectors/cloud-sql-proxy TAG=${CLOUD_SQL_PROXY_VERSION#v} BUILD=build_cloud_sql_proxy
      USES_BASE=0
      EXTRA="$GO_VERSION $(cat "$CLUSTER_DIR"/go/cloud-sql-proxy/go.{mod,sum} | sha256sum) $(declare -f cloud_sql_proxy_bin)" ;;
    *) die "unknown image '$1' (images: ${ALL_IMAGES[*]} ${OPTIONAL_IMAGES[*]})" ;;
  esac
  [ -n "$TAG" ] || die "no version found for image $1"
  local f
  for f in "${INPUTS[@]}"; do [ -f "$f" ] || die "image $1: missing $f"; done
  HASH=$(
    {
      echo "name=$1 ref=$REF tag=$TAG extra=$EXTRA umoci=$(umoci --version)"
      [ "$USES_BASE" = 0 ] || echo "base=$(base_key)"
      declare -f "${BUILD%% *}" begin_scratch begin_from_base commit_image finish_rootfs venv_install in_root as_user
      for f in "${INPUTS[@]}"; do echo "== ${f#"$IMAGES_SRC"/}"; cat "$f"; done
    } | sha256sum | cut -c1-12
  )
  OUT=$IMAGE_DIR/${REF##*/}-$TAG-$HASH.oci.tar
}

# ---------------------------------------------------------------------------------------------- the commands --

cmd_list() {
  local name
  for name in "${@:-${ALL_IMAGES[@]}}"; do
    define "$name"
    printf '%s:%s\t%s\n' "$REF" "$TAG" "$OUT"
  done
}

cmd_names() {
  local name option=${1:-}
  [ $# -eq 0 ] || shift
  for name in "${ALL_IMAGES[@]}"; do
    case $option in
      "") ;;
      --with-binaries) define "$name"; [ "$USES_BIN" = 1 ] || continue ;;
      --without-binaries) define "$name"; [ "$USES_BIN" = 0 ] || continue ;;
      --of) define "$name"; [[ " $* " == *" $REF:$TAG "* ]] || continue ;;
      *) die "usage: images.sh names [--with-binaries | --without-binaries | --of REF...]" ;;
    esac
    echo "$name"
  done
}

cmd_build() {
  local names=("${@:-${ALL_IMAGES[@]}}") name start f built=0 failed=()
  [ "$(id -u)" = 0 ] || die "building images needs root (debootstrap, chroot, mounts)"
  for name in "${names[@]}"; do define "$name"; done # validate the names first
  ensure_tools
  mkdir -p "$IMAGE_DIR/logs"
  exec 9>"$IMAGE_DIR/.lock"
  flock -n 9 || { log "another image build holds $IMAGE_DIR/.lock; waiting"; flock 9; }
  WORK=$(mktemp -d "$IMAGE_DIR/.work.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  for name in "${names[@]}"; do
    define "$name"
    if [ -f "$OUT" ]; then
      log "$name: $REF:$TAG is up to date ($(basename "$OUT"))"
      continue
    fi
    if [ "$USES_BIN" = 1 ] && [ ! -x "$BIN_DIR/$name" ]; then
      log "$name: $BIN_DIR/$name is missing: run cluster/build.sh first"
      failed+=("$name")
      continue
    fi
    NAME=$name LOGFILE=$IMAGE_DIR/logs/$name.log
    [ "$USES_BASE" = 0 ] || build_base
    : >"$LOGFILE"
    log "$name: building $REF:$TAG (log: $LOGFILE)"
    start=$SECONDS
    $BUILD
    rm -rf --one-file-system "${WORK:?}/$name"
    for f in "$IMAGE_DIR/${REF##*/}-$TAG"-*.oci.tar; do [ "$f" = "$OUT" ] || rm -f "$f"; done
    log "$name: built $REF:$TAG in $((SECONDS - start)) s, $(du -m "$OUT" | cut -f1) MB: $OUT"
    built=$((built + 1))
  done
  [ ${#failed[@]} -eq 0 ] || die "not built: ${failed[*]}"
}

case ${1:-build} in
  build) shift || true; cmd_build "$@" ;;
  list) shift; cmd_list "$@" ;;
  names) shift; cmd_names "$@" ;;
  -h | --help | help) sed -n '2,/^# shellcheck/{/^# shellcheck/d; s/^# \{0,1\}//p}' "$0" ;;
  *) cmd_build "$@" ;;
esac
