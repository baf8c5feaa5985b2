package cli

import "github.com/spf13/cobra"

// newUp is `lghsctl up`: create or converge everything the inventory describes.
func newUp(g *Globals) *cobra.Command {
	return newNotYet(g, "up", "Create or converge everything the inventory describes", "up")
}
