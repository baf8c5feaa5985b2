package inventory

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Zones are the Scaleway availability zones Instances exist in.
var Zones = []string{
	"fr-par-1", "fr-par-2", "fr-par-3",
	"nl-ams-1", "nl-ams-2", "nl-ams-3",
	"pl-waw-1", "pl-waw-2", "pl-waw-3",
	"it-mil-1",
}

// CommercialTypes are the Instance types lghsctl knows. A type not listed
// but well formed is accepted here and checked against the API at plan
// time; one a typo away from a listed type is an error.
var CommercialTypes = []string{
	"DEV1-S", "DEV1-M", "DEV1-L", "DEV1-XL",
	"GP1-XS", "GP1-S", "GP1-M", "GP1-L", "GP1-XL",
	"PLAY2-PICO", "PLAY2-NANO", "PLAY2-MICRO",
	"PRO2-XXS", "PRO2-XS", "PRO2-S", "PRO2-M", "PRO2-L",
	"POP2-2C-8G", "POP2-4C-16G", "POP2-8C-32G", "POP2-16C-64G",
	"STARDUST1-S", "ENT1-XXS", "ENT1-XS", "ENT1-S", "ENT1-M", "ENT1-L",
}

// ImageLabels are marketplace labels lghsctl is tested with (Debian) plus
// common others; like commercial types, a near miss is an error.
var ImageLabels = []string{
	"debian_trixie", "debian_bookworm", "debian_bullseye",
	"ubuntu_noble", "ubuntu_jammy", "ubuntu_focal",
	"rockylinux_9", "almalinux_9", "centos_stream_9", "fedora_41",
}

