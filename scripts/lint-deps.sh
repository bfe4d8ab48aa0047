#!/usr/bin/env bash
# Enforces the dependency rules of DESIGN.md §3 on the non-test imports of
# every package. Prints each violation and exits 1 if there is any.
set -euo pipefail
mod=$(go list -m)
fail=0
violation() { echo "dependency rule: $1"; fail=1; }

while read -r pkg imports; do
  rel=${pkg#"$mod"}; rel=${rel#/}
  for imp in $imports; do
    irel=${imp#"$mod"/}
    [ "$irel" = "$imp" ] && internal=no || internal=yes
    case "$rel" in
      internal/*)
        [[ $internal = yes && $irel == applets/* ]] && violation "$rel imports $irel (internal never imports applets)";;
    esac
    case "$rel" in
      applets/*)
        # A subpackage of the same applet is part of that applet.
        if [[ $internal = yes && $irel == applets/* && $(cut -d/ -f2 <<<"$irel") != $(cut -d/ -f2 <<<"$rel") ]]; then
          violation "$rel imports $irel (applets never import each other)"
        fi;;
    esac
    case "$rel" in
      internal/dataplane/*)
        [[ $internal = yes && $irel =~ ^internal/(datastore|bgp|agent|ipam|api|cniconf) ]] && violation "$rel imports $irel (dataplane gets plain desired state)";;
      internal/bgp*)
        [[ $imp == github.com/vishvananda/netlink* || ( $internal = yes && $irel =~ ^internal/(datastore|dataplane|agent) ) ]] && violation "$rel imports $imp (bgp never touches netlink, the datastore or the agent)";;
      internal/ipam*)
        [[ $internal = yes && ! $irel =~ ^internal/(api|kv|selector|ipam) ]] && violation "$rel imports $irel (ipam: api, kv and selector only; it declares the store interface it needs)";;
      internal/api)
        [[ $internal = yes && $irel != internal/selector ]] && violation "$rel imports $irel (api imports only the selector)";;
      internal/kv)
        [[ $internal = yes ]] && violation "$rel imports $irel (kv is a leaf)";;
      internal/selector|internal/version|internal/ruleset)
        [[ $internal = yes ]] && violation "$rel imports $irel (leaf package)";;
      internal/policy*)
        [[ $internal = yes && ! $irel =~ ^internal/(api|selector|ruleset) ]] && violation "$rel imports $irel (policy is pure: api, selector and ruleset only)";;
    esac
    [[ $internal = yes && $irel == internal/testutil* && $rel != internal/testutil* ]] && violation "$rel imports $irel outside tests"
    [[ $rel == . || $rel == "" ]] && [[ $internal = yes && $irel != applets/* ]] && violation "main imports $irel (main imports only applets)"
  done
done < <(go list -f '{{.ImportPath}} {{join .Imports " "}}' ./...)
exit $fail
