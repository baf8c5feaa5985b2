package inventory

import (
	"path/filepath"
	"time"
)

// Defaults applied to fields left empty. They are documented on the fields.
const (
	DefaultZone      = "fr-par-1"
	DefaultImage     = "debian_trixie"
	DefaultType      = "DEV1-M"
	DefaultTTL       = 300
	DefaultTokenEnv  = "CLOUDFLARE_API_TOKEN"
	DefaultDirectory = "letsencrypt"
	DefaultKeyType   = "ec256"
	DefaultRenew     = Duration(30 * 24 * time.Hour)
)

func boolPtr(b bool) *bool { return &b }

func (f *File) applyDefaults() {
	inv := f.Inventory
	if inv.Scaleway.Zone == "" {
		inv.Scaleway.Zone = DefaultZone
	}
	if inv.DNS.Provider == "" {
		inv.DNS.Provider = "cloudflare"
	}
	if inv.DNS.Token.IsZero() {
		inv.DNS.Token = SecretRef{Env: DefaultTokenEnv}
	}
	if inv.DNS.TTL == 0 {
		inv.DNS.TTL = DefaultTTL
	}
	for i := range inv.DNS.Zones {
		z := &inv.DNS.Zones[i]
		if z.ACMEToken.IsZero() {
			z.ACMEToken = inv.DNS.Token
		}
		z.ACMEToken.File = f.abs(z.ACMEToken.File)
	}
	inv.DNS.Token.File = f.abs(inv.DNS.Token.File)
	if a := inv.ACME; a != nil {
		if a.Directory == "" {
			a.Directory = DefaultDirectory
		}
		if a.KeyType == "" {
			a.KeyType = DefaultKeyType
		}
		if a.RenewBefore == 0 {
			a.RenewBefore = DefaultRenew
		}
		if a.CAA == nil {
			a.CAA = boolPtr(a.IsLetsEncrypt())
		}
		a.CABundle = f.abs(a.CABundle)
	}
	for i := range inv.SSHKeys {
		inv.SSHKeys[i].PublicKeyFile = f.abs(inv.SSHKeys[i].PublicKeyFile)
	}
	for i := range inv.Admins {
		if inv.Admins[i].Sudo == nil {
			inv.Admins[i].Sudo = boolPtr(true)
		}
	}
	for i := range inv.SecurityGroups {
		sg := &inv.SecurityGroups[i]
		if sg.InboundDefault == "" {
			sg.InboundDefault = "drop"
		}
		if sg.OutboundDefault == "" {
			sg.OutboundDefault = "accept"
		}
		if sg.Stateful == nil {
			sg.Stateful = boolPtr(true)
		}
		for j := range sg.Rules {
			r := &sg.Rules[j]
			if r.Direction == "" {
				r.Direction = "inbound"
			}
			if r.Action == "" {
				r.Action = "accept"
			}
			if len(r.IPRanges) == 0 {
				r.IPRanges = []string{"0.0.0.0/0", "::/0"}
			}
		}
	}
	for i := range inv.Hosts {
		h := &inv.Hosts[i]
		if h.Provider == "" {
			h.Provider = "scaleway"
		}
		if h.Zone == "" {
			h.Zone = inv.Scaleway.Zone
		}
		if h.Type == "" {
			h.Type = DefaultType
		}
		if h.Image == "" {
			h.Image = DefaultImage
		}
		if h.RootVolume.Name == "" {
			h.RootVolume.Name = h.Name
		}
		if h.IPv4 == nil {
			h.IPv4 = boolPtr(true)
		}
		if h.IPv6 == nil {
			h.IPv6 = boolPtr(true)
		}
		for j := range h.DNS {
			if h.DNS[j].TTL == 0 {
				h.DNS[j].TTL = inv.DNS.TTL
			}
			if h.DNS[j].Role == "" {
				h.DNS[j].Role = "public"
			}
		}
		f.sshDefaults(&h.SSH)
		if h.RootLogin == "" {
			h.RootLogin = "prohibit-password"
		}
		if h.UnattendedUpgrades == nil {
			h.UnattendedUpgrades = boolPtr(true)
		}
		if d := h.Docker; d != nil {
			if d.Source == "" {
				d.Source = "docker"
			}
			if d.LogMaxSize == "" {
				d.LogMaxSize = "10m"
			}
			if d.LogMaxFiles == 0 {
				d.LogMaxFiles = 3
			}
		}
		for j := range h.Directories {
			d := &h.Directories[j]
			if d.Owner == "" {
				d.Owner = "root"
			}
			if d.Group == "" {
				d.Group = "root"
			}
			if d.Mode == 0 {
				d.Mode = 0o755
			}
		}
		for j := range h.Sites {
			s := &h.Sites[j]
			if s.Websockets == nil {
				s.Websockets = boolPtr(true)
			}
			if s.HSTS == nil {
				s.HSTS = boolPtr(true)
			}
			if s.ClientMaxBodySize == "" {
				s.ClientMaxBodySize = "1M"
			}
			if s.TLS == "" {
				s.TLS = "acme"
			}
		}
	}
	if m := inv.Migrate; m != nil {
		f.sshDefaults(&m.From.SSH)
		if m.From.MongoURI == "" {
			m.From.MongoURI = "mongodb://127.0.0.1:27017"
		}
		if len(m.From.Databases) == 0 {
			m.From.Databases = []string{"rocketchat"}
		}
	}
}

func (f *File) sshDefaults(s *SSH) {
	// User and port stay empty when an ssh_config alias is named, so that
	// its User/Port apply; the transport defaults them afterwards.
	if s.ConfigHost == "" {
		if s.User == "" {
			s.User = "root"
		}
		if s.Port == 0 {
			s.Port = 22
		}
	}
	if s.KnownHosts == "" {
		s.KnownHosts = "known_hosts"
	}
	s.KnownHosts = f.abs(s.KnownHosts)
	s.IdentityFile = f.abs(s.IdentityFile)
}

// abs makes a path relative to the inventory's directory absolute; "~/"
// stays as it is for the SSH layer to expand.
func (f *File) abs(p string) string {
	if p == "" || p[0] == '/' || p[0] == '~' {
		return p
	}
	return filepath.Join(f.Dir, p)
}

// IsLetsEncrypt reports whether the directory is one of Let's Encrypt's.
func (a *ACME) IsLetsEncrypt() bool {
	switch a.Directory {
	case "letsencrypt", "letsencrypt-staging",
		"https://acme-v02.api.letsencrypt.org/directory",
		"https://acme-staging-v02.api.letsencrypt.org/directory":
		return true
	}
	return false
}

// DirectoryURL is the ACME directory URL the directory setting names.
func (a *ACME) DirectoryURL() string {
	switch a.Directory {
	case "letsencrypt":
		return "https://acme-v02.api.letsencrypt.org/directory"
	case "letsencrypt-staging":
		return "https://acme-staging-v02.api.letsencrypt.org/directory"
	}
	return a.Directory
}