var (
	reName        = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	reUser        = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	reUUID        = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	reCommercial  = regexp.MustCompile(`^[A-Z0-9]+(-[A-Z0-9]+)+$`)
	reLabel       = regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)
	reDNSLabel    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	rePackage     = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$`)
	reNginxSize   = regexp.MustCompile(`^[0-9]+[kKmMgG]?$`)
	reDockerSize  = regexp.MustCompile(`^[0-9]+[kmg]$`)
	reEnv         = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	reVolumeName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	reSecGroup    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._ -]{0,62}$`)
	reSSHKeyName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)
	reTag         = regexp.MustCompile(`^[^,\s][^,]{0,127}$`)
	reMongoDBName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,63}$`)
)

type validator struct {
	f        *File
	problems *Problems
}

func (v *validator) errorf(path, format string, args ...any) {
	for p := path; p != ""; {
		if v.f.failed[p] {
			return // already reported as undecodable
		}
		trimmed := indexSuffix.ReplaceAllString(p, "")
		if trimmed == p {
			break
		}
		p = trimmed
	}
	v.problems.add(v.f.Problemf(path, format, args...))
}

// set reports whether a field was written in the file (rather than
// defaulted from elsewhere, where it was already checked).
func (v *validator) set(path string) bool {
	_, ok := v.f.pos[path]
	return ok
}

// oneOf checks an enum field and suggests the nearest value on a typo.
func (v *validator) oneOf(path, val string, allowed ...string) bool {
	for _, a := range allowed {
		if val == a {
			return true
		}
	}
	msg := fmt.Sprintf("%q is not one of %s", val, strings.Join(allowed, ", "))
	if hint := closest(val, allowed); hint != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", hint)
	}
	v.errorf(path, "%s", msg)
	return false
}

func (v *validator) validate() {
	inv := v.f.Inventory
	if inv.Version != 1 {
		if _, set := v.f.pos["version"]; !set {
			v.errorf("version", "missing: write \"version: 1\" at the top")
		} else {
			v.errorf("version", "unsupported version %d (this lghsctl reads version 1)", inv.Version)
		}
	}
	switch {
	case inv.Name == "":
		v.errorf("name", "missing: give the inventory a name (it tags what lghsctl creates)")
	case !reName.MatchString(inv.Name):
		v.errorf("name", "%q must be lower-case letters, digits and dashes", inv.Name)
	}
	v.scaleway()
	zones := v.dns()
	v.acme()
	keys := v.sshKeys()
	v.admins(keys)
	groups := v.securityGroups()
	v.hosts(zones, groups)
	v.migrate()
}

func (v *validator) scaleway() {
	s := v.f.Scaleway
	v.zone("scaleway.zone", s.Zone)
	if s.ProjectID != "" && !reUUID.MatchString(s.ProjectID) {
		v.errorf("scaleway.project_id", "%q is not a project ID (a UUID like 11111111-2222-4333-8444-555555555555)", s.ProjectID)
	}
	if s.Project != "" && len(s.Project) > 64 {
		v.errorf("scaleway.project", "project names are at most 64 characters")
	}
}

func (v *validator) zone(path, z string) {
	v.oneOf(path, z, Zones...)
}

// dns validates dns: and returns the declared zone apexes.
func (v *validator) dns() []string {
	d := v.f.DNS
	v.oneOf("dns.provider", d.Provider, "cloudflare")
	v.secret("dns.token", d.Token)
	v.ttl("dns.ttl", d.TTL)
	var zones []string
	seen := map[string]int{}
	for i, z := range d.Zones {
		p := fmt.Sprintf("dns.zones[%d]", i)
		name := strings.TrimSuffix(strings.ToLower(z.Name), ".")
		if z.Name == "" {
			v.errorf(p+".name", "missing zone name")
			continue
		}
		if err := checkDNSName(name, false); err != nil {
			v.errorf(p+".name", "%v", err)
			continue
		}
		if !strings.Contains(name, ".") {
			v.errorf(p+".name", "%q is a top-level domain, not a zone you can manage", z.Name)
		}
		if j, dup := seen[name]; dup {
			v.errorf(p+".name", "zone %q is already declared at dns.zones[%d]", name, j)
			continue
		}
		seen[name] = i
		v.secret(p+".acme_token", z.ACMEToken)
		zones = append(zones, name)
	}
	return zones
}

func (v *validator) ttl(path string, ttl int) {
	if ttl != 1 && (ttl < 60 || ttl > 86400) {
		v.errorf(path, "TTL %d must be between 60 and 86400 seconds, or 1 for automatic", ttl)
	}
}

func (v *validator) secret(path string, r SecretRef) {
	switch {
	case r.Env != "" && r.File != "":
		v.errorf(path, "give either env or file, not both")
	case r.Env != "" && !reEnv.MatchString(r.Env):
		v.errorf(path+".env", "%q is not an environment variable name", r.Env)
	case r.File != "" && strings.ContainsAny(r.File, "\n"):
		v.errorf(path+".file", "invalid file name")
	}
}

func (v *validator) acme() {
	a := v.f.ACME
	if a == nil {
		return
	}
	if a.Email == "" {
		v.errorf("acme.email", "missing: the CA needs a contact e-mail")
	} else if addr, err := mail.ParseAddress(a.Email); err != nil || addr.Address != a.Email || !strings.Contains(strings.SplitN(a.Email, "@", 2)[1], ".") {
		v.errorf("acme.email", "%q is not an e-mail address", a.Email)
	}
	switch a.Directory {
	case "letsencrypt", "letsencrypt-staging":
	default:
		u, err := url.Parse(a.Directory)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			v.errorf("acme.directory", "%q must be letsencrypt, letsencrypt-staging or an https:// directory URL", a.Directory)
		}
	}
	v.oneOf("acme.key_type", a.KeyType, "ec256", "ec384", "rsa2048", "rsa4096")
	switch {
	case a.CAAIdentity != "" && checkDNSName(strings.ToLower(a.CAAIdentity), false) != nil:
		v.errorf("acme.caa_identity", "%q is not a domain name (the CA's issuer domain, like letsencrypt.org)", a.CAAIdentity)
	case a.CAA != nil && *a.CAA && a.CAAIdentity == "":
		v.errorf("acme.caa_identity", "missing: caa is on for a directory that is not Let's Encrypt; give the CA's issuer domain name for CAA records")
	}
	if s := a.RenewSchedule; strings.ContainsAny(s, "\n\r\\\"';`$") || strings.TrimSpace(s) == "" {
		v.errorf("acme.renew_schedule", "%q is not a systemd calendar expression (like \"daily\" or \"*-*-* 04,16:00:00\")", s)
	}
	if a.CABundle != "" {
		v.existingFile("acme.ca_bundle", a.CABundle)
	}
	for i, r := range a.Resolvers {
		if _, err := netip.ParseAddrPort(r); err != nil {
			if host, port, err := net.SplitHostPort(r); err != nil || host == "" || port == "" {
				v.errorf(fmt.Sprintf("acme.resolvers[%d]", i), "%q must be host:port, like 192.0.2.53:53", r)
			}
		}
	}
}

// existingFile checks a file the inventory names, if it is there: a file
// that does not exist yet is not a problem of the inventory (it may be
// made later, or live on another machine); `lghsctl validate` lists it
// among the missing inputs, and the command that needs it says so.
func (v *validator) existingFile(path, file string) {
	if strings.HasPrefix(file, "~") {
		return // expanded with the user's home when used
	}
	if st, err := os.Stat(file); err == nil && st.IsDir() {
		v.errorf(path, "%s is a directory, not a file", file)
	}
}

