package cni

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/dataplane/link"
)

// refuseOwnNetNS fails when CNI_NETNS names the network namespace the
// plugin runs in, the node's (e.g. /proc/1/ns/net, or the node's own
// /var/run/netns entry): an ADD would set the "container" sysctls
// (ip_forward=0), address and default route on the node, and a DEL with
// CNI_IFNAME=eth0 would delete the node's uplink. The CNI library checks
// this only after a command returns, so every command that enters the
// namespace checks it first, before the datastore or the kernel is
// touched. Namespaces are compared by nsfs device and inode, so any path
// naming the namespace is caught. A path that cannot be examined is left
// to the command (a DEL succeeds when the namespace is gone).
func refuseOwnNetNS(hostNS, containerNS string) error {
	if containerNS == "" {
		return nil
	}
	cdev, cino, err := link.NetNSIdentity(containerNS)
	if err != nil {
		return nil
	}
	hdev, hino, err := link.NetNSIdentity(hostNS)
	if err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("identify the plugin's own network namespace: %v", err), "")
	}
	if cdev != hdev || cino != hino {
		return nil
	}
	return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf(
		"CNI_NETNS %s (net:[%d]) is the network namespace the plugin runs in (/proc/self/ns/net, net:[%d]), the node's own: refusing to plumb or tear down a container there; give the container's own namespace",
		containerNS, cino, hino), "")
}
