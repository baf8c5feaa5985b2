package labhost

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
)

// recipeVersion is part of every base's cache key. Bump it whenever what
// BuildBase does to a root file system after debootstrap changes, so
// existing caches are rebuilt instead of silently reused.
const recipeVersion = 1

// Releases the lab can build. Trixie (Debian 13) is the default: it is what
// a new Scaleway DEV1-M runs; bookworm (12) is kept working.
const (
	Trixie   = "trixie"
	Bookworm = "bookworm"
)

// DefaultMirror is the Debian mirror bases are built from. Hosts reach it
// only through the lab's apt proxy.
const DefaultMirror = "http://deb.debian.org/debian"

// Recipe says how a base root file system is built. Two recipes with the
// same Key build the same base, so the key names the cache entry: changing
// any field (or recipeVersion) builds a new base.
type Recipe struct {
	// Release is the Debian suite: Trixie or Bookworm.
	Release string `json:"release"`
	// Mirror is the Debian mirror URL.
	Mirror string `json:"mirror"`
	// Include are the packages added to debootstrap's minbase variant.
	Include []string `json:"include"`
	// Version is recipeVersion when the recipe was made.
	Version int `json:"version"`
}

// DefaultRecipe is the base every host starts from: debootstrap's minbase
// plus what lghsctl and its tests need on every host (systemd as PID 1,
// OpenSSH, Python for Ansible side-by-side runs, sudo, curl, gnupg). nginx
// and Docker are deliberately not in it: tests install them through the apt
// proxy, as lghsctl does on a real server.
func DefaultRecipe(release string) Recipe {
	return Recipe{
		Release: release,
		Mirror:  DefaultMirror,
		Include: []string{
			"systemd", "systemd-sysv", "openssh-server", "dbus", "iproute2",
			"ca-certificates", "python3", "sudo", "curl", "gnupg", "procps",
		},
		Version: recipeVersion,
	}
}

// Validate reports a recipe the lab cannot build.
func (r Recipe) Validate() error {
	switch r.Release {
	case Trixie, Bookworm:
	default:
		return fmt.Errorf("recipe: unsupported release %q (want %q or %q)", r.Release, Trixie, Bookworm)
	}
	if r.Mirror == "" {
		return fmt.Errorf("recipe %s: empty mirror", r.Release)
	}
	for _, p := range r.Include {
		if p == "" || !isPackageName(p) {
			return fmt.Errorf("recipe %s: bad package name %q", r.Release, p)
		}
	}
	return nil
}

// Key names the base this recipe builds: the release and a hash of the whole
// recipe (package order does not matter).
func (r Recipe) Key() string {
	c := r
	c.Include = slices.Clone(r.Include)
	slices.Sort(c.Include)
	c.Include = slices.Compact(c.Include)
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // a struct of strings always marshals
	}
	sum := sha256.Sum256(b)
	return r.Release + "-" + hex.EncodeToString(sum[:6])
}

func isPackageName(s string) bool {
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}
