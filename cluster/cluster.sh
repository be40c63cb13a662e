#!/usr/bin/env bash
# The bundled single-node Kubernetes: `cluster.sh build | up | down | destroy | status`.
#   build [IMAGE...]  build what is missing: the binaries (build.sh) and the images (images.sh), side by side; with
#                     image names, only those images besides the cluster's own (pause, coredns)
#   up [IMAGE...]     build the same, then start every component and import every built image; a no-op when all run
#   down     stop everything and remove every process, mount, bridge, cgroup and iptables rule; keep the data
#   destroy  down, then delete the cluster's data too (binaries and images stay cached)
#   status   print each component's state; exit 0 when the cluster is healthy, 3 when it is stopped, 1 otherwise
# The kubeconfig is written to $STATE/kubeconfig (/var/lib/mlplatform-cluster/kubeconfig by default).
. "$(dirname "$0")/lib.sh"

NODE_NAME=mlplatform-node
POD_CIDR=198.18.0.0/16
SERVICE_CIDR=198.19.0.0/16
GUARD_CIDR=198.18.0.0/15   # pods and services together
DNS_IP=198.19.0.10
STORAGE_DIR=$STATE/volumes
E=$STATE/etc
P=$E/pki
RUN=$STATE/run
# The loopback registry tests run; public registry names resolve to it and never to the internet.
LOCAL_REGISTRY=127.0.0.1:5000
LOGS=$STATE/logs
SOCK=$RUN/containerd/containerd.sock
B=$BIN_DIR
# The ingress controller: Traefik as a host process. Port 8880 serves on loopback and on the node IP (pods reach it
# there); it is outside the NodePort range (30000-32767), where kube-proxy would take over a port it allocated. The
# API (no dashboard) and /ping listen on loopback only. It runs as an unnamed uid that a guard keeps off the network.
TRAEFIK_PORT=8880
TRAEFIK_API_PORT=8881
# Gateway API listeners: Traefik serves a Gateway's listener on the entry point of the same port. The cluster's own
# Gateway listens on 8890 (plain HTTP); Gateways that terminate TLS listen on 8443 (https://mlflow.localhost:8443).
GATEWAY_PORT=8890
GATEWAY_TLS_PORT=8443
TRAEFIK_UID=64080
# Components in start order; `down` stops them in reverse.
COMPONENTS="containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy local-path-provisioner traefik"

external_interface() { ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}'; }
node_ip() { ip -4 -o addr show dev "$(external_interface)" | awk '{split($4, a, "/"); print a[1]; exit}'; }
ctr_() { ctr -a "$SOCK" -n k8s.io "$@"; }
kc() { "$B/kubectl" --kubeconfig "$E/admin.conf" "$@"; }
# The NetworkPolicy controller: kube-network-policies as a host process, root (nftables and nfqueue need
# CAP_NET_ADMIN). Its nftables table sends the first packet of each new connection to or from a Pod that some
# NetworkPolicy selects to it, and it drops what the policies do not allow; connections from root on the host
# (kubelet probes) pass. Fail closed: while it is down, those Pods get no new connections. The table is its own
# (hooks at priority 95 and -95, after the guards' mangle chains): it never touches the egress guards.
KNP_TABLE=kube-network-policies
KNP_METRICS=127.0.0.1:9080
COMPONENTS="$COMPONENTS kube-network-policies"
# The resource metrics API (metrics.k8s.io, for `kubectl top` and HorizontalPodAutoscalers): metrics-server as a host
# process on the node IP, behind the Service kube-system/metrics-server and its APIService. It reads each kubelet's
# /metrics/resource, verifying the kubelet's serving certificate (signed by the cluster CA here), and serves the
# aggregated API with a certificate of the same CA. An unnamed uid that the guards keep off the network, as Traefik's.
METRICS_SERVER_PORT=4443
METRICS_SERVER_UID=64081
COMPONENTS="$COMPONENTS metrics-server"

