#!/usr/bin/env bash
# A multi-node Calico lab in network namespaces on this host (reference/lab.md §2),
# the same topology as the Go helper internal/agent/labtest:
#
#   $P-fab    bridges br99 (10.99.0.0/24) and br98 (10.98.0.0/24)
#   $P-r      router: 10.99.0.1, 10.98.0.1 and 203.0.113.1; etcd on http://10.99.0.1:2379
#   $P-ext    "external" host 203.0.113.10 behind the router; it routes only the
#             node subnets, so a pod's packets come back only if NAT outgoing
#             gave them the node's address
#   $P-nN     node N: eth0 10.99.0.1N/24 (node 3 on 10.98.0.13/24 with "cross"),
#             default route via its subnet's router; calico-node runs here
#   $P-nN-X   pod X on node N, added through the calico CNI plugin
#
# Usage (as root, after `make build`):
#   lab.sh up [same|cross] [nodes]   build the lab, start etcd and one calico-node per node
#   lab.sh wait-ready [seconds]      wait until every calico-node reports ready
#   lab.sh wait-routes [seconds]     wait until every node has a route to every other node's pods
#   lab.sh ctl ARGS...               calicoctl against the lab's etcd
#   lab.sh pod add NODE NAME [POOL]  add pod NAME on NODE (e.g. n1) through CNI ADD
#   lab.sh pod del NODE NAME         CNI DEL, then delete the pod's namespace
#   lab.sh pod list                  the lab's pods: node, name, address, host veth
#   lab.sh ping-matrix               every pod pings every other pod (exit 1 if any fails)
#   lab.sh status                    calicoctl node status of every node
#   lab.sh down                      stop everything the lab started, delete its namespaces and state
#
# Namespaces are named $LAB_PREFIX-* (default lab-*), so labs with different
# prefixes run side by side and never collide with the tests (whose namespaces
# are cdp*); a lab's state (pid files, logs, per-node nodename/mtu/ipam-lock
# files and run dirs, CNI netconfs, etcd data) lives in $LAB_DIR (default
# /tmp/calico-$LAB_PREFIX). Pod NAMEs should be short: the host veth is "cali"
# plus the first 11 characters of NODE-NAME.
#
# Each calico-node registers its node and allocates its VXLAN tunnel address
# through IPAM. Pool: with LAB_POOL=CIDR (default 10.244.0.0/16) calico-node
# creates it (vxlanMode Always for "same", CrossSubnet for "cross");
# with LAB_POOL=none nobody does, and you apply your own: LAB_APPLY=FILE makes
# up apply FILE with calicoctl before it starts the daemons (or use `lab.sh ctl apply -f`).
# LAB_BACKEND sets CALICO_NETWORKING_BACKEND (default vxlan; bird runs the BGP speaker).
# Nothing is done in the host's own network namespace.
set -euo pipefail

BIN=${CALICO_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/bin}
P=${LAB_PREFIX:-lab}
LAB_DIR=${LAB_DIR:-/tmp/calico-$P}
LAB_POOL=${LAB_POOL:-10.244.0.0/16}
ETCD=http://10.99.0.1:2379
EXTERNAL=203.0.113.10
trap 'exit 130' INT TERM

die() { echo "lab: $*" >&2; exit 1; }
ns() { ip netns exec "$@"; }
# alive PID: the process exists and is not a zombie waiting to be reaped.
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
# lab_namespaces lists this lab's namespaces (never another prefix's).
lab_namespaces() { ip netns list | awk '{print $1}' | grep -E "^$P-(fab|r|ext|n[0-9]+(-.+)?)\$" || true; }

calicoctl() { ns "$P-r" env DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS="$ETCD" "$BIN/calicoctl" "$@"; }

node_addr() { # node_addr N variant -> subnet host
  if [ "$2" = cross ] && [ "$1" -eq 3 ]; then echo "98 13"; else echo "99 1$1"; fi
}

plug() { # plug NETNS IFNAME SUBNET ADDR [GW]
  local nsname=$1 ifname=$2 subnet=$3 addr=$4 gw=${5:-}
  local fab="v${nsname#"$P"-}$subnet"
  ip -n "$P-fab" link add "$fab" type veth peer name "$ifname" netns "$nsname"
  ip -n "$P-fab" link set "$fab" master "br$subnet" up
  ip -n "$nsname" addr add "$addr" dev "$ifname"
  ip -n "$nsname" link set "$ifname" up
  if [ -n "$gw" ]; then ip -n "$nsname" route add default via "$gw"; fi
}