// sshKeys validates ssh_keys and returns their names.
func (v *validator) sshKeys() map[string]bool {
	names := map[string]bool{}
	material := map[string]string{}
	for i, k := range v.f.SSHKeys {
		p := fmt.Sprintf("ssh_keys[%d]", i)
		switch {
		case k.Name == "":
			v.errorf(p+".name", "missing key name")
		case !reSSHKeyName.MatchString(k.Name):
			v.errorf(p+".name", "%q: use letters, digits, dots, dashes, underscores and @", k.Name)
		case names[k.Name]:
			v.errorf(p+".name", "duplicate key name %q", k.Name)
		}
		names[k.Name] = true
		text := k.PublicKey
		field := p + ".public_key"
		switch {
		case k.PublicKey != "" && k.PublicKeyFile != "":
			v.errorf(p, "give either public_key or public_key_file, not both")
			continue
		case k.PublicKey == "" && k.PublicKeyFile == "":
			v.errorf(p, "missing public_key (or public_key_file)")
			continue
		case k.PublicKeyFile != "":
			field = p + ".public_key_file"
			if strings.HasPrefix(k.PublicKeyFile, "~") {
				continue
			}
			b, err := os.ReadFile(k.PublicKeyFile)
			if err != nil {
				continue // not there yet: a missing input, not a problem of the file
			}
			text = string(b)
		}
		pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(text))
		if err != nil {
			msg := "not an SSH public key in authorized_keys format"
			if strings.Contains(text, "PRIVATE KEY") {
				msg = "this is a PRIVATE key: never put it in the inventory; give the .pub file"
			}
			v.errorf(field, "%s", msg)
			continue
		}
		if strings.TrimSpace(string(rest)) != "" {
			v.errorf(field, "holds more than one key; declare one entry per key")
		}
		fp := ssh.FingerprintSHA256(pub)
		if other, dup := material[fp]; dup {
			v.errorf(field, "same key as %s", other)
		}
		material[fp] = k.Name
	}
	return names
}

func (v *validator) admins(keys map[string]bool) {
	seen := map[string]bool{}
	for i, a := range v.f.Admins {
		p := fmt.Sprintf("admins[%d]", i)
		switch {
		case a.Name == "":
			v.errorf(p+".name", "missing login name")
		case !reUser.MatchString(a.Name):
			v.errorf(p+".name", "%q is not a valid login name (lower case, digits, - and _)", a.Name)
		case a.Name == "root":
			v.errorf(p+".name", "root is not an admin account; see hosts[].root_login")
		case seen[a.Name]:
			v.errorf(p+".name", "duplicate admin %q", a.Name)
		}
		seen[a.Name] = true
		if len(a.SSHKeys) == 0 {
			v.errorf(p+".ssh_keys", "an admin needs at least one key to log in")
		}
		for j, k := range a.SSHKeys {
			if !keys[k] {
				v.unknownRef(fmt.Sprintf("%s.ssh_keys[%d]", p, j), "SSH key", k, keysOf(keys))
			}
		}
	}
}

func (v *validator) unknownRef(path, what, name string, known []string) {
	msg := fmt.Sprintf("no %s named %q is declared", what, name)
	if hint := closest(name, known); hint != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", hint)
	}
	v.errorf(path, "%s", msg)
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (v *validator) securityGroups() map[string]bool {
	names := map[string]bool{}
	for i, sg := range v.f.SecurityGroups {
		p := fmt.Sprintf("security_groups[%d]", i)
		switch {
		case sg.Name == "":
			v.errorf(p+".name", "missing name")
		case !reSecGroup.MatchString(sg.Name):
			v.errorf(p+".name", "%q: use letters, digits, spaces, dots, dashes and underscores", sg.Name)
		case names[sg.Name]:
			v.errorf(p+".name", "duplicate security group %q", sg.Name)
		}
		names[sg.Name] = true
		v.oneOf(p+".inbound_default", sg.InboundDefault, "accept", "drop")
		v.oneOf(p+".outbound_default", sg.OutboundDefault, "accept", "drop")
		for j, r := range sg.Rules {
			rp := fmt.Sprintf("%s.rules[%d]", p, j)
			v.oneOf(rp+".direction", r.Direction, "inbound", "outbound")
			v.oneOf(rp+".action", r.Action, "accept", "drop")
			if r.Protocol == "" {
				v.errorf(rp+".protocol", "missing protocol (TCP, UDP, ICMP or ANY)")
			} else if v.oneOf(rp+".protocol", r.Protocol, "TCP", "UDP", "ICMP", "ANY") {
				if !r.Ports.IsZero() && (r.Protocol == "ICMP" || r.Protocol == "ANY") {
					v.errorf(rp+".ports", "%s rules have no ports", r.Protocol)
				}
			}
			for k, cidr := range r.IPRanges {
				if _, err := netip.ParsePrefix(cidr); err != nil {
					if _, err2 := netip.ParseAddr(cidr); err2 != nil {
						v.errorf(fmt.Sprintf("%s.ip_ranges[%d]", rp, k), "%q is not a CIDR range like 192.0.2.0/24 or 2001:db8::/32", cidr)
					}
				}
			}
		}
	}
	return names
}

