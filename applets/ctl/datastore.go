package ctl

import (
	"context"
	"fmt"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
)

const datastoreUsage = `Usage:
  calicoctl datastore migrate lock [--config=<CONFIG>]
  calicoctl datastore migrate unlock [--config=<CONFIG>]

Commands:
    migrate lock      Lock the datastore (ClusterInformation datastoreReady=false):
                      CNI ADD and DEL refuse to run until it is unlocked, so IPAM
                      data stands still (needed by ipam release --from-report).
    migrate unlock    Unlock the datastore (datastoreReady=true).

export and import are not implemented.`

// runDatastore is `calicoctl datastore migrate lock|unlock`.
func runDatastore(ctx context.Context, e *Env, args []string) error {
	switch {
	case len(args) == 1 && (args[0] == "-h" || args[0] == "--help"),
		len(args) == 2 && args[0] == "migrate" && (args[1] == "-h" || args[1] == "--help"):
		fmt.Fprintln(e.Stdout, datastoreUsage)
		return nil
	case len(args) < 2 || args[0] != "migrate":
		return usagef("%s", datastoreUsage)
	}
	switch args[1] {
	case "lock":
		return runLock(ctx, e, args[2:], true)
	case "unlock":
		return runLock(ctx, e, args[2:], false)
	case "export", "import":
		return fmt.Errorf("calicoctl datastore migrate %s is not implemented", args[1])
	}
	return usagef("Invalid datastore migrate command: %q\n%s", args[1], datastoreUsage)
}

// runLock sets ClusterInformation datastoreReady to !lock, creating the
// ClusterInformation first if the datastore is fresh, as upstream does.
func runLock(ctx context.Context, e *Env, args []string, lock bool) error {
	word := map[bool]string{true: "lock", false: "unlock"}[lock]
	fs := e.newFlagSet("datastore migrate "+word, "calicoctl datastore migrate "+word+" [--config=<CONFIG>]")
	addCompatFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("calicoctl datastore migrate %s: unexpected argument %q", word, fs.Arg(0))
	}
	c, err := e.Client()
	if err != nil {
		return err
	}
	if lock {
		if err := c.EnsureInitialized(ctx); err != nil {
			return fmt.Errorf("Unable to initialize cluster information for the datastore migration: %v", err)
		}
	}
	ci, err := datastore.GetOf[*api.ClusterInformation](ctx, c, api.KindClusterInformation, "", datastore.ClusterInfoName)
	if err != nil {
		return fmt.Errorf("Error retrieving ClusterInformation for %sing: %v", word, err)
	}
	ready := !lock
	ci.Spec.DatastoreReady = &ready
	if _, err := c.Update(ctx, ci); err != nil {
		return fmt.Errorf("Error updating ClusterInformation for %sing: %v", word, err)
	}
	fmt.Fprintf(e.Stdout, "Datastore %sed.\n", word)
	return nil
}
