// Command lghsctl provisions, configures and migrates a self-hosted chat
// server from one declarative inventory. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/lghs/lghsctl/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.OS())
	stop()
	os.Exit(code)
}