# start NAME NETNS LOG CMD... runs CMD in NETNS in the background and
# records its PID. ip netns exec is started directly (not through the ns
# function, which would put a bash subshell between it and us) and execs
# CMD, so the recorded PID is CMD's and down's SIGTERM reaches the daemon.
start() {
  local name=$1 nsname=$2 log=$3; shift 3
  ip netns exec "$nsname" "$@" >"$log" 2>&1 &
  echo $! >"$LAB_DIR/$name.pid"
}

up() {
  local variant=${1:-same} nodes=${2:-3}
  case $variant in same|cross) ;; *) die "variant must be same or cross, not $variant" ;; esac
  [[ $nodes =~ ^[1-9]$ ]] || die "nodes must be 1-9, not $nodes"
  [ -x "$BIN/calico" ] || die "no $BIN/calico: run make build (or set CALICO_BIN)"
  if [ -n "$(lab_namespaces)" ] || [ -d "$LAB_DIR" ]; then
    echo "lab $P: removing a previous lab first"
    (down) >/dev/null # in a subshell: down ignores INT and TERM, and the daemons started below must not inherit that
  fi
  mkdir -p "$LAB_DIR/pods"
  echo "$variant" >"$LAB_DIR/variant"
  for n in "$P-fab" "$P-r" "$P-ext"; do ip netns add "$n"; ip -n "$n" link set lo up; done
  for s in 99 98; do
    ip -n "$P-fab" link add "br$s" type bridge
    ip -n "$P-fab" link set "br$s" up
    plug "$P-r" "eth$s" "$s" "10.$s.0.1/24"
  done
  ns "$P-r" sysctl -qw net.ipv4.ip_forward=1
  # The external host: linked straight to the router, routes to the node subnets only.
  ip -n "$P-r" link add ext0 type veth peer name eth0 netns "$P-ext"
  ip -n "$P-r" addr add 203.0.113.1/24 dev ext0
  ip -n "$P-r" link set ext0 up
  ip -n "$P-ext" addr add "$EXTERNAL/24" dev eth0
  ip -n "$P-ext" link set eth0 up
  for s in 99 98; do ip -n "$P-ext" route add "10.$s.0.0/24" via 203.0.113.1; done

  start etcd "$P-r" "$LAB_DIR/etcd.log" "$BIN/calico" etcd --data-dir "$LAB_DIR/etcd" --listen-client-urls "$ETCD"
  for i in $(seq 1 "$nodes"); do
    read -r subnet host < <(node_addr "$i" "$variant")
    ip netns add "$P-n$i"
    ip -n "$P-n$i" link set lo up
    plug "$P-n$i" eth0 "$subnet" "10.$subnet.0.$host/24" "10.$subnet.0.1"
  done
  # calicoctl itself waits up to 10 s for etcd; stop early if etcd died.
  local deadline=$((SECONDS + 30))
  until calicoctl get nodes >/dev/null 2>&1; do
    alive "$(cat "$LAB_DIR/etcd.pid")" || die "etcd exited; see $LAB_DIR/etcd.log"
    [ "$SECONDS" -lt "$deadline" ] || die "etcd did not answer on $ETCD within 30 s; see $LAB_DIR/etcd.log"
    sleep 0.1
  done
  if [ -n "${LAB_APPLY:-}" ]; then calicoctl apply -f - <"$LAB_APPLY"; fi

  local mode=Always pool=()
  [ "$variant" = cross ] && mode=CrossSubnet
  if [ "$LAB_POOL" = none ]; then
    pool=(NO_DEFAULT_POOLS=true)
  else
    pool=(CALICO_IPV4POOL_CIDR="$LAB_POOL" CALICO_IPV4POOL_VXLAN="$mode" CALICO_IPV4POOL_IPIP=Never)
  fi
  for i in $(seq 1 "$nodes"); do
    local d="$LAB_DIR/n$i"
    mkdir -p "$d"
    cat >"$d/net.conf" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "k8s-pod-network",
  "type": "calico",
  "etcd_endpoints": "$ETCD",
  "nodename": "n$i",
  "mtu_file": "$d/mtu",
  "ipam_lock_file": "$d/ipam.lock",
  "ipam": {"type": "calico-ipam"}
}
EOF
    start "n$i/calico-node" "$P-n$i" "$d/calico-node.log" env NODENAME="n$i" ETCD_ENDPOINTS="$ETCD" DATASTORE_TYPE=etcdv3 \
      CALICO_NETWORKING_BACKEND="${LAB_BACKEND:-vxlan}" IP_AUTODETECTION_METHOD=interface=eth0 "${pool[@]}" \
      CALICO_NODENAME_FILE="$d/nodename" CALICO_MTU_FILE="$d/mtu" CALICO_RUN_DIR="$d/run" \
      "$BIN/calico-node"
  done
  echo "lab $P up ($variant, $nodes nodes); state in $LAB_DIR"
}