func (v *validator) hosts(zones []string, groups map[string]bool) {
	hostNames := map[string]bool{}
	dnsNames := map[string]string{}
	for i := range v.f.Hosts {
		h := &v.f.Hosts[i]
		p := fmt.Sprintf("hosts[%d]", i)
		switch {
		case h.Name == "":
			v.errorf(p+".name", "missing host name")
		case !reName.MatchString(h.Name):
			v.errorf(p+".name", "%q must be lower-case letters, digits and dashes (it becomes the hostname)", h.Name)
		case hostNames[h.Name]:
			v.errorf(p+".name", "duplicate host %q", h.Name)
		}
		hostNames[h.Name] = true
		if v.oneOf(p+".provider", h.Provider, "scaleway", "none") && h.Provider == "scaleway" {
			if v.set(p + ".zone") {
				v.zone(p+".zone", h.Zone)
			}
			v.nearMiss(p+".type", "commercial type", h.Type, CommercialTypes, reCommercial, "upper case, like DEV1-M")
			v.nearMiss(p+".image", "image label", h.Image, ImageLabels, reLabel, "like debian_trixie")
			if !reVolumeName.MatchString(h.RootVolume.Name) {
				v.errorf(p+".root_volume.name", "%q: use letters, digits, dots, dashes and underscores", h.RootVolume.Name)
			}
			if h.RootVolume.Size != 0 && h.RootVolume.Size < 1e9 {
				v.errorf(p+".root_volume.size", "volumes are at least 1GB")
			}
			if !*h.IPv4 && !*h.IPv6 {
				v.errorf(p+".ipv4", "a host needs at least one of ipv4 and ipv6")
			}
			if h.SecurityGroup == "" {
				v.errorf(p+".security_group", "missing: without one Scaleway applies the project's default group, which accepts everything inbound")
			} else if !groups[h.SecurityGroup] {
				v.unknownRef(p+".security_group", "security group", h.SecurityGroup, keysOf(groups))
			}
			for j, t := range h.Tags {
				if !reTag.MatchString(t) || strings.HasPrefix(t, "lghsctl") {
					v.errorf(fmt.Sprintf("%s.tags[%d]", p, j), "%q: tags have no commas and must not start with lghsctl (reserved for ownership)", t)
				}
			}
		} else if h.Provider == "none" && h.SSH.Address == "" && h.SSH.ConfigHost == "" {
			v.errorf(p+".ssh.address", "a host with provider none needs ssh.address or ssh.config_host")
		}
		for j, d := range h.DNS {
			dp := fmt.Sprintf("%s.dns[%d]", p, j)
			name := strings.TrimSuffix(strings.ToLower(d.Name), ".")
			if !v.nameInZones(dp+".name", name, zones) {
				continue
			}
			if other, dup := dnsNames[name]; dup {
				v.errorf(dp+".name", "%s is already a name of %s", name, other)
			}
			dnsNames[name] = h.Name
			h.DNS[j].Name = name
			if v.set(dp + ".ttl") {
				v.ttl(dp+".ttl", d.TTL)
			}
			v.oneOf(dp+".role", d.Role, "technical", "public")
		}
		v.ssh(p+".ssh", h.SSH)
		v.oneOf(p+".root_login", h.RootLogin, "prohibit-password", "no")
		if h.RootLogin == "no" && len(v.f.Admins) == 0 {
			v.errorf(p+".root_login", "root_login: no needs at least one admin with a key, or nobody can log in")
		} else if h.RootLogin == "no" && h.SSH.User == "root" {
			v.errorf(p+".root_login", "root_login: no while lghsctl logs in as root (ssh.user) would lock lghsctl out: set ssh.user to an admin")
		}
		seenPkg := map[string]bool{}
		for j, pkg := range h.Packages {
			pp := fmt.Sprintf("%s.packages[%d]", p, j)
			if !rePackage.MatchString(pkg) {
				v.errorf(pp, "%q is not a Debian package name", pkg)
			} else if seenPkg[pkg] {
				v.errorf(pp, "package %q is listed twice", pkg)
			}
			seenPkg[pkg] = true
		}
		if d := h.Docker; d != nil {
			v.oneOf(p+".docker.source", d.Source, "docker", "debian")
			if !reDockerSize.MatchString(d.LogMaxSize) {
				v.errorf(p+".docker.log_max_size", "%q must be a size like 10m (k, m or g)", d.LogMaxSize)
			}
			if d.LogMaxFiles < 1 || d.LogMaxFiles > 100 {
				v.errorf(p+".docker.log_max_files", "must be between 1 and 100")
			}
		}
		seenDir := map[string]bool{}
		for j, d := range h.Directories {
			dp := fmt.Sprintf("%s.directories[%d]", p, j)
			if err := checkAbsPath(d.Path); err != nil {
				v.errorf(dp+".path", "%v", err)
			} else if seenDir[path.Clean(d.Path)] {
				v.errorf(dp+".path", "directory %s is listed twice", d.Path)
			}
			seenDir[path.Clean(d.Path)] = true
			if !reUser.MatchString(d.Owner) {
				v.errorf(dp+".owner", "%q is not a user name", d.Owner)
			}
			if !reUser.MatchString(d.Group) {
				v.errorf(dp+".group", "%q is not a group name", d.Group)
			}
		}
		v.sites(p, h, zones)
	}
}

func (v *validator) nearMiss(path, what, val string, known []string, format *regexp.Regexp, example string) {
	for _, k := range known {
		if val == k {
			return
		}
	}
	hint := closest(val, known)
	switch {
	case !format.MatchString(val):
		msg := fmt.Sprintf("%q is not a %s (%s)", val, what, example)
		if hint != "" {
			msg += fmt.Sprintf("; did you mean %q?", hint)
		}
		v.errorf(path, "%s", msg)
	case hint != "":
		v.errorf(path, "unknown %s %q (did you mean %q?)", what, val, hint)
	}
}