# --- egress guards: installed before anything starts, removed only after everything stopped -------------
guard_rules() { # lines of: command table chain rule
  local ifc=$1 ipt
  echo "iptables mangle POSTROUTING -o $ifc -s $GUARD_CIDR -j DROP"
  echo "iptables mangle POSTROUTING -o $ifc -d $GUARD_CIDR -j DROP"
  echo "iptables mangle FORWARD -o $ifc -j DROP"
  echo "iptables filter FORWARD -o $ifc -j DROP"
  # Traefik's uid, over both families (this machine also has an IPv6 default route).
  for ipt in iptables ip6tables; do
    echo "$ipt filter OUTPUT -o $ifc -m owner --uid-owner $TRAEFIK_UID -j DROP"
    echo "$ipt filter OUTPUT -o $ifc -m owner --uid-owner $METRICS_SERVER_UID -j DROP"
  done
}
install_guards() {
  local ifc ipt table chain rule
  ifc=$(external_interface)
  [ -n "$ifc" ] || die "cannot find the external interface (no default route)"
  guard_rules "$ifc" | while read -r ipt table chain rule; do
    # shellcheck disable=SC2086
    $ipt -t "$table" -C "$chain" $rule 2>/dev/null || $ipt -t "$table" -I "$chain" 1 $rule
  done
  echo "$ifc" > "$STATE/guarded-interface"
}
remove_guards() {
  local ifc ipt table chain rule
  [ -f "$STATE/guarded-interface" ] || return 0
  ifc=$(cat "$STATE/guarded-interface")
  guard_rules "$ifc" | while read -r ipt table chain rule; do
    # shellcheck disable=SC2086
    while $ipt -t "$table" -D "$chain" $rule 2>/dev/null; do :; done
  done
  rm -f "$STATE/guarded-interface"
}