node_dirs() { find "$LAB_DIR" -mindepth 1 -maxdepth 1 -type d -name 'n[0-9]*' 2>/dev/null | sort; }

wait_ready() {
  local timeout=${1:-30} d
  for d in $(node_dirs); do
    local n ok=
    n=$(basename "$d")
    for _ in $(seq $((timeout * 10))); do
      if CALICO_RUN_DIR="$d/run" "$BIN/calico-node" --check-ready >/dev/null 2>&1; then ok=1; break; fi
      alive "$(cat "$d/calico-node.pid")" || die "calico-node $n exited; log: $d/calico-node.log"
      sleep 0.1
    done
    [ -n "$ok" ] || die "calico-node $n not ready after ${timeout}s; log: $d/calico-node.log"
  done
}

# wait_routes: every node must have one of the daemon's routes (proto 80)
# covering each pod on another node.
wait_routes() {
  local timeout=${1:-30} d
  for d in $(node_dirs); do
    local n
    n=$(basename "$d")
    while read -r pn _ pip _; do
      [ -n "$pip" ] && [ "$pn" != "$n" ] || continue
      local ok=
      for _ in $(seq $((timeout * 10))); do
        if [ -n "$(ip -n "$P-$n" route show proto 80 match "$pip")" ]; then ok=1; break; fi
        sleep 0.1
      done
      [ -n "$ok" ] || die "node $n has no route to $pip (on $pn) after ${timeout}s"
    done < <(pod_list)
  done
}

status() {
  local d
  for d in $(node_dirs); do
    echo "== $(basename "$d")"
    CALICO_RUN_DIR="$d/run" "$BIN/calicoctl" node status || true
  done
}

