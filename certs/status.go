package certs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// FileReader reads a file (a host over SSH: hostsetup.Host has it; or the
// local machine, LocalFiles). A missing file is an error wrapping
// fs.ErrNotExist.
type FileReader interface {
	ReadFile(ctx context.Context, path string) ([]byte, error)
}

// LocalFiles reads the local file system (`certs status` on the host).
type LocalFiles struct{}

// ReadFile implements FileReader.
func (LocalFiles) ReadFile(ctx context.Context, path string) ([]byte, error) {
	return os.ReadFile(path)
}

// CertStatus is what `lghsctl certs status` shows for one certificate.
type CertStatus struct {
	Name string `json:"name"`
	// Deployed describes the live certificate; Problem is set when there
	// is none or it cannot be read.
	Deployed *Info  `json:"deployed,omitempty"`
	Problem  string `json:"problem,omitempty"`
	// Last is the certificate's outcome in the last renewal run (nil when
	// no run happened yet); Checked is when that run ended.
	Last    *CertState `json:"last_renewal_run,omitempty"`
	Checked time.Time  `json:"checked,omitzero"`
}

// ReadStatus reads the live certificates of sites (under liveRoot, default
// LiveRoot) and the renewal state file (default HostStateFile) through r.
// Nothing secret is read.
func ReadStatus(ctx context.Context, r FileReader, sites []string, liveRoot, stateFile string) ([]CertStatus, error) {
	liveRoot, stateFile = or(liveRoot, LiveRoot), or(stateFile, HostStateFile)
	var st State
	b, err := r.ReadFile(ctx, stateFile)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("read %s: %w", stateFile, err)
		}
	case !isNotExist(err):
		return nil, fmt.Errorf("read %s: %w", stateFile, err)
	}
	var out []CertStatus
	for _, site := range sites {
		cs := CertStatus{Name: site}
		p := filepath.Join(liveRoot, site, "fullchain.pem")
		chain, err := r.ReadFile(ctx, p)
		switch {
		case isNotExist(err):
			cs.Problem = "no certificate deployed (" + p + ")"
		case err != nil:
			return nil, fmt.Errorf("read %s: %w", p, err)
		default:
			if info, _, err := Inspect(chain); err != nil {
				cs.Problem = fmt.Sprintf("%s: %v", p, err)
			} else {
				cs.Deployed = &info
			}
		}
		for i := range st.Certificates {
			if st.Certificates[i].Name == site {
				c := st.Certificates[i]
				cs.Last, cs.Checked = &c, st.Finished
			}
		}
		out = append(out, cs)
	}
	return out, nil
}
