package cli

import "github.com/spf13/cobra"

// newSnapshot is `lghsctl snapshot`: image backups of an instance.
func newSnapshot(g *Globals) *cobra.Command {
	return newNotYet(g, "snapshot", "Image backups of an instance: create, list, restore as a clone, prune", "snapshot")
}
