package scwsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// persistLocked writes the state file (atomically: temp file + rename) when
// one is configured.
func (s *Sim) persistLocked() error {
	if s.cfg.StateFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(s.st, "", " ")
	if err != nil {
		return fmt.Errorf("encode scwsim state: %w", err)
	}
	dir := filepath.Dir(s.cfg.StateFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create scwsim state dir %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".scwsim-state-*")
	if err != nil {
		return fmt.Errorf("write scwsim state %s: %w", s.cfg.StateFile, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write scwsim state %s: %w", s.cfg.StateFile, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write scwsim state %s: %w", s.cfg.StateFile, err)
	}
	if err := os.Rename(tmp.Name(), s.cfg.StateFile); err != nil {
		return fmt.Errorf("write scwsim state %s: %w", s.cfg.StateFile, err)
	}
	return nil
}

// load reads the state file; a missing file is an empty state.
func (s *Sim) load() error {
	b, err := os.ReadFile(s.cfg.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load scwsim state %s: %w", s.cfg.StateFile, err)
	}
	st := newState()
	if err := json.Unmarshal(b, st); err != nil {
		return fmt.Errorf("load scwsim state %s: %w", s.cfg.StateFile, err)
	}
	// A file written by hand or by an older version may lack maps.
	fresh := newState()
	if st.Servers == nil {
		st.Servers = fresh.Servers
	}
	if st.Volumes == nil {
		st.Volumes = fresh.Volumes
	}
	if st.Snapshots == nil {
		st.Snapshots = fresh.Snapshots
	}
	if st.Images == nil {
		st.Images = fresh.Images
	}
	if st.IPs == nil {
		st.IPs = fresh.IPs
	}
	if st.SecurityGroups == nil {
		st.SecurityGroups = fresh.SecurityGroups
	}
	if st.SSHKeys == nil {
		st.SSHKeys = fresh.SSHKeys
	}
	if st.BlockVolumes == nil {
		st.BlockVolumes = fresh.BlockVolumes
	}
	if st.BlockSnapshots == nil {
		st.BlockSnapshots = fresh.BlockSnapshots
	}
	s.st = st
	return nil
}
