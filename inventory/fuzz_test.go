package inventory

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks the loader never panics, and that whatever it accepts
// has the invariants later code relies on.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.yaml")
	files = append(files, "../inventory.yaml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse("fuzz.yaml", data)
		if err != nil {
			if ps, ok := err.(Problems); !ok || len(ps) == 0 {
				t.Fatalf("error is not a non-empty Problems: %v", err)
			}
			return
		}
		for _, h := range inv.Hosts {
			if h.Name == "" || h.Zone == "" || h.IPv4 == nil || h.IPv6 == nil {
				t.Fatalf("accepted host without defaults: %+v", h)
			}
		}
	})
}
