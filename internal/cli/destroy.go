package cli

import "github.com/spf13/cobra"

// newDestroy is `lghsctl destroy`: delete exactly what lghsctl created.
func newDestroy(g *Globals) *cobra.Command {
	return newNotYet(g, "destroy", "Delete exactly what lghsctl created for a host", "destroy")
}