func (v *validator) nameInZones(path, name string, zones []string) bool {
	if name == "" {
		v.errorf(path, "missing name")
		return false
	}
	if err := checkDNSName(name, false); err != nil {
		v.errorf(path, "%v", err)
		return false
	}
	if zoneOf(name, zones) == "" {
		if len(zones) == 0 {
			v.errorf(path, "%s is in no declared zone (dns.zones is empty)", name)
		} else {
			v.errorf(path, "%s is in none of the declared zones (%s)", name, strings.Join(zones, ", "))
		}
		return false
	}
	return true
}

// ZoneOf returns the declared zone that name sits in (the longest match),
// or "".
func (inv *Inventory) ZoneOf(name string) string {
	var zones []string
	for _, z := range inv.DNS.Zones {
		zones = append(zones, strings.TrimSuffix(strings.ToLower(z.Name), "."))
	}
	return zoneOf(strings.TrimSuffix(strings.ToLower(name), "."), zones)
}

func zoneOf(name string, zones []string) string {
	best := ""
	for _, z := range zones {
		if (name == z || strings.HasSuffix(name, "."+z)) && len(z) > len(best) {
			best = z
		}
	}
	return best
}

func checkDNSName(name string, wildcard bool) error {
	if len(name) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", name)
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if i == 0 && wildcard && l == "*" {
			continue
		}
		if !reDNSLabel.MatchString(l) {
			return fmt.Errorf("%q is not a valid DNS name (label %q)", name, l)
		}
	}
	return nil
}

func checkAbsPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("missing path")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q must be an absolute path", p)
	case path.Clean(p) != p && path.Clean(p)+"/" != p:
		return fmt.Errorf("%q is not a clean path (write %s)", p, path.Clean(p))
	case p == "/":
		return fmt.Errorf("refusing to manage /")
	case strings.ContainsAny(p, "\n\x00"):
		return fmt.Errorf("path contains a newline or NUL")
	}
	return nil
}

func (v *validator) ssh(p string, s SSH) {
	if s.Port != 0 && (s.Port < 1 || s.Port > 65535) {
		v.errorf(p+".port", "port %d out of range 1-65535", s.Port)
	}
	if s.User != "" && !reUser.MatchString(s.User) {
		v.errorf(p+".user", "%q is not a login name", s.User)
	}
	if s.Address != "" {
		if _, err := netip.ParseAddr(s.Address); err != nil {
			if checkDNSName(strings.ToLower(strings.TrimSuffix(s.Address, ".")), false) != nil && s.Address != "localhost" {
				v.errorf(p+".address", "%q is neither an IP address nor a host name", s.Address)
			}
		}
	}
	if s.IdentityFile != "" {
		v.existingFile(p+".identity_file", s.IdentityFile)
	}
	for i, j := range strings.Split(s.ProxyJump, ",") {
		if s.ProxyJump == "" {
			break
		}
		j = strings.TrimSpace(j)
		if _, hostport, _ := strings.Cut(j, "@"); j == "" || strings.ContainsAny(j, " \t") || (hostport == "" && strings.HasSuffix(j, "@")) {
			v.errorf(p+".proxy_jump", "jump %d (%q) must be [user@]host[:port]", i+1, j)
		}
	}
}

func (v *validator) sites(p string, h *Host, zones []string) {
	seen := map[string]bool{}
	for i := range h.Sites {
		s := &h.Sites[i]
		sp := fmt.Sprintf("%s.sites[%d]", p, i)
		s.Name = strings.TrimSuffix(strings.ToLower(s.Name), ".")
		if v.nameInZones(sp+".name", s.Name, zones) && seen[s.Name] {
			v.errorf(sp+".name", "site %s is declared twice", s.Name)
		}
		seen[s.Name] = true
		for j := range s.Aliases {
			s.Aliases[j] = strings.TrimSuffix(strings.ToLower(s.Aliases[j]), ".")
			ap := fmt.Sprintf("%s.aliases[%d]", sp, j)
			if v.nameInZones(ap, s.Aliases[j], zones) && seen[s.Aliases[j]] {
				v.errorf(ap, "%s is already served by another site of this host", s.Aliases[j])
			}
			seen[s.Aliases[j]] = true
		}
		if s.Upstream == "" {
			v.errorf(sp+".upstream", "missing: the application's address, like [::1]:3000")
		} else if host, port, err := net.SplitHostPort(s.Upstream); err != nil || host == "" {
			v.errorf(sp+".upstream", "%q must be host:port, like [::1]:3000 or 127.0.0.1:3000", s.Upstream)
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			v.errorf(sp+".upstream", "port %q out of range 1-65535", port)
		}
		if !reNginxSize.MatchString(s.ClientMaxBodySize) {
			v.errorf(sp+".client_max_body_size", "%q must be a size like 200M (k, m or g)", s.ClientMaxBodySize)
		}
		if v.oneOf(sp+".tls", s.TLS, "acme", "self-signed") && s.TLS == "acme" && v.f.ACME == nil {
			v.errorf(sp+".tls", "tls: acme needs an acme: section (e-mail and directory)")
		}
		if s.App != nil {
			v.app(sp+".app", s)
		}
	}
}