# --- supervised processes: each runs in its own session, restarted when it exits --------------------------
any_running() { local c; for c in $COMPONENTS; do pid_of "$c" >/dev/null && return 0; done; return 1; }
pid_of() { local f=$RUN/$1.pid; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }
start() { # name command...
  local name=$1; shift
  if pid_of "$name" >/dev/null; then return 0; fi
  log "starting $name"
  setsid bash -c 'while :; do "$@"; echo "$(date -u +%T) exited with $?, restarting" >&2; sleep 1; done' \
    "$name" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! > "$RUN/$name.pid"
}
stop() { # name
  local pid i
  pid=$(pid_of "$1") || { rm -f "$RUN/$1.pid"; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || true
  for i in $(seq 1 100); do pgrep -g "$pid" >/dev/null || break; sleep 0.2; done
  if pgrep -g "$pid" >/dev/null; then log "killing $1"; kill -KILL -- "-$pid" 2>/dev/null || true; sleep 0.5; fi
  rm -f "$RUN/$1.pid"
  log "stopped $1"
}
# settings_changed NAME FILE...: true when NAME runs with other settings than these files hold now (a component reads
# them at start only: it is stopped, for start to start it again); records what it will start with.
settings_changed() {
  local name=$1 sum; shift
  sum=$(cat "$@" | sha256sum | cut -c1-16)
  if [ "$(cat "$RUN/$name.settings" 2>/dev/null)" = "$sum" ]; then return 1; fi
  echo "$sum" > "$RUN/$name.settings"
  pid_of "$name" >/dev/null
}
wait_for() { # description seconds command...
  local what=$1 seconds=$2 deadline; shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${seconds}s waiting for $what (logs: $LOGS)"
    sleep 0.2
  done
}

# --- configuration -----------------------------------------------------------------------------------------
write_config() {
  local ip=$1
  mkdir -p "$E/cni" "$P" "$STATE"/{containerd,etcd,kubelet,cni-ipam} "$RUN" "$LOGS/pods" "$STORAGE_DIR"
  chmod 700 "$STATE/etcd"
  cat > "$E/containerd.toml" <<EOF
version = 2
root = "$STATE/containerd"
state = "$RUN/containerd"
oom_score = 0
[grpc]
  address = "$SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:$PAUSE_VERSION"
  # This VM lacks CAP_SYS_RESOURCE: without this every pod sandbox fails to start.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$E/cni"
  # Registry hosts, read at each pull: every registry name (_default; checked on containerd 1.6.20) resolves to the
  # loopback registry, so a missing image is never pulled from outside the machine. The Artifact Registry names of
  # the staging and prod inventories are served there by tests/integration/image_publish.
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$E/certs.d"
EOF
  rm -rf "$E/certs.d"
  mkdir -p "$E/certs.d/_default"
  printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
    "$LOCAL_REGISTRY" "$LOCAL_REGISTRY" > "$E/certs.d/_default/hosts.toml"
  # ipMasq off: pod traffic is never NATed to the machine's address, so nothing from a pod can leave disguised.
  cat > "$E/cni/10-bridge.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "mlplatform", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$STATE/cni-ipam", "ranges": [[{"subnet": "198.18.0.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  cat > "$E/kubeadm.yaml" <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: $ip, bindPort: 6443}
nodeRegistration: {name: $NODE_NAME, criSocket: "unix://$SOCK"}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: $KUBERNETES_VERSION
clusterName: mlplatform
certificatesDir: $P
controlPlaneEndpoint: "$ip:6443"
networking: {serviceSubnet: $SERVICE_CIDR, podSubnet: $POD_CIDR, dnsDomain: cluster.local}
apiServer: {certSANs: [127.0.0.1, localhost, $NODE_NAME, $ip]}
etcd:
  local: {dataDir: $STATE/etcd, serverCertSANs: [127.0.0.1, localhost], peerCertSANs: [127.0.0.1, localhost]}
EOF
  cat > "$E/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: "unix://$SOCK"
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $P/ca.crt}}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: ""
oomScoreAdj: 0
maxPods: 250
# Images cannot be pulled again here: never garbage-collect them, and evict only when really out of room.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
rotateCertificates: false
podLogsDir: $LOGS/pods
# A serving certificate of the cluster CA (write_pki), which metrics-server verifies.
tlsCertFile: $P/kubelet-serving.crt
tlsPrivateKeyFile: $P/kubelet-serving.key
address: $ip
healthzBindAddress: 127.0.0.1
EOF
  cat > "$E/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $E/kube-proxy.conf}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
oomScoreAdj: 0
bindAddress: $ip
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

# sign_serving_cert NAME SAN...: a serving certificate and key of the cluster CA, $P/NAME.crt and .key, made again
# when a SAN is missing from the one there (a new node IP).
sign_serving_cert() {
  local name=$1 sans; shift
  sans=$(IFS=,; echo "$*")
  if [ -f "$P/$name.crt" ] && openssl x509 -in "$P/$name.crt" -noout -ext subjectAltName 2>/dev/null | tr -d ' ' \
      | grep -qx "$(echo "$sans" | sed 's/IP:/IPAddress:/g')"; then return 0; fi
  log "signing the serving certificate $name ($sans)"
  (umask 077; openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$name" \
    -keyout "$P/$name.key" -out "$P/$name.csr" 2>/dev/null)
  openssl x509 -req -in "$P/$name.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 3650 \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n' "$sans") \
    -out "$P/$name.crt" 2>/dev/null
  rm -f "$P/$name.csr"
}

sign_serving_certs() {
  sign_serving_cert kubelet-serving "DNS:$NODE_NAME" "IP:$1"
  sign_serving_cert metrics-server "DNS:metrics-server.kube-system.svc" "IP:$1"
}

write_pki() {
  local ip=$1
  if [ -f "$E/admin.conf" ] && grep -q "server: https://$ip:6443" "$E/admin.conf"; then sign_serving_certs "$ip"; return 0; fi
  log "creating PKI and kubeconfigs"
  "$B/kubeadm" init phase certs all --config "$E/kubeadm.yaml" >/dev/null
  "$B/kubeadm" init phase kubeconfig all --config "$E/kubeadm.yaml" --kubeconfig-dir "$E" >/dev/null
  "$B/kubeadm" kubeconfig user --config "$E/kubeadm.yaml" --client-name system:kube-proxy > "$E/kube-proxy.conf"
  chmod 600 "$E"/*.conf
  install -m 600 "$E/admin.conf" "$KUBECONFIG_PATH"
  sign_serving_certs "$ip"
}

# --- components --------------------------------------------------------------------------------------------
start_containerd() {
  start containerd containerd --config "$E/containerd.toml"
  wait_for containerd 30 ctr_ version
}

import_images() {
  local ref tarball marker
  mkdir -p "$STATE/imported"
  while IFS=$'\t' read -r ref tarball; do
    marker=$STATE/imported/$(basename "$tarball")
    [ -f "$marker" ] || [ ! -f "$tarball" ] && continue  # imported already, or not built (not asked for)
    log "importing $ref"
    ctr_ images import --base-name "${ref%:*}" "$tarball" >/dev/null
    touch "$marker"
  done < <("$CLUSTER_DIR/images.sh" list)
}

start_control_plane() {
  local ip=$1
  start etcd "$B/etcd" --name="$NODE_NAME" --data-dir="$STATE/etcd" \
    --listen-client-urls=https://127.0.0.1:2379 --advertise-client-urls=https://127.0.0.1:2379 \
    --listen-peer-urls=https://127.0.0.1:2380 --initial-advertise-peer-urls=https://127.0.0.1:2380 \
    --initial-cluster="$NODE_NAME=https://127.0.0.1:2380" --listen-metrics-urls=http://127.0.0.1:2381 \
    --cert-file="$P/etcd/server.crt" --key-file="$P/etcd/server.key" --trusted-ca-file="$P/etcd/ca.crt" \
    --client-cert-auth=true --peer-cert-file="$P/etcd/peer.crt" --peer-key-file="$P/etcd/peer.key" \
    --peer-trusted-ca-file="$P/etcd/ca.crt" --peer-client-cert-auth=true --snapshot-count=10000
  wait_for etcd 60 sh -c 'curl -s http://127.0.0.1:2381/health | grep -q "\"health\":\"true\""'
  start kube-apiserver "$B/kube-apiserver" --advertise-address="$ip" --secure-port=6443 --allow-privileged=true \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --client-ca-file="$P/ca.crt" \
    --etcd-servers=https://127.0.0.1:2379 --etcd-cafile="$P/etcd/ca.crt" \
    --etcd-certfile="$P/apiserver-etcd-client.crt" --etcd-keyfile="$P/apiserver-etcd-client.key" \
    --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP --proxy-client-cert-file="$P/front-proxy-client.crt" \
    --proxy-client-key-file="$P/front-proxy-client.key" --requestheader-allowed-names=front-proxy-client \
    --requestheader-client-ca-file="$P/front-proxy-ca.crt" --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --requestheader-group-headers=X-Remote-Group --requestheader-username-headers=X-Remote-User \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local --service-account-key-file="$P/sa.pub" \
    --service-account-signing-key-file="$P/sa.key" --service-cluster-ip-range="$SERVICE_CIDR" \
    --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key"
  wait_for kube-apiserver 90 sh -c "[ \"\$(curl -sk https://$ip:6443/readyz)\" = ok ]"
  # Bindings that a full `kubeadm init` creates and its phases do not: admin.conf's group, and exec/logs.
  "$B/kubectl" --kubeconfig "$E/super-admin.conf" create clusterrolebinding kubeadm:cluster-admins \
    --clusterrole=cluster-admin --group=kubeadm:cluster-admins --dry-run=client -o yaml \
    | "$B/kubectl" --kubeconfig "$E/super-admin.conf" apply --server-side -f - >/dev/null
  kc create clusterrolebinding kubeadm:apiserver-kubelet-client --clusterrole=system:kubelet-api-admin \
    --user=kube-apiserver-kubelet-client --dry-run=client -o yaml | kc apply --server-side -f - >/dev/null
  start kube-controller-manager "$B/kube-controller-manager" --allocate-node-cidrs=true --cluster-cidr="$POD_CIDR" \
    --node-cidr-mask-size=24 --service-cluster-ip-range="$SERVICE_CIDR" --kubeconfig="$E/controller-manager.conf" \
    --authentication-kubeconfig="$E/controller-manager.conf" --authorization-kubeconfig="$E/controller-manager.conf" \
    --bind-address=127.0.0.1 --client-ca-file="$P/ca.crt" --cluster-name=mlplatform \
    --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" --controllers='*,bootstrapsigner,tokencleaner' \
    --leader-elect=false --requestheader-client-ca-file="$P/front-proxy-ca.crt" --root-ca-file="$P/ca.crt" \
    --service-account-private-key-file="$P/sa.key" --use-service-account-credentials=true
  start kube-scheduler "$B/kube-scheduler" --kubeconfig="$E/scheduler.conf" --leader-elect=false \
    --authentication-kubeconfig="$E/scheduler.conf" --authorization-kubeconfig="$E/scheduler.conf" --bind-address=127.0.0.1
  wait_for "controller-manager and scheduler" 60 sh -c \
    '[ "$(curl -sk https://127.0.0.1:10257/healthz)" = ok ] && [ "$(curl -sk https://127.0.0.1:10259/livez)" = ok ]'
}

start_node() {
  local ip=$1
  ! settings_changed kubelet "$E/kubelet.yaml" "$P/kubelet-serving.crt" || stop kubelet
  start kubelet "$B/kubelet" --config="$E/kubelet.yaml" --kubeconfig="$E/kubelet.conf" --root-dir="$STATE/kubelet" \
    --cert-dir="$STATE/kubelet/pki" --hostname-override="$NODE_NAME" --node-ip="$ip"
  wait_for "node $NODE_NAME" 60 kc get node "$NODE_NAME"
  kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=120s >/dev/null
  start kube-proxy "$B/kube-proxy" --config="$E/kube-proxy.yaml"
  wait_for kube-proxy 60 sh -c 'curl -s http://127.0.0.1:10256/healthz | grep -q "\"healthy\":true"'
}

start_addons() {
  local ip=$1
  # The Gateway API's CRDs first: the add-ons create a Gateway.
  kc apply --server-side --field-manager=mlplatform-cluster -f "$CLUSTER_DIR/gateway-api/" >/dev/null
  kc wait --for=condition=Established --timeout=60s -f "$CLUSTER_DIR/gateway-api/" >/dev/null
  sed -e "s|@STORAGE_DIR@|$STORAGE_DIR|; s|@DNS_IP@|$DNS_IP|; s|@COREDNS_VERSION@|$COREDNS_VERSION|; s|@NODE_IP@|$ip|" \
    -e "s|@METRICS_SERVER_PORT@|$METRICS_SERVER_PORT|; s|@CLUSTER_CA@|$(base64 -w0 "$P/ca.crt")|" "$CLUSTER_DIR/addons.yaml" \
    | kc apply --server-side --field-manager=mlplatform-cluster -f - >/dev/null
  start local-path-provisioner "$B/local-path-provisioner" start --kubeconfig "$E/admin.conf" \
    --namespace local-path-storage --service-account-name local-path-provisioner --configmap-name local-path-config \
    --helper-image docker.io/mlplatform/busybox:1.35
  kc -n kube-system rollout status deploy/coredns --timeout=120s >/dev/null
  # Pods must not use a Service before kube-proxy has programmed it, or their packets head for the default
  # route (and the guards). Wait for cluster DNS's rules before declaring the cluster ready.
  wait_for "cluster DNS rules" 60 sh -c "iptables -t nat -S KUBE-SERVICES | grep -q -- '-d $DNS_IP/32'"
}

traefik_token() { kc -n kube-system get secret traefik-token -o jsonpath='{.data.token}' 2>/dev/null | base64 -d; }
has_traefik_token() { [ -n "$(traefik_token)" ]; }
start_traefik() {
  local ip=$1 dir=$E/traefik token
  # Its identity: the ServiceAccount of the add-ons (RBAC: read Ingresses, IngressClasses, Services,
  # EndpointSlices, Secrets and Nodes), through the token the token controller puts in its Secret.
  wait_for "the token of Traefik's ServiceAccount" 60 has_traefik_token
  token=$(traefik_token)
  install -d -m 700 -o "$TRAEFIK_UID" -g "$TRAEFIK_UID" "$dir"
  (
    umask 077
    cat > "$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: mlplatform, cluster: {server: "https://$ip:6443", certificate-authority-data: $(base64 -w0 "$P/ca.crt")}}]
users: [{name: traefik, user: {token: $token}}]
contexts: [{name: traefik, context: {cluster: mlplatform, user: traefik}}]
current-context: traefik
EOF
    # Every setting is in this file (--configFile): Traefik then never reads a file from its default locations.
    cat > "$dir/traefik.yaml" <<EOF
global: {checkNewVersion: false, sendAnonymousUsage: false}
# Traefik reads a whole request in 60 s by default; artifact uploads get the roles' default request timeout.
entryPoints:
  web: {address: "127.0.0.1:$TRAEFIK_PORT", transport: {respondingTimeouts: {readTimeout: 600s}}}
  node: {address: "$ip:$TRAEFIK_PORT", transport: {respondingTimeouts: {readTimeout: 600s}}}
  gateway: {address: "127.0.0.1:$GATEWAY_PORT", transport: {respondingTimeouts: {readTimeout: 600s}}}
  gateway-tls: {address: "127.0.0.1:$GATEWAY_TLS_PORT", transport: {respondingTimeouts: {readTimeout: 600s}}}
  traefik: {address: "127.0.0.1:$TRAEFIK_API_PORT"}
# Every backend is on this machine: a connection not made within 5 s was dropped (default: wait 30 s).
serversTransport: {forwardingTimeouts: {dialTimeout: 5s}}
api: {insecure: true, dashboard: false}
ping: {entryPoint: traefik}
# Routes take effect within half a second of a change (default: 2 s), so a canary's weights hold when its route
# reports them accepted.
providers:
  providersThrottleDuration: 500ms
  kubernetesIngress: {}
  kubernetesGateway: {}
log: {level: INFO, noColor: true}
EOF
  )
  chown "$TRAEFIK_UID:$TRAEFIK_UID" "$dir/kubeconfig" "$dir/traefik.yaml"
  ! settings_changed traefik "$dir/kubeconfig" "$dir/traefik.yaml" || stop traefik
  # An empty environment: no KUBERNETES_SERVICE_HOST, and KUBECONFIG is Traefik's own, never the caller's admin one.
  start traefik setpriv "--reuid=$TRAEFIK_UID" "--regid=$TRAEFIK_UID" --clear-groups --no-new-privs \
    env -i "KUBECONFIG=$dir/kubeconfig" "$TRAEFIK_BIN_DIR/traefik" "--configFile=$dir/traefik.yaml"
  wait_for traefik 60 sh -c "[ \"\$(curl -s http://127.0.0.1:$TRAEFIK_API_PORT/ping)\" = OK ]"
}

start_kube_network_policies() {
  local ip=$1 conf=$E/kube-network-policies.conf
  # Its identity: a client certificate for the user kube-network-policies, whose RBAC is in the add-ons.
  if ! grep -qs "server: https://$ip:6443" "$conf"; then
    (umask 077; "$B/kubeadm" kubeconfig user --config "$E/kubeadm.yaml" --client-name kube-network-policies > "$conf.tmp")
    mv "$conf.tmp" "$conf"
  fi
  # Metrics on loopback only.
  start kube-network-policies env -i "$KNP_BIN_DIR/kube-network-policies" "--kubeconfig=$conf" \
    "--hostname-override=$NODE_NAME" "--metrics-bind-address=$KNP_METRICS"
  # It creates its table once its informers have synced.
  wait_for "the nftables table of kube-network-policies" 60 nft list table inet "$KNP_TABLE"
}

start_metrics_server() {
  local ip=$1 dir=$E/metrics-server
  # Its identity: a client certificate for the user metrics-server, whose RBAC is in the add-ons; its files are its own.
  install -d -m 700 -o "$METRICS_SERVER_UID" -g "$METRICS_SERVER_UID" "$dir"
  if ! grep -qs "server: https://$ip:6443" "$dir/kubeconfig"; then
    (umask 077; "$B/kubeadm" kubeconfig user --config "$E/kubeadm.yaml" --client-name metrics-server > "$dir/kubeconfig.tmp")
    mv "$dir/kubeconfig.tmp" "$dir/kubeconfig"
  fi
  # (Copied only when changed: it watches its certificate files.)
  for file in metrics-server.crt metrics-server.key ca.crt; do
    cmp -s "$P/$file" "$dir/$file" || install -m 600 -o "$METRICS_SERVER_UID" -g "$METRICS_SERVER_UID" "$P/$file" "$dir/"
  done
  chown "$METRICS_SERVER_UID:$METRICS_SERVER_UID" "$dir/kubeconfig"
  start metrics-server setpriv "--reuid=$METRICS_SERVER_UID" "--regid=$METRICS_SERVER_UID" --clear-groups \
    --no-new-privs env -i "$METRICS_SERVER_BIN_DIR/metrics-server" "--kubeconfig=$dir/kubeconfig" \
    "--authentication-kubeconfig=$dir/kubeconfig" "--authorization-kubeconfig=$dir/kubeconfig" \
    "--bind-address=$ip" "--secure-port=$METRICS_SERVER_PORT" "--tls-cert-file=$dir/metrics-server.crt" \
    "--tls-private-key-file=$dir/metrics-server.key" "--kubelet-certificate-authority=$dir/ca.crt" \
    --kubelet-preferred-address-types=InternalIP --kubelet-use-node-status-port --metric-resolution=15s
  # Ready once the aggregated API answers with the node's usage (its first scrape takes one resolution).
  wait_for "the resource metrics API" 90 kc get --raw "/apis/metrics.k8s.io/v1beta1/nodes/$NODE_NAME"
}

cmd_build() {
  local images_pid rc=0 wanted
  [ "$(id -u)" = 0 ] || die "must run as root"
  # The images asked for (default: all), each once, with the cluster's own, packed from binaries, among them.
  # shellcheck disable=SC2207
  wanted=($( ("$CLUSTER_DIR/images.sh" names --with-binaries
             if [ $# -gt 0 ]; then printf '%s\n' "$@"; else "$CLUSTER_DIR/images.sh" names; fi) | sort -u))
  # The Go compiles (CPU) and the images that need none of their binaries (debootstrap, pip: mostly network and
  # disk) run side by side; pause and CoreDNS, packed from binaries, follow.
  # shellcheck disable=SC2046
  "$CLUSTER_DIR/images.sh" build $(comm -12 <(printf '%s\n' "${wanted[@]}") \
    <("$CLUSTER_DIR/images.sh" names --without-binaries | sort)) &
  images_pid=$!
  "$CLUSTER_DIR/build.sh" || rc=$?
  wait "$images_pid" || rc=$?
  [ "$rc" = 0 ] || die "the build failed (messages above)"
  # shellcheck disable=SC2046
  "$CLUSTER_DIR/images.sh" build $("$CLUSTER_DIR/images.sh" names --with-binaries)
}

cmd_up() {
  local ip t0=$SECONDS
  [ "$(id -u)" = 0 ] || die "must run as root"
  mkdir -p "$STATE" "$RUN" "$LOGS"
  install_guards
  if ! any_running && [ -d "$STATE/containerd" ]; then
    # Everything was stopped without `down` (a killed session, a reboot): clear what the dead processes left
    # (mounts, network namespaces, the bridge, cgroups, the kubelet's rules) before starting on the same data.
    log "no component running: cleaning what an unclean stop left behind"
    cleanup_host
  fi
  cmd_build "$@"
  ip=$(node_ip)
  sysctl -qw net.ipv4.ip_forward=1 fs.inotify.max_user_instances=512 net.bridge.bridge-nf-call-iptables=1
  write_config "$ip"
  write_pki "$ip"
  start_containerd
  import_images
  start_control_plane "$ip"
  start_node "$ip"
  start_addons "$ip"
  start_traefik "$ip"
  start_kube_network_policies "$ip"
  start_metrics_server "$ip"
  # The kubelet sets kernel.panic_on_oops=1 at start; a test VM should not reboot on an oops.
  sysctl -qw kernel.panic_on_oops=0
  log "cluster ready in $((SECONDS - t0)) s; export KUBECONFIG=$KUBECONFIG_PATH"
}

# --- teardown ----------------------------------------------------------------------------------------------
kill_containers() {
  local id
  pid_of containerd >/dev/null || return 0
  for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$id" 2>/dev/null || true; done
  for id in $(seq 1 50); do [ -z "$(ctr_ tasks ls -q 2>/dev/null)" ] && break; sleep 0.2; done
  for id in $(ctr_ containers ls -q 2>/dev/null); do
    ctr_ tasks delete "$id" >/dev/null 2>&1 || true
    ctr_ containers delete "$id" >/dev/null 2>&1 || true
  done
}

cleanup_host() {
  local m h d ipt t
  # Mounts: kubelet volumes, container rootfs, CNI network namespaces (deepest first).
  for m in $(awk '{print $2}' /proc/mounts | grep -E "^($STATE/|/run/containerd|/run/netns/cni-|/var/lib/kubelet)" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
  ip link show cni0 >/dev/null 2>&1 && ip link delete cni0
  for h in /sys/fs/cgroup/*/; do for d in kubepods k8s.io; do
    [ -d "$h$d" ] && find "$h$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done; done
  [ -x "$B/kube-proxy" ] && "$B/kube-proxy" --cleanup >/dev/null 2>&1 || true
  for ipt in iptables ip6tables; do
    $ipt -D INPUT -j KUBE-FIREWALL 2>/dev/null || true
    $ipt -D OUTPUT -j KUBE-FIREWALL 2>/dev/null || true
    $ipt -F KUBE-FIREWALL 2>/dev/null || true
    $ipt -X KUBE-FIREWALL 2>/dev/null || true
    for t in filter nat mangle; do
      $ipt -t $t -F KUBE-KUBELET-CANARY 2>/dev/null || true
      $ipt -t $t -X KUBE-KUBELET-CANARY 2>/dev/null || true
    done
    $ipt -t mangle -X KUBE-IPTABLES-HINT 2>/dev/null || true
  done
  # The NetworkPolicy controller deletes its table when stopped; not when killed. Left behind, it would drop.
  nft delete table inet "$KNP_TABLE" 2>/dev/null || true
  # Host paths the tools write whatever their flags say (all recreated on the next start).
  rm -rf /var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /run/containerd
  rmdir /run/netns 2>/dev/null || true
}

cmd_down() {
  local c
  [ -d "$STATE" ] || { log "no cluster state at $STATE"; return 0; }
  stop kubelet
  kill_containers
  for c in $(echo "$COMPONENTS" | tr ' ' '\n' | tac); do stop "$c"; done
  cleanup_host
  remove_guards
  log "cluster stopped; data kept in $STATE"
}

cmd_destroy() {
  cmd_down
  rm -rf "$STATE"
  log "cluster data deleted"
}

cmd_status() {
  local c running=0 stopped=0 ip
  for c in $COMPONENTS; do
    if pid_of "$c" >/dev/null; then echo "$c: running"; running=$((running + 1)); else echo "$c: stopped"; stopped=$((stopped + 1)); fi
  done
  [ "$running" = 0 ] && { echo "cluster: stopped"; return 3; }
  ip=$(node_ip)
  if [ "$stopped" = 0 ] && [ "$(curl -sk "https://$ip:6443/readyz" 2>/dev/null)" = ok ] \
      && kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -q True; then
    echo "cluster: healthy (kubeconfig $KUBECONFIG_PATH)"; return 0
  fi
  echo "cluster: degraded"; return 1
}

case "${1:-}" in
  build) shift; cmd_build "$@" ;;
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  destroy) cmd_destroy ;;
  status) cmd_status ;;
  *) echo "usage: $0 build [IMAGE...] | up [IMAGE...] | down | destroy | status" >&2; exit 2 ;;
esac
