// Command labapp is the Rocket.Chat stand-in of the lab (see package
// labapp). It reads Rocket.Chat's environment (MONGO_URL, PORT) and takes
// its version from --version or LABAPP_VERSION, which each lab image sets.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/lghs/lghsctl/internal/lab/labapp"
)

func main() {
	version := flag.String("version", os.Getenv("LABAPP_VERSION"), "version to report")
	flag.Parse()
	port := os.Getenv("PORT")
	if port == "" {
		port = "3000"
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := labapp.Run(ctx, labapp.Config{Version: *version, MongoURL: os.Getenv("MONGO_URL"), Addr: ":" + port, RootURL: os.Getenv("ROOT_URL")}, os.Stdout)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "labapp:", err)
		os.Exit(1)
	}
}