func (v *validator) migrate() {
	m := v.f.Migrate
	if m == nil {
		return
	}
	if m.From.Name != "" && !reName.MatchString(m.From.Name) {
		v.errorf("migrate.from.name", "%q must be lower-case letters, digits and dashes", m.From.Name)
	}
	if m.From.SSH.Address == "" && m.From.SSH.ConfigHost == "" {
		v.errorf("migrate.from.ssh.address", "missing: how to reach the old server (address or config_host)")
	}
	v.ssh("migrate.from.ssh", m.From.SSH)
	if u, err := url.Parse(m.From.MongoURI); err != nil || (u.Scheme != "mongodb") || u.Host == "" {
		v.errorf("migrate.from.mongo_uri", "%q must be a mongodb:// URI (without password: credentials are never in the inventory)", m.From.MongoURI)
	} else if _, hasPass := u.User.Password(); hasPass {
		v.errorf("migrate.from.mongo_uri", "the URI holds a password: secrets never go in the inventory")
	}
	for i, db := range m.From.Databases {
		if !reMongoDBName.MatchString(db) {
			v.errorf(fmt.Sprintf("migrate.from.databases[%d]", i), "%q is not a database name", db)
		}
	}
	if m.From.UploadsDir != "" {
		if err := checkAbsPath(m.From.UploadsDir); err != nil {
			v.errorf("migrate.from.uploads_dir", "%v", err)
		}
	}
	var target *Host
	for i := range v.f.Hosts {
		if v.f.Hosts[i].Name == m.To {
			target = &v.f.Hosts[i]
		}
	}
	if m.To == "" {
		v.errorf("migrate.to", "missing: the host the data moves to")
		return
	}
	if target == nil {
		var names []string
		for _, h := range v.f.Hosts {
			names = append(names, h.Name)
		}
		v.unknownRef("migrate.to", "host", m.To, names)
		return
	}
	var site *Site
	if m.Site != "" {
		var names []string
		for i := range target.Sites {
			names = append(names, target.Sites[i].Name)
			if target.Sites[i].Name == strings.ToLower(m.Site) {
				site = &target.Sites[i]
			}
		}
		if site == nil {
			v.unknownRef("migrate.site", "site on "+target.Name, m.Site, names)
		}
	}
	v.migrateMethods(m, site)
}

