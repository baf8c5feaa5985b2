package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"
)

// HandOffVersion is the version of the hand-off document's format.
const HandOffVersion = 1

// HandOff is the JSON document an external engine (migrate.engine: exec)
// reads on its standard input. It describes both hosts, how to reach them
// and their databases; it never holds a secret, only references to where
// secrets are (files, environment variables).
type HandOff struct {
	Version int `json:"version"`
	// Action is the lghsctl migrate subcommand: plan, data or verify.
	Action    string      `json:"action"`
	Inventory string      `json:"inventory"`
	Source    HandOffHost `json:"source"`
	Target    HandOffHost `json:"target"`
	// Databases to move.
	Databases []string `json:"databases"`
	// Options the operator gave on the command line.
	Options HandOffOptions `json:"options"`
	// Secrets the engine needs, by reference (migrate.exec.secrets).
	Secrets map[string]SecretRef `json:"secrets,omitempty"`
}

// HandOffHost is one side of the move.
type HandOffHost struct {
	Name string     `json:"name"`
	SSH  HandOffSSH `json:"ssh"`
	// MongoURI as the host itself sees the database (bound to its
	// loopback: reach it through an SSH tunnel).
	MongoURI string `json:"mongo_uri"`
	// UploadsDir holds the files kept on disk, if any.
	UploadsDir string `json:"uploads_dir,omitempty"`
	// Compose describes the target's app stack (target only).
	Compose *HandOffCompose `json:"compose,omitempty"`
	// StateDir is where lghsctl keeps its migrate state (target only).
	StateDir string `json:"state_dir,omitempty"`
}

// HandOffSSH is how to log in: the identity is a file path (or the
// agent), never a key.
type HandOffSSH struct {
	Address      string `json:"address,omitempty"`
	Port         int    `json:"port,omitempty"`
	User         string `json:"user,omitempty"`
	IdentityFile string `json:"identity_file,omitempty"`
	ConfigHost   string `json:"config_host,omitempty"`
	ProxyJump    string `json:"proxy_jump,omitempty"`
	KnownHosts   string `json:"known_hosts,omitempty"`
}

// HandOffCompose is the target's compose project.
type HandOffCompose struct {
	Project         string `json:"project"`
	File            string `json:"file"`
	DatabaseService string `json:"database_service"`
	AppService      string `json:"app_service"`
}

// HandOffOptions are the command line's options.
type HandOffOptions struct {
	Drop    bool   `json:"drop,omitempty"`
	Restart bool   `json:"restart,omitempty"`
	Archive string `json:"archive,omitempty"`
	Check   bool   `json:"check,omitempty"`
}

// SecretRef names where a secret is: an environment variable or a file.
type SecretRef struct {
	Env  string `json:"env,omitempty"`
	File string `json:"file,omitempty"`
}

// ExecEngine runs an external data-move engine.
type ExecEngine struct {
	// Command and arguments (no shell).
	Command []string
	// Dir is its working directory (the inventory's).
	Dir string
	// Env is its environment (the caller's: the engine reads the secrets
	// the document names itself).
	Env []string
	// Stdout and Stderr receive its output.
	Stdout, Stderr io.Writer
}

// ExecError is an engine that failed.
type ExecError struct {
	Command  string
	ExitCode int
	Err      error
}

func (e *ExecError) Error() string {
	if e.ExitCode > 0 {
		return fmt.Sprintf("the migrate engine %s exited with status %d", e.Command, e.ExitCode)
	}
	return fmt.Sprintf("the migrate engine %s: %v", e.Command, e.Err)
}

func (e *ExecError) Unwrap() error { return e.Err }

// Run runs the engine with doc on its standard input and waits for it;
// cancelling ctx sends it SIGTERM, then SIGKILL after 10 s.
func (e *ExecEngine) Run(ctx context.Context, doc HandOff) error {
	if len(e.Command) == 0 {
		return errors.New("no migrate engine command")
	}
	doc.Version = HandOffVersion
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, e.Command[0], e.Command[1:]...)
	cmd.Dir = e.Dir
	cmd.Env = e.Env
	cmd.Stdin = bytes.NewReader(append(b, '\n'))
	cmd.Stdout = e.Stdout
	cmd.Stderr = e.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	if err == nil {
		return nil
	}
	xe := &ExecError{Command: e.Command[0], ExitCode: -1, Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		xe.ExitCode = ee.ExitCode()
	}
	if ctx.Err() != nil {
		xe.Err = ctx.Err()
	}
	return xe
}
