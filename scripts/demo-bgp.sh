#!/usr/bin/env bash
# make demo-bgp: three calico-node daemons on one subnet, in network
# namespaces on this machine, whose pods are routed by BGP (the embedded
# speaker, a node-to-node mesh) with a pool that has no encapsulation, as in
# seed 003. Shown end to end, then removed. Run as root after `make demo`
# works (same tools). Nothing is done in the machine's own network
# namespace.
#
# Exit status: 0 if every ping succeeded, 1 otherwise.
set -euo pipefail

cd "$(dirname "$0")/.."
export LAB_PREFIX=demobgp LAB_DIR=/tmp/calico-demobgp LAB_BACKEND=bird
P=$LAB_PREFIX
lab=scripts/lab/lab.sh

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
section() { echo; bold "=== $* ==="; }
show() { echo "\$ $*"; }
die() { echo "demo-bgp: $*" >&2; exit 1; }
calicoctl() { ip netns exec "$P-r" env DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS=http://10.99.0.1:2379 bin/calicoctl "$@"; }

[ "$(id -u)" -eq 0 ] || die "run me as root (the demo creates network namespaces)"
command -v go >/dev/null 2>&1 || export PATH=/usr/local/go/bin:$PATH

start=$(date +%s)
failed=0
teardown() {
  local rc=$?
  trap - EXIT
  trap '' INT TERM
  section "Teardown"
  show "$lab down"
  "$lab" down || true
  if [ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]; then
    echo "demo-bgp finished in $(($(date +%s) - start)) s: all pings OK"
  else
    echo "demo-bgp FAILED (exit $rc, $failed failed)"
    [ "$rc" -ne 0 ] || rc=1
  fi
  exit "$rc"
}
on_error() {
  local rc=$?
  echo "demo-bgp: a step failed (exit $rc); logs of the daemons:" >&2
  tail -n 20 "$LAB_DIR"/n*/calico-node.log 2>/dev/null >&2 || true
  exit "$rc"
}

section "1. Build"
show make build
make -s build

section "2. Three nodes on 10.99.0.0/24, BGP backend, a pool without encapsulation"
show cat testdata/demo/bgp-pool.yaml
grep -v '^#' testdata/demo/bgp-pool.yaml
trap teardown EXIT
trap 'exit 130' INT TERM
trap 'exec >/dev/null 2>&1; exit 141' PIPE
trap on_error ERR
show "LAB_BACKEND=bird LAB_POOL=none LAB_APPLY=testdata/demo/bgp-pool.yaml $lab up same 3"
LAB_POOL=none LAB_APPLY=testdata/demo/bgp-pool.yaml "$lab" up same 3
"$lab" wait-ready 60

section "3. One pod per node (calico CNI plugin)"
for n in n1 n2 n3; do "$lab" pod add "$n" p1; done

section "4. BGP: every node learns the others' blocks"
for n in n1 n2 n3; do
  ok=
  for _ in $(seq 200); do
    if [ "$(ip -n "$P-$n" route show proto bird | wc -l)" -ge 2 ]; then ok=1; break; fi
    sleep 0.05
  done
  [ -n "$ok" ] || { echo "$n has no BGP routes yet"; failed=$((failed + 1)); }
done
show "CALICO_RUN_DIR=$LAB_DIR/n3/run calicoctl node status    # on n3"
CALICO_RUN_DIR="$LAB_DIR/n3/run" bin/calicoctl node status
for n in n1 n2 n3; do
  echo
  show ip -n "$P-$n" route
  ip -n "$P-$n" route
done

section "5. Pod-to-pod ping matrix"
"$lab" ping-matrix || failed=$((failed + 1))

trap - ERR
[ "$failed" -eq 0 ]
