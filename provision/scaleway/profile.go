package scaleway

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/scaleway/scaleway-sdk-go/scw"
	"gopkg.in/yaml.v3"
)

// Credentials is the Scaleway profile lghsctl uses, resolved the way the
// scw CLI and the SDK do it: the config file (and the chosen profile,
// merged on top of its root), then SCW_* environment variables on top.
type Credentials struct {
	Profile *scw.Profile
	// Sources says where the access and secret keys came from, for
	// messages; it never holds a key.
	Sources []string
}

// ConfigPath is where the scw config file is looked for: $SCW_CONFIG_PATH,
// then $XDG_CONFIG_HOME/scw/config.yaml, then ~/.config/scw/config.yaml.
func ConfigPath(getenv func(string) string) string {
	if p := getenv("SCW_CONFIG_PATH"); p != "" {
		return p
	}
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "scw", "config.yaml")
	}
	return filepath.Join(getenv("HOME"), ".config", "scw", "config.yaml")
}

// LoadCredentials resolves the profile named by the inventory (or
// SCW_PROFILE, or the file's active_profile) and the environment. It reads
// the file itself, rather than with scw.LoadConfigFromPath, because that
// prints warnings on stdout; the result is the same.
func LoadCredentials(profileName string, getenv func(string) string) (*Credentials, error) {
	c := &Credentials{Profile: &scw.Profile{}}
	path := ConfigPath(getenv)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if profileName != "" {
			return nil, fmt.Errorf("scaleway profile %q: config file %s does not exist", profileName, path)
		}
	case err != nil:
		return nil, fmt.Errorf("read scaleway config: %w", err)
	default:
		var cfg scw.Config
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("scaleway config %s is invalid: %w", path, err)
		}
		name := profileName
		if name == "" {
			name = getenv("SCW_PROFILE")
		}
		if name == "" && cfg.ActiveProfile != nil {
			name = *cfg.ActiveProfile
		}
		p := &cfg.Profile
		if name != "" && name != scw.DefaultProfileName {
			named, ok := cfg.Profiles[name]
			if !ok {
				return nil, fmt.Errorf("scaleway profile %q is not in %s", name, path)
			}
			p = scw.MergeProfiles(&cfg.Profile, named)
		}
		c.Profile = p
		if p.SecretKey != nil {
			label := "profile " + name
			if name == "" {
				label = "default profile"
			}
			c.Sources = append(c.Sources, fmt.Sprintf("%s in %s", label, path))
		}
	}
	env := envProfile(getenv)
	if env.SecretKey != nil {
		c.Sources = append(c.Sources, "environment (SCW_SECRET_KEY)")
	}
	c.Profile = scw.MergeProfiles(c.Profile, env)
	return c, nil
}

// envProfile reads the SCW_* variables the SDK reads.
func envProfile(getenv func(string) string) *scw.Profile {
	p := &scw.Profile{}
	set := func(dst **string, names ...string) {
		for _, n := range names {
			if v := getenv(n); v != "" {
				*dst = &v
				return
			}
		}
	}
	set(&p.AccessKey, "SCW_ACCESS_KEY", "SCALEWAY_ACCESS_KEY")
	set(&p.SecretKey, "SCW_SECRET_KEY", "SCW_TOKEN", "SCALEWAY_TOKEN")
	set(&p.APIURL, "SCW_API_URL")
	set(&p.DefaultOrganizationID, "SCW_DEFAULT_ORGANIZATION_ID", "SCW_ORGANIZATION", "SCALEWAY_ORGANIZATION")
	set(&p.DefaultProjectID, "SCW_DEFAULT_PROJECT_ID")
	set(&p.DefaultRegion, "SCW_DEFAULT_REGION", "SCW_REGION", "SCALEWAY_REGION")
	set(&p.DefaultZone, "SCW_DEFAULT_ZONE")
	if v := getenv("SCW_INSECURE"); v == "true" || v == "1" {
		t := true
		p.Insecure = &t
	}
	return p
}

// Check says what is missing for API calls, without any value.
func (c *Credentials) Check() error {
	p := c.Profile
	switch {
	case p.SecretKey == nil || *p.SecretKey == "":
		return errors.New("no Scaleway secret key: set SCW_SECRET_KEY or secret_key in the scw config file")
	case p.AccessKey == nil || *p.AccessKey == "":
		return errors.New("no Scaleway access key: set SCW_ACCESS_KEY or access_key in the scw config file")
	}
	return nil
}