pod_add() {
  local node=${1:-} name=${2:-} pool=${3:-}
  [ -n "$node" ] && [ -n "$name" ] || die "usage: lab.sh pod add NODE NAME [POOL]"
  local d="$LAB_DIR/$node" pns="$P-$node-$name" cid="$node-$name"
  [ -f "$d/net.conf" ] || die "no node $node in lab $P"
  exists "$pns" || { ip netns add "$pns"; ip -n "$pns" link set lo up; }
  local conf out
  conf=$(cat "$d/net.conf")
  if [ -n "$pool" ]; then conf=${conf/\"type\": \"calico-ipam\"/\"type\": \"calico-ipam\", \"ipv4_pools\": [\"$pool\"]}; fi
  # Run the plugin as a container runtime on that node would: from inside
  # the node's namespace, the netconf on stdin and CNI_* in the environment.
  if ! out=$(ns "$P-$node" env CNI_COMMAND=ADD CNI_CONTAINERID="$cid" CNI_NETNS="/var/run/netns/$pns" \
      CNI_IFNAME=eth0 CNI_PATH="$BIN" "$BIN/calico" <<<"$conf"); then
    echo "$out" >&2
    die "CNI ADD of $name on $node failed"
  fi
  local ip hostif
  ip=$(sed -n 's/.*"address": "\([0-9.]*\)\/32".*/\1/p' <<<"$out" | head -1)
  hostif=$(sed -n 's/.*"name": "\(cali[^"]*\)".*/\1/p' <<<"$out" | head -1)
  [ -n "$ip" ] || die "CNI ADD of $name on $node returned no IPv4 address: $out"
  echo "$node $name $ip $hostif" >"$LAB_DIR/pods/$node-$name"
  echo "pod $node/$name: $ip (host side $hostif, netns $pns)"
}

pod_del() {
  local node=${1:-} name=${2:-}
  [ -n "$node" ] && [ -n "$name" ] || die "usage: lab.sh pod del NODE NAME"
  local d="$LAB_DIR/$node" pns="$P-$node-$name"
  [ -f "$d/net.conf" ] || die "no node $node in lab $P"
  local out
  if ! out=$(ns "$P-$node" env CNI_COMMAND=DEL CNI_CONTAINERID="$node-$name" CNI_NETNS="/var/run/netns/$pns" \
      CNI_IFNAME=eth0 CNI_PATH="$BIN" "$BIN/calico" <"$d/net.conf"); then
    echo "$out" >&2
    die "CNI DEL of $name on $node failed"
  fi
  if exists "$pns"; then ip netns del "$pns"; fi
  rm -f "$LAB_DIR/pods/$node-$name"
  echo "pod $node/$name deleted"
}

pod_list() { cat "$LAB_DIR"/pods/* 2>/dev/null | sort || true; }

# ping_matrix: every pod pings every other pod once (2 s timeout) and the
# result is printed as a table; exit 1 if any pair fails.
ping_matrix() {
  local pods=() line
  while read -r line; do [ -n "$line" ] && pods+=("$line"); done < <(pod_list)
  [ ${#pods[@]} -ge 2 ] || die "need at least two pods (lab.sh pod add NODE NAME)"
  local fails=0 total=0 src dst
  printf '%-8s %-15s' "from" ""
  for dst in "${pods[@]}"; do read -r n name _ <<<"$dst"; printf ' %-6s' "$n/$name"; done
  echo
  for src in "${pods[@]}"; do
    local sn sname sip
    read -r sn sname sip _ <<<"$src"
    printf '%-8s %-15s' "$sn/$sname" "$sip"
    for dst in "${pods[@]}"; do
      local dn dname dip
      read -r dn dname dip _ <<<"$dst"
      if [ "$src" = "$dst" ]; then printf ' %-6s' "-"; continue; fi
      total=$((total + 1))
      if ns "$P-$sn-$sname" ping -n -q -c 1 -W 2 "$dip" >/dev/null 2>&1; then
        printf ' %-6s' OK
      else
        printf ' %-6s' FAIL
        fails=$((fails + 1))
      fi
    done
    echo
  done
  echo "$((total - fails))/$total pairs OK"
  [ "$fails" -eq 0 ]
}

down() {
  trap '' INT TERM # finish the cleanup even if interrupted
  # Stop what this lab started: the PIDs it recorded, then anything still
  # running inside its namespaces (e.g. after a failed up), by PID.
  # All are signalled first and waited for together (up to 5 s).
  local f pid n pids=()
  for f in "$LAB_DIR"/n*/calico-node.pid "$LAB_DIR"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    rm -f "$f"
  done
  for _ in $(seq 100); do
    local left=()
    for pid in "${pids[@]}"; do alive "$pid" && left+=("$pid"); done
    pids=("${left[@]}")
    [ ${#pids[@]} -gt 0 ] || break
    sleep 0.05
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for n in $(lab_namespaces); do
    for pid in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  for n in $(lab_namespaces); do ip netns del "$n"; done
  # Remove only what up creates in $LAB_DIR, then the directory if empty.
  if [ -d "$LAB_DIR" ]; then
    rm -rf "$LAB_DIR/etcd" "$LAB_DIR/pods" "$LAB_DIR"/n[0-9]* "$LAB_DIR/etcd.log" "$LAB_DIR/variant"
    rmdir "$LAB_DIR" 2>/dev/null || true
  fi
  echo "lab $P down"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  wait-ready) shift; wait_ready "$@" ;;
  wait-routes) shift; wait_routes "$@" ;;
  ctl) shift; calicoctl "$@" ;;
  pod)
    shift
    case "${1:-}" in
      add) shift; pod_add "$@" ;;
      del) shift; pod_del "$@" ;;
      list) pod_list ;;
      *) die "usage: lab.sh pod add|del|list ..." ;;
    esac ;;
  ping-matrix) ping_matrix ;;
  status) status ;;
  down) down ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