var (
	reFCV        = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)
	reOwner      = regexp.MustCompile(`^[a-z0-9_][a-z0-9_.-]*(:[a-z0-9_][a-z0-9_.-]*)?$`)
	reCollection = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,119}$`)
	reSettingID  = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// migrateMethods checks the engine, the read and write methods, the
// target side and the ladder.
func (v *validator) migrateMethods(m *Migrate, site *Site) {
	v.oneOf("migrate.engine", m.Engine, "builtin", "exec")
	switch {
	case m.Engine == "exec" && (m.Exec == nil || len(m.Exec.Command) == 0):
		v.errorf("migrate.exec.command", "missing: engine exec runs this command")
	case m.Engine != "exec" && m.Exec != nil:
		v.errorf("migrate.exec", "only used with engine: exec")
	}
	if m.Exec != nil {
		for name, ref := range m.Exec.Secrets {
			if ref.IsZero() {
				v.errorf("migrate.exec.secrets."+name, "missing: {env: NAME} or {file: PATH}")
			}
		}
	}
	v.oneOf("migrate.source", m.Source, "mongodump", "driver")
	v.oneOf("migrate.target", m.Target, "driver", "mongorestore")
	if u, err := url.Parse(m.TargetMongoURI); err != nil || u.Scheme != "mongodb" || u.Host == "" {
		v.errorf("migrate.target_mongo_uri", "%q must be a mongodb:// URI (without password: credentials are never in the inventory)", m.TargetMongoURI)
	} else if _, hasPass := u.User.Password(); hasPass {
		v.errorf("migrate.target_mongo_uri", "the URI holds a password: secrets never go in the inventory")
	}
	if err := checkAbsPath(m.StateDir); err != nil {
		v.errorf("migrate.state_dir", "%v", err)
	}
	if m.UploadsTo != "" {
		if err := checkAbsPath(m.UploadsTo); err != nil {
			v.errorf("migrate.uploads_to", "%v", err)
		}
	}
	if m.From.UploadsDir != "" && m.UploadsTo == "" && m.Engine == "builtin" {
		v.errorf("migrate.uploads_to", "missing: where the uploaded files go on %s (no site with an app to derive it from)", m.To)
	}
	if m.UploadsOwner != "" && !reOwner.MatchString(m.UploadsOwner) {
		v.errorf("migrate.uploads_owner", "%q must be user[:group] or uid[:gid]", m.UploadsOwner)
	}
	if strings.ContainsAny(m.From.Mongodump, "\n\x00") || m.From.Mongodump == "" {
		v.errorf("migrate.from.mongodump", "%q is not a command path", m.From.Mongodump)
	}
	if m.CutoverTTL < 30 || m.CutoverTTL > 86400 {
		v.errorf("migrate.cutover_ttl", "%d is out of range 30-86400 seconds", m.CutoverTTL)
	}
	if site != nil && site.App != nil && m.DatabaseService != "" {
		var names []string
		found := false
		for _, svc := range site.App.Services {
			names = append(names, svc.Name)
			found = found || svc.Name == m.DatabaseService
		}
		if !found {
			v.unknownRef("migrate.database_service", "service of "+site.Name, m.DatabaseService, names)
		}
	}
	if m.Target == "mongorestore" && m.DatabaseService == "" && m.Engine == "builtin" {
		v.errorf("migrate.database_service", "missing: target mongorestore runs in the database container (no site with an app to find it in)")
	}
	if len(m.Ladder) > 0 && (site == nil || site.App == nil) && m.Engine == "builtin" {
		v.errorf("migrate.ladder", "the ladder runs the app of migrate.site, which has no app")
	}
	for i, r := range m.Ladder {
		p := fmt.Sprintf("migrate.ladder[%d]", i)
		if r.App == "" {
			v.errorf(p+".app", "missing: the app image of this rung")
		} else if !reImage.MatchString(r.App) || !strings.Contains(r.App[strings.LastIndex(r.App, "/")+1:], ":") {
			v.errorf(p+".app", "%q must be an image with its tag (the version the app must report), like rocketchat/rocket.chat:3.18.2", r.App)
		}
		if r.Database != "" && !reImage.MatchString(r.Database) {
			v.errorf(p+".database", "%q is not an image reference", r.Database)
		}
		if r.FeatureCompatibility != "" && !reFCV.MatchString(r.FeatureCompatibility) {
			v.errorf(p+".feature_compatibility", "%q must be a version like \"4.4\"", r.FeatureCompatibility)
		}
		if r.Timeout < 0 {
			v.errorf(p+".timeout", "must be positive")
		}
		for j, st := range r.Before {
			v.ladderStep(fmt.Sprintf("%s.before[%d]", p, j), st, false)
		}
		for j, st := range r.After {
			v.ladderStep(fmt.Sprintf("%s.after[%d]", p, j), st, true)
		}
	}
}

func (v *validator) ladderStep(p string, st LadderStep, after bool) {
	n := 0
	if st.SetSetting != nil {
		n++
		if !reSettingID.MatchString(st.SetSetting.ID) {
			v.errorf(p+".set_setting.id", "%q is not a setting id", st.SetSetting.ID)
		}
	}
	if len(st.DropIndexes) > 0 {
		n++
		for k, c := range st.DropIndexes {
			if !reCollection.MatchString(c) {
				v.errorf(fmt.Sprintf("%s.drop_indexes[%d]", p, k), "%q is not a collection name", c)
			}
		}
	}
	if st.UnlockMigrations {
		n++
	}
	if st.ReplicaSetHost != "" {
		n++
		if _, port, err := net.SplitHostPort(st.ReplicaSetHost); err != nil || port == "" {
			v.errorf(p+".replica_set_host", "%q must be host:port, like mongo:27017", st.ReplicaSetHost)
		}
	}
	if st.WaitLog != "" || st.WaitVersion != "" {
		if st.WaitLog != "" {
			n++
		}
		if st.WaitVersion != "" {
			n++
		}
		if !after {
			v.errorf(p, "waits only make sense after the app started (put them in after)")
		}
	}
	if n != 1 {
		v.errorf(p, "a step does exactly one thing (set_setting, drop_indexes, unlock_migrations, replica_set_host, wait_log or wait_version); found %d", n)
	}
}

var (
	reProject = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	reService = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	// An image reference: an optional registry (host[:port]/), the
	// repository, an optional tag and digest.
	reImage      = regexp.MustCompile(`^([a-z0-9][a-z0-9.-]*(:[0-9]{1,5})?/)?[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$`)
	reReplicaSet = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

func (v *validator) app(p string, s *Site) {
	a := s.App
	if err := checkAbsPath(a.Dir); err != nil {
		v.errorf(p+".dir", "%v", err)
	}
	if !reProject.MatchString(a.Project) {
		v.errorf(p+".project", "%q: compose project names are lower-case letters, digits, - and _", a.Project)
	}
	v.oneOf(p+".preset", a.Preset, "rocketchat", "none")
	if a.ReplicaSet != "" && !reReplicaSet.MatchString(a.ReplicaSet) {
		v.errorf(p+".replica_set", "%q is not a replica set name", a.ReplicaSet)
	}
	if len(a.Services) == 0 {
		v.errorf(p+".services", "an app needs at least one service (or preset: rocketchat)")
	}
	seen := map[string]bool{}
	roles := map[string]string{}
	_, upPort, _ := net.SplitHostPort(s.Upstream)
	upHost := strings.Trim(strings.TrimSuffix(s.Upstream, ":"+upPort), "[]")
	upstreamPublished := false
	for _, svc := range a.Services {
		sp := p + ".preset"
		if svc.origin >= 0 {
			sp = fmt.Sprintf("%s.services[%d]", p, svc.origin)
		}
		switch {
		case !reService.MatchString(svc.Name):
			v.errorf(sp+".name", "%q: service names are lower-case letters, digits, ., - and _", svc.Name)
		case seen[svc.Name]:
			v.errorf(sp+".name", "duplicate service %q", svc.Name)
		}
		seen[svc.Name] = true
		switch {
		case svc.Image == "":
			v.errorf(sp+".image", "service %s: missing image (with its tag, e.g. rocketchat/rocket.chat:6.5.4)", svc.Name)
		case !reImage.MatchString(svc.Image):
			v.errorf(sp+".image", "%q is not an image reference like name:tag", svc.Image)
		case !strings.Contains(svc.Image[strings.LastIndex(svc.Image, "/")+1:], ":") && !strings.Contains(svc.Image, "@"):
			v.errorf(sp+".image", "%q has no tag: pin the version (name:tag), so upgrades are deliberate", svc.Image)
		}
		if v.oneOf(sp+".role", svc.Role, "database", "app", "other") && svc.Role != "other" {
			if other, dup := roles[svc.Role]; dup {
				v.errorf(sp+".role", "services %s and %s both have role %s; an app has at most one", other, svc.Name, svc.Role)
			}
			roles[svc.Role] = svc.Name
		}
		v.oneOf(sp+".state", svc.State, "running", "stopped")
		for k := range svc.Environment {
			if !reEnv.MatchString(k) {
				v.errorf(sp+".environment."+k, "%q is not an environment variable name", k)
			}
		}
		for k, ref := range svc.SecretEnvironment {
			if !reEnv.MatchString(k) {
				v.errorf(sp+".secret_environment."+k, "%q is not an environment variable name", k)
			}
			v.secret(sp+".secret_environment."+k, ref)
		}
		for i, vol := range svc.Volumes {
			if err := checkVolume(vol); err != nil {
				v.errorf(fmt.Sprintf("%s.volumes[%d]", sp, i), "%v", err)
			}
		}
		for i, port := range svc.Ports {
			addr, hostPort, err := checkPublish(port)
			if err != nil {
				v.errorf(fmt.Sprintf("%s.ports[%d]", sp, i), "%v", err)
				continue
			}
			if strings.Trim(addr, "[]") == upHost && hostPort == upPort {
				upstreamPublished = true
			}
		}
	}
	if app, ok := roles["app"]; ok && !upstreamPublished && s.Upstream != "" {
		v.errorf(p+".services", "nginx proxies %s to %s, but the app service %s publishes no port there", s.Name, s.Upstream, app)
	}
}

// checkVolume checks HOST:CONTAINER[:ro|rw]; a relative HOST is under the
// app's directory and may not climb out of it.
func checkVolume(vol string) error {
	parts := strings.Split(vol, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Errorf("%q must be HOST:CONTAINER or HOST:CONTAINER:ro", vol)
	}
	host, ctr := parts[0], parts[1]
	if len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw" {
		return fmt.Errorf("%q: the mode must be ro or rw", vol)
	}
	if !strings.HasPrefix(ctr, "/") {
		return fmt.Errorf("%q: the container path must be absolute", vol)
	}
	if host == "" || strings.HasPrefix(path.Clean(host), "..") {
		return fmt.Errorf("%q: the host path must be under the app directory (relative, without ..) or absolute", vol)
	}
	return nil
}

// checkPublish checks ADDRESS:HOST:CONTAINER[/tcp|udp] and refuses any
// address that is not loopback: Docker's published ports go around the
// host's firewall (the LgHS server was taken over through a MongoDB port
// published this way).
func checkPublish(port string) (addr, hostPort string, err error) {
	spec, proto, _ := strings.Cut(port, "/")
	if proto != "" && proto != "tcp" && proto != "udp" {
		return "", "", fmt.Errorf("%q: protocol must be tcp or udp", port)
	}
	i := strings.LastIndex(spec, ":")
	if i < 0 {
		return "", "", fmt.Errorf("%q publishes on every address: write 127.0.0.1:%s:%s (Docker bypasses the firewall; nginx is the way in)", port, spec, spec)
	}
	rest, ctrPort := spec[:i], spec[i+1:]
	j := strings.LastIndex(rest, ":")
	if j < 0 {
		return "", "", fmt.Errorf("%q publishes on every address: write 127.0.0.1:%s (Docker bypasses the firewall; nginx is the way in)", port, spec)
	}
	addr, hostPort = rest[:j], rest[j+1:]
	for _, p := range []string{hostPort, ctrPort} {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("%q: port %q out of range 1-65535", port, p)
		}
	}
	ip, perr := netip.ParseAddr(strings.Trim(addr, "[]"))
	switch {
	case perr != nil:
		return "", "", fmt.Errorf("%q: %q is not an IP address", port, addr)
	case !ip.IsLoopback():
		return "", "", fmt.Errorf("%q publishes on %s, reachable from outside past the firewall (Docker bypasses it): publish on 127.0.0.1 or [::1] and let nginx proxy", port, addr)
	}
	return addr, hostPort, nil
}
