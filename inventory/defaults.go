package inventory

import (
	"maps"
	"net"
	"path"
	"path/filepath"
	"slices"
	"strings"
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
	// DefaultRenewSchedule is twice a day, at times the random delay
	// spreads further.
	DefaultRenewSchedule = "*-*-* 04,16:00:00"
	// LetsEncryptCAA is Let's Encrypt's issuer domain name for CAA.
	LetsEncryptCAA = "letsencrypt.org"
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
		if a.CAAIdentity == "" && a.IsLetsEncrypt() {
			a.CAAIdentity = LetsEncryptCAA
		}
		if a.RenewSchedule == "" {
			a.RenewSchedule = DefaultRenewSchedule
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
			if s.App != nil {
				appDefaults(s)
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
		migrateDefaults(inv, m)
	}
}

func migrateDefaults(inv *Inventory, m *Migrate) {
	if m.Engine == "" {
		m.Engine = "builtin"
	}
	if m.Source == "" {
		m.Source = "mongodump"
	}
	if m.Target == "" {
		m.Target = "driver"
	}
	if m.From.Mongodump == "" {
		m.From.Mongodump = "mongodump"
	}
	if m.TargetMongoURI == "" {
		m.TargetMongoURI = "mongodb://127.0.0.1:27017"
	}
	if m.StateDir == "" {
		m.StateDir = "/var/lib/lghsctl/migrate"
	}
	if m.CutoverTTL == 0 {
		m.CutoverTTL = 60
	}
	for i := range m.Ladder {
		r := &m.Ladder[i]
		if r.Backup == nil {
			r.Backup = boolPtr(true)
		}
		if r.Timeout == 0 {
			r.Timeout = Duration(15 * time.Minute)
		}
	}
	// The site: the target's only site with an app, when not named.
	var site *Site
	for i := range inv.Hosts {
		if inv.Hosts[i].Name != m.To {
			continue
		}
		var withApp []*Site
		for j := range inv.Hosts[i].Sites {
			s := &inv.Hosts[i].Sites[j]
			if s.Name == strings.ToLower(m.Site) {
				site = s
			}
			if s.App != nil {
				withApp = append(withApp, s)
			}
		}
		if m.Site == "" && len(withApp) == 1 {
			site = withApp[0]
			m.Site = site.Name
		}
	}
	if site == nil || site.App == nil {
		return
	}
	if m.DatabaseService == "" {
		for _, svc := range site.App.Services {
			if svc.Role == "database" {
				m.DatabaseService = svc.Name
				break
			}
		}
	}
	if m.UploadsTo == "" && m.From.UploadsDir != "" {
		m.UploadsTo = path.Join(site.App.Dir, "data", "uploads")
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

// Preset services of the rocketchat app preset (the LgHS runbook's
// compose file, minus the one-shot replica-set container: lghsctl
// initiates the replica set itself, once).
const (
	presetMongoImage = "mongo:4.2.22"
	rocketChatPort   = "3000"
)

func appDefaults(s *Site) {
	a := s.App
	if a.Project == "" {
		a.Project = strings.NewReplacer(".", "", "-", "", "_", "").Replace(strings.ToLower(filepath.Base(a.Dir)))
	}
	if a.Preset == "" {
		a.Preset = "none"
	}
	for i := range a.Services {
		a.Services[i].origin = i
	}
	if a.Preset == "rocketchat" {
		if a.ReplicaSet == "" {
			a.ReplicaSet = "rs0"
		}
		_, upPort, _ := net.SplitHostPort(s.Upstream)
		upHost := strings.TrimSuffix(s.Upstream, ":"+upPort)
		preset := []Service{
			{
				Name: "mongo", Image: presetMongoImage, Role: "database", origin: -1,
				Command: []string{"mongod", "--oplogSize", "128", "--replSet", a.ReplicaSet, "--bind_ip_all"},
				Volumes: []string{"data/db:/data/db", "backups:/backups"},
				// Loopback only: lghsctl migrate reaches it through SSH.
				Ports:       []string{"127.0.0.1:27017:27017"},
				Healthcheck: []string{"mongo", "--quiet", "--eval", "quit(db.adminCommand('ping').ok ? 0 : 1)"},
			},
			{
				Name: "rocketchat", Role: "app", origin: -1,
				Environment: map[string]string{
					"PORT":            rocketChatPort,
					"ROOT_URL":        "https://" + s.Name,
					"MONGO_URL":       "mongodb://mongo:27017/rocketchat?replicaSet=" + a.ReplicaSet,
					"MONGO_OPLOG_URL": "mongodb://mongo:27017/local?replicaSet=" + a.ReplicaSet,
				},
				Volumes: []string{"data/uploads:/app/uploads"},
				Ports:   []string{upHost + ":" + upPort + ":" + rocketChatPort},
			},
		}
		a.Services = mergeServices(preset, a.Services)
	}
	for i := range a.Services {
		svc := &a.Services[i]
		if svc.Role == "" {
			svc.Role = "other"
		}
		if svc.State == "" {
			svc.State = "running"
		}
	}
}

// mergeServices applies the inventory's entries to the preset's: fields
// given replace the preset's, environment variables are merged.
func mergeServices(preset, given []Service) []Service {
	out := append([]Service(nil), preset...)
	for _, g := range given {
		i := slices.IndexFunc(out, func(p Service) bool { return p.Name == g.Name })
		if i < 0 {
			out = append(out, g)
			continue
		}
		p := &out[i]
		p.origin = g.origin
		if g.Image != "" {
			p.Image = g.Image
		}
		if g.Role != "" {
			p.Role = g.Role
		}
		if g.State != "" {
			p.State = g.State
		}
		if g.Command != nil {
			p.Command = g.Command
		}
		if g.Volumes != nil {
			p.Volumes = g.Volumes
		}
		if g.Ports != nil {
			p.Ports = g.Ports
		}
		if g.Healthcheck != nil {
			p.Healthcheck = g.Healthcheck
		}
		if g.SecretEnvironment != nil {
			p.SecretEnvironment = g.SecretEnvironment
		}
		if len(g.Environment) > 0 {
			env := maps.Clone(p.Environment)
			if env == nil {
				env = map[string]string{}
			}
			maps.Copy(env, g.Environment)
			p.Environment = env
		}
	}
	return out
}
