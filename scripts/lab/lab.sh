#!/usr/bin/env bash
# A multi-node Calico lab in network namespaces on this host (reference/lab.md §2),
# the same topology as the Go helper internal/agent/labtest:
#
#   lab-fab   bridges br99 (10.99.0.0/24) and br98 (10.98.0.0/24)
#   lab-r     router: 10.99.0.1 and 10.98.0.1, etcd on http://10.99.0.1:2379
#   lab-nN    node N: eth0 10.99.0.1N/24 (node 3 on 10.98.0.13/24 with "cross"),
#             default route via its subnet's router; calico-node runs here
#
# Usage (as root, after `make build`):
#   scripts/lab/lab.sh up [same|cross] [nodes]   build the lab and start etcd and one calico-node per node
#   scripts/lab/lab.sh status                    calicoctl node status of every node
#   scripts/lab/lab.sh down                      stop every process the lab started and delete its namespaces
#
# Namespaces are named $LAB_PREFIX-* (default lab-*). State (logs, pid files,
# per-node nodename/mtu files and run dirs) lives in $LAB_DIR (default
# /tmp/calico-$LAB_PREFIX). Pool: CALICO_IPV4POOL_CIDR 10.244.0.0/16 with
# vxlanMode Always ("same") or CrossSubnet ("cross"). Until calico-node is wired to
# IPAM, VXLAN needs each Node's ipv4VXLANTunnelAddr set by hand.
set -euo pipefail

BIN=${CALICO_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/bin}
P=${LAB_PREFIX:-lab} # namespace name prefix, so two labs can coexist
LAB_DIR=${LAB_DIR:-/tmp/calico-$P}
ETCD=http://10.99.0.1:2379

ns() { ip netns exec "$@"; }

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

up() {
  local variant=${1:-same} nodes=${2:-3}
  [ -x "$BIN/calico" ] || { echo "no $BIN/calico: run make build (or set CALICO_BIN)" >&2; exit 1; }
  mkdir -p "$LAB_DIR"
  for n in "$P-fab" "$P-r"; do ip netns add "$n"; ip -n "$n" link set lo up; done
  for s in 99 98; do
    ip -n "$P-fab" link add "br$s" type bridge
    ip -n "$P-fab" link set "br$s" up
    plug "$P-r" "eth$s" "$s" "10.$s.0.1/24"
  done
  ns "$P-r" sysctl -qw net.ipv4.ip_forward=1
  ns "$P-r" "$BIN/calico" etcd --data-dir "$LAB_DIR/etcd" --listen-client-urls "$ETCD" \
    >"$LAB_DIR/etcd.log" 2>&1 &
  echo $! >"$LAB_DIR/etcd.pid"
  for i in $(seq 1 "$nodes"); do
    read -r subnet host < <(node_addr "$i" "$variant")
    ip netns add "$P-n$i"
    ip -n "$P-n$i" link set lo up
    plug "$P-n$i" eth0 "$subnet" "10.$subnet.0.$host/24" "10.$subnet.0.1"
  done
  local mode=Always
  [ "$variant" = cross ] && mode=CrossSubnet
  for i in $(seq 1 "$nodes"); do
    local d="$LAB_DIR/n$i"
    mkdir -p "$d"
    ns "$P-n$i" env NODENAME="n$i" ETCD_ENDPOINTS="$ETCD" DATASTORE_TYPE=etcdv3 \
      CALICO_NETWORKING_BACKEND=vxlan CALICO_IPV4POOL_CIDR=10.244.0.0/16 CALICO_IPV4POOL_VXLAN="$mode" \
      IP_AUTODETECTION_METHOD=interface=eth0 \
      CALICO_NODENAME_FILE="$d/nodename" CALICO_MTU_FILE="$d/mtu" CALICO_RUN_DIR="$d/run" \
      "$BIN/calico-node" >"$d/calico-node.log" 2>&1 &
    echo $! >"$d/calico-node.pid"
  done
  echo "lab up ($variant, $nodes nodes); state in $LAB_DIR"
}

status() {
  for d in "$LAB_DIR"/n*/; do
    echo "== $(basename "$d")"
    CALICO_RUN_DIR="$d/run" "$BIN/calico" ctl node status || true
  done
}

down() {
  # Stop only what this lab started, by the PIDs it recorded.
  for f in "$LAB_DIR"/n*/calico-node.pid "$LAB_DIR"/etcd.pid; do
    [ -f "$f" ] || continue
    local pid
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$f"
  done
  for n in $(ip netns list | awk '{print $1}' | grep -E "^$P-(fab|r|n[0-9]+)\$" || true); do
    ip netns del "$n"
  done
  echo "lab down (state left in $LAB_DIR)"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  status) status ;;
  down) down ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
