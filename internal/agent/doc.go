// Package agent is the node daemon (calico-node): it registers the node in
// the datastore at startup (name, autodetected IP, AS, default IP pool,
// default FelixConfiguration, tunnel addresses), then keeps the kernel in
// step with the datastore: routes to other nodes' IPAM blocks (VXLAN, IPIP,
// CrossSubnet or direct), the vxlan.calico device and its static VTEPs,
// NAT outgoing, the MTU file and kernel settings. It also serves health,
// Prometheus metrics and a status control socket.
//
// Data flows one way. Datastore watches (kv.Sync) only record what changed
// in a Model and signal a coalescing trigger; one reconcile goroutine takes
// a snapshot of the Model, computes the desired dataplane purely (Calc) and
// applies only the parts that changed since the last successful apply, plus
// a full re-apply every routeRefreshInterval. Nothing touches the kernel
// before every watched prefix has delivered its first snapshot, and every
// apply is idempotent and adds before it deletes, so a restart re-adopts
// the previous run's state without disturbing traffic.
//
// Every kernel call is bound to the namespace Config.NetNS names (handles,
// not thread switches), so tests run the agent inside throwaway namespaces.
//
// The package may import api, kv, datastore, selector and dataplane/*; it
// never imports applets, and nothing below it imports it.
package agent
