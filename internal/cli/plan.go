package cli

import "github.com/spf13/cobra"

// newPlan is `lghsctl plan`: what up would change in the cloud.
func newPlan(g *Globals) *cobra.Command {
	return newNotYet(g, "plan", "Show what up would change in the cloud and on the hosts", "planning")
}
