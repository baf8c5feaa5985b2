// Command labdb-ferretdb is the lab's MongoDB stand-in: FerretDB v1.24
// with its SQLite backend, embedded through its ferretdb package, on one
// TCP address. It is a lab-only program in its own Go module, so that
// FerretDB's dependency graph never enters lghsctl's go.mod or binary.
//
// It runs three ways: as a plain process on loopback for tests on the
// build machine, as a systemd service on an "old" lab host, and as the
// entry point of a container image on a "new" lab host (see
// ../image.go). It prints one line, "labdb: listening on <uri>", once
// it accepts connections (tests read the port from it when listening on
// port 0), and stops cleanly on SIGTERM or SIGINT.
//
//	labdb-ferretdb --listen 127.0.0.1:27017 --dir /var/lib/labdb
//
// Build it with ../build.sh (or: cd internal/lab/labdb/ferretdb &&
// CGO_ENABLED=0 go build -trimpath -o labdb-ferretdb .).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "labdb-ferretdb:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on (host:port; port 0 picks one)")
	dir := flag.String("dir", "", "directory of the SQLite databases (created if missing)")
	logLevel := flag.String("log-level", "error", "FerretDB log level: debug, info, warn or error")
	flag.Parse()
	if *dir == "" {
		return errors.New("--dir is required")
	}
	if err := os.MkdirAll(*dir, 0o750); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	// Probe the address first: FerretDB's own listener failure only shows
	// up in its log, and a clear error is worth a duplicate bind.
	if !strings.HasSuffix(*listen, ":0") {
		l, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		l.Close()
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + strings.TrimSuffix(*dir, "/") + "/",
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// MongoDBURI blocks until the listener is up.
	uri := f.MongoDBURI()
	host := strings.TrimSuffix(strings.TrimPrefix(uri, "mongodb://"), "/")
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			return fmt.Errorf("listener %s never answered: %w", host, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("labdb: listening on %s\n", uri)
	return <-done
}
