package labhost

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
)

// Cmd is a command to run in a host.
type Cmd struct {
	// Args is the command and its arguments (looked up in the host's
	// PATH).
	Args []string
	// Stdin, Stdout and Stderr are the command's standard streams; nil
	// means empty input or discarded output.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Env is added to the host's base environment (PATH, HOME=/root,
	// LANG=C.UTF-8).
	Env []string
}

// Run runs c as root inside the host, in all its namespaces (mount, PID,
// network, UTS, IPC, cgroup), as `machinectl shell` would: no SSH
// involved, so it works whatever the host's sshd or firewall state. A
// failure is a *CommandError. Canceling ctx kills the command.
func (h *Host) Run(ctx context.Context, c Cmd) error {
	pid := h.PID()
	if pid == 0 {
		return fmt.Errorf("run %v on %s: host not running", c.Args, h.name)
	}
	args := append([]string{"nsenter", "--target", strconv.Itoa(pid),
		"--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--root", "--wd",
		"--", "env", "-i",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "LANG=C.UTF-8", "USER=root", "LOGNAME=root"}, c.Env...)
	args = append(args, c.Args...)
	err := h.lab.run.stream(ctx, c.Stdin, c.Stdout, c.Stderr, args...)
	if ce, ok := err.(*CommandError); ok {
		// Report the command as the caller wrote it.
		ce.Args = c.Args
		return fmt.Errorf("run on %s: %w", h.name, ce)
	}
	return err
}

// Output runs args in the host (see Run) and returns its standard output.
func (h *Host) Output(ctx context.Context, args ...string) ([]byte, error) {
	var out bytes.Buffer
	err := h.Run(ctx, Cmd{Args: args, Stdout: &out})
	return out.Bytes(), err
}

// ImportImage loads a container image into the host's Docker from a root
// file system tarball streamed from the box (`docker import`): no registry
// is reachable, so images are built locally. changes are Dockerfile
// instructions applied to the image (e.g. `ENTRYPOINT ["/httpd"]`).
// Docker must be installed in the host.
func (h *Host) ImportImage(ctx context.Context, tarball io.Reader, ref string, changes ...string) error {
	args := []string{"docker", "import"}
	for _, c := range changes {
		args = append(args, "--change", c)
	}
	args = append(args, "-", ref)
	if err := h.Run(ctx, Cmd{Args: args, Stdin: tarball}); err != nil {
		return fmt.Errorf("import image %s: %w", ref, err)
	}
	return nil
}
