package lghsctl

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Doc        string
	Imports    []string
	Deps       []string
	Name       string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

const module = "github.com/lghs/lghsctl"

// TestEveryPackageIsDocumented keeps a package doc comment on every
// package, so `go doc` explains each one.
func TestEveryPackageIsDocumented(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}

// TestImportRules checks the dependency directions the house style sets.
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	forbid := func(from, to, why string) {
		for _, p := range pkgs {
			if !strings.HasPrefix(p.ImportPath, module+"/"+from) {
				continue
			}
			for _, d := range p.Deps {
				if d == to || strings.HasPrefix(d, to+"/") {
					t.Errorf("%s depends on %s: %s", p.ImportPath, d, why)
				}
			}
		}
	}
	for _, domain := range []string{"inventory", "provision", "hostsetup", "templates", "certs", "migrate", "internal/task", "internal/report", "internal/remote"} {
		forbid(domain, module+"/internal/lab", "production code must not depend on the lab")
		forbid(domain, module+"/internal/cli", "the CLI sits on top, nothing imports it")
	}
	forbid("provision", module+"/internal/remote", "provision knows nothing of SSH")
	forbid("provision", module+"/hostsetup", "provision knows nothing of host setup")
	forbid("hostsetup", "github.com/scaleway/scaleway-sdk-go", "hostsetup knows nothing of Scaleway")
	forbid("hostsetup", "github.com/cloudflare/cloudflare-go/v7", "hostsetup knows nothing of Cloudflare")
	forbid("inventory", "github.com/scaleway/scaleway-sdk-go", "the inventory is provider-neutral data")
	// cloudflare-go's root package pulls ~130 packages; only dns, zones and
	// option are used.
	for _, p := range pkgs {
		for _, d := range p.Deps {
			if d == "github.com/cloudflare/cloudflare-go/v7" {
				t.Errorf("%s imports cloudflare-go's root package; import only dns, zones and option", p.ImportPath)
			}
		}
	}
}
