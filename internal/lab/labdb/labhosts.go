package labdb

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lghs/lghsctl/internal/lab/labhost"
)

// OldHostFiles are the files that make a lab host an "old" LgHS server:
// labdb-ferretdb as a systemd service on its loopback (labdb.service,
// enable it after boot), and the stand-in mongodump in /usr/local/bin.
// workDir receives the built tools.
func OldHostFiles(ctx context.Context, workDir string) ([]labhost.File, error) {
	dbBin, err := Binary(ctx)
	if err != nil {
		return nil, err
	}
	db, err := os.ReadFile(dbBin)
	if err != nil {
		return nil, err
	}
	tools := filepath.Join(workDir, "mongotools")
	if err := BuildStatic(ctx, ToolsPackage, tools); err != nil {
		return nil, err
	}
	toolsBin, err := os.ReadFile(tools)
	if err != nil {
		return nil, err
	}
	return []labhost.File{
		{Path: "/usr/local/bin/labdb-ferretdb", Mode: 0o755, Data: db},
		{Path: "/usr/local/bin/mongotools", Mode: 0o755, Data: toolsBin},
		{Path: "/usr/local/bin/mongodump", Mode: 0o755, Data: []byte("#!/bin/sh\nexec /usr/local/bin/mongotools mongodump \"$@\"\n")},
		{Path: "/usr/local/bin/mongorestore", Mode: 0o755, Data: []byte("#!/bin/sh\nexec /usr/local/bin/mongotools mongorestore \"$@\"\n")},
		{Path: "/etc/systemd/system/labdb.service", Data: []byte(ServiceUnit)},
	}, nil
}

// StartOldService enables and starts the database service on an old host.
func StartOldService(ctx context.Context, h *labhost.Host) error {
	return h.Run(ctx, labhost.Cmd{Args: []string{"systemctl", "enable", "--now", "labdb.service"}})
}

// PrepareNewHost makes a lab host a "new" server's database side: Docker
// (InstallDocker), the database image imported (ImportImage), and its
// container "mongo" published on 127.0.0.1:27017 (RunContainer).
func PrepareNewHost(ctx context.Context, h *labhost.Host, image []byte, extraPackages ...string) error {
	if err := InstallDocker(ctx, h, extraPackages...); err != nil {
		return err
	}
	if err := ImportImage(ctx, h, image, ImageRef); err != nil {
		return err
	}
	return RunContainer(ctx, h)
}

// InstallDocker installs Debian's docker.io (and extra packages) through
// the lab's apt proxy.
func InstallDocker(ctx context.Context, h *labhost.Host, extraPackages ...string) error {
	pkgs := "docker.io"
	for _, p := range extraPackages {
		pkgs += " " + p
	}
	if err := h.Run(ctx, labhost.Cmd{Args: []string{"sh", "-c", "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q " + pkgs + " >/dev/null"}}); err != nil {
		return fmt.Errorf("install docker on %s: %w", h.Name(), err)
	}
	return nil
}

// ImportImage imports the database image (Image's rootfs) as ref.
func ImportImage(ctx context.Context, h *labhost.Host, image []byte, ref string) error {
	return h.ImportImage(ctx, bytes.NewReader(image), ref, ImageChanges...)
}

// RunContainer runs the database image as container "mongo", published on
// the host's 127.0.0.1:27017.
func RunContainer(ctx context.Context, h *labhost.Host) error {
	return h.Run(ctx, labhost.Cmd{Args: []string{"docker", "run", "-d", "--name", "mongo", "--restart", "unless-stopped", "-p", "127.0.0.1:27017:27017", ImageRef}})
}
