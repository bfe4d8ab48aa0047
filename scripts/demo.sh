#!/usr/bin/env bash
# make demo: a three-node Calico pod network in network namespaces on this
# machine, built from this repository's one binary, shown end to end, then
# removed. Run as root on Debian 12 (it installs the few Debian packages it
# needs). Nothing is done in the machine's own network namespace: every
# address, route, link and process lives in namespaces named demo-*, which
# are deleted at the end, also after a failure or Ctrl-C.
#
# Exit status: 0 if every ping succeeded, 1 otherwise.
set -euo pipefail

cd "$(dirname "$0")/.."
export LAB_PREFIX=demo LAB_DIR=/tmp/calico-demo
P=$LAB_PREFIX
lab=scripts/lab/lab.sh
EXTERNAL=203.0.113.10

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
section() { echo; bold "=== $* ==="; }
show() { echo "\$ $*"; } # a command as a user would type it
die() { echo "demo: $*" >&2; exit 1; }
# calicoctl runs where etcd listens (the router namespace); this is what
# `calicoctl ...` below stands for.
calicoctl() { ip netns exec "$P-r" env DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS=http://10.99.0.1:2379 bin/calicoctl "$@"; }

[ "$(id -u)" -eq 0 ] || die "run me as root (the demo creates network namespaces)"

# Tools: iproute2 (ip, bridge), ping, tcpdump, and file and make for the build.
missing=()
for tool in ip:iproute2 bridge:iproute2 ping:iputils-ping tcpdump:tcpdump file:file make:make; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "Installing missing Debian packages with apt-get: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v go >/dev/null 2>&1; then
  [ -x /usr/local/go/bin/go ] || die "Go is needed to build (expected at /usr/local/go)"
  export PATH=/usr/local/go/bin:$PATH
fi

start=$(date +%s)
failed=0
teardown() {
  local rc=$?
  trap - EXIT
  trap '' INT TERM # a second Ctrl-C must not stop the cleanup half-way
  section "Teardown"
  rm -f "$LAB_DIR/deny-policy.yaml" "$LAB_DIR"/tcpdump.* # ours; down removes the lab's
  show "$lab down"
  "$lab" down || true
  local left
  left=$(ip netns list | awk '{print $1}' | grep -c "^$P-" || true)
  echo "network namespaces left: $left"
  if [ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]; then
    echo "demo finished in $(($(date +%s) - start)) s: all pings OK"
  else
    echo "demo FAILED (exit $rc, $failed failed pings)"
    [ "$rc" -ne 0 ] || rc=1
  fi
  exit "$rc"
}
on_error() {
  local rc=$?
  echo "demo: a step failed (exit $rc); logs of the daemons:" >&2
  tail -n 20 "$LAB_DIR"/n*/calico-node.log "$LAB_DIR/etcd.log" 2>/dev/null >&2 || true
  exit "$rc"
}

section "1. Build"
echo "(the first build on a fresh machine, with a cold Go build cache, takes a minute or more)"
show make build
make -s build
ls -lh bin/
bin/calico version

section "2. Lab: three nodes, a router with etcd, an external host"
cat <<EOF
  n1 10.99.0.11 --+
                  +--[br99]-- 10.99.0.1 (router) 10.98.0.1 --[br98]-- n3 10.98.0.13
  n2 10.99.0.12 --+           etcd :2379    |
                                            +-- 203.0.113.1 -- external host $EXTERNAL
                                                               (routes only the node subnets)
Each one is a network namespace ($P-n1, $P-r, ...); each node runs calico-node.
calicoctl below runs in $P-r: ip netns exec $P-r env ETCD_ENDPOINTS=http://10.99.0.1:2379 bin/calicoctl ...
EOF
echo
show cat testdata/demo/pool.yaml
grep -v '^#' testdata/demo/pool.yaml
trap teardown EXIT
trap 'exit 130' INT TERM
# A closed output (make demo | head) must not skip the teardown.
trap 'exec >/dev/null 2>&1; exit 141' PIPE
trap on_error ERR
echo
show "LAB_POOL=none LAB_APPLY=testdata/demo/pool.yaml $lab up cross 3   # applies the pool, then starts calico-node on n1..n3"
LAB_POOL=none LAB_APPLY=testdata/demo/pool.yaml "$lab" up cross 3
show "$lab wait-ready"
"$lab" wait-ready 60
echo "calico-node is ready on n1, n2 and n3"

section "3. Two pods per node, added through the calico CNI plugin"
echo "(each: ip netns exec $P-nN env CNI_COMMAND=ADD CNI_NETNS=... bin/calico < netconf)"
show cat "$LAB_DIR/n1/net.conf"
cat "$LAB_DIR/n1/net.conf"
for n in n1 n2 n3; do
  for p in p1 p2; do
    "$lab" pod add "$n" "$p"
  done
done
show "$lab wait-routes"
"$lab" wait-routes 60

section "4. Pod-to-pod ping matrix (30 pairs)"
"$lab" ping-matrix || failed=$((failed + 1))

section "5. Each pod pings its own node"
while read -r n name ip _; do
  nodeip=$(ip -n "$P-$n" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
  if ip netns exec "$P-$n-$name" ping -n -q -c 1 -W 2 "$nodeip" >/dev/null 2>&1; then r=OK; else r=FAIL; failed=$((failed + 1)); fi
  printf '%-6s %-15s -> %-6s %-12s %s\n' "$n/$name" "$ip" "$n" "$nodeip" "$r"
done < <("$lab" pod list)

section "6. Each pod pings the external host (NAT outgoing)"
echo "The external host has no route to 10.244.0.0/16; tcpdump on it shows each request's source."
while read -r n name ip _; do
  cap=$LAB_DIR/tcpdump.$n-$name
  ip netns exec "$P-ext" tcpdump -l -n -c 1 -i eth0 'icmp[icmptype] == icmp-echo' >"$cap.out" 2>"$cap.err" &
  tpid=$!
  for _ in $(seq 50); do grep -q "listening on" "$cap.err" 2>/dev/null && break; sleep 0.05; done
  if ip netns exec "$P-$n-$name" ping -n -q -c 1 -W 2 "$EXTERNAL" >/dev/null 2>&1; then r=OK; else r=FAIL; failed=$((failed + 1)); fi
  for _ in $(seq 40); do kill -0 "$tpid" 2>/dev/null || break; sleep 0.05; done
  kill "$tpid" 2>/dev/null || true
  wait "$tpid" 2>/dev/null || true
  seen=$(awk '/ICMP echo request/ {print $3; exit}' "$cap.out")
  printf '%-6s %-15s -> %s %-4s external host saw source %s\n' "$n/$name" "$ip" "$EXTERNAL" "$r" "${seen:-nothing}"
  rm -f "$cap.out" "$cap.err"
done < <("$lab" pod list)

section "7. What calicoctl shows"
show calicoctl get nodes -o wide
calicoctl get nodes -o wide
echo
show calicoctl get workloadendpoints -A -o wide
calicoctl get workloadendpoints -A -o wide
echo
show calicoctl ipam show --show-blocks
calicoctl ipam show --show-blocks
echo
show "CALICO_RUN_DIR=$LAB_DIR/n1/run calicoctl node status    # on n1"
CALICO_RUN_DIR="$LAB_DIR/n1/run" bin/calicoctl node status

section "8. Each node's routes"
echo "proto 80: routes calico-node derived from the datastore (blackhole = this node's own block;"
echo "via 10.99.0.x dev eth0 = same subnet, direct; dev vxlan.calico = across the router, VXLAN);"
echo "/32 routes on cali* interfaces: the pods, added by the CNI plugin."
for n in n1 n2 n3; do
  echo
  show ip -n "$P-$n" route
  ip -n "$P-$n" route
done
echo
show ip -n "$P-n3" -d link show vxlan.calico
ip -n "$P-n3" -d link show vxlan.calico

section "9. Network policy: one flow denied, one allowed, and why"
src1=$("$lab" pod list | awk '$1=="n1" && $2=="p1" {print $3}')
src2=$("$lab" pod list | awk '$1=="n1" && $2=="p2" {print $3}')
dst=$("$lab" pod list | awk '$1=="n2" && $2=="p1" {print $3}')
sed -e "s/@SRC@/$src1/" -e "s/@DST@/$dst/" testdata/demo/deny-policy.yaml >"$LAB_DIR/deny-policy.yaml"
show cat deny-policy.yaml
cat "$LAB_DIR/deny-policy.yaml"
show calicoctl apply -f deny-policy.yaml
calicoctl apply -f - <"$LAB_DIR/deny-policy.yaml"
flow() { # flow SRC-NODE SRC-POD SRC-IP WANT: ping DST from the pod and print the verdict
  for _ in 1 2 3 4 5; do # the policy is in force within milliseconds; allow for a loaded machine
    if ip netns exec "$P-$1-$2" ping -n -q -c 1 -W 1 "$dst" >/dev/null 2>&1; then got=allowed; else got=denied; fi
    [ "$got" = "$4" ] && break
  done
  [ "$got" = "$4" ] && r=OK || { r="FAIL (expected $4)"; failed=$((failed + 1)); }
  printf '%-6s %-15s -> n2/p1  %-15s ping %-8s %s\n' "$1/$2" "$3" "$dst" "$got" "$r"
  show calicoctl policy explain --from "$3" --to "$dst" --protocol ICMP
  calicoctl policy explain --from "$3" --to "$dst" --protocol ICMP | sed 's/^/    /'
}
flow n1 p1 "$src1" denied
flow n1 p2 "$src2" allowed
show calicoctl delete globalnetworkpolicy demo-deny-one-flow
calicoctl delete globalnetworkpolicy demo-deny-one-flow

trap - ERR
[ "$failed" -eq 0 ]
