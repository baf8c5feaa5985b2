package provision

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/lghs/lghsctl/inventory"
)

// Ownership marks. Scaleway resources carry the tags, DNS records the
// comment; lghsctl only ever changes or deletes what carries them. The
// inventory forbids user tags starting with "lghsctl".
const (
	// TagOwner is followed by the inventory name: lghsctl=<inventory>.
	TagOwner = "lghsctl="
	// TagHost is followed by the host name: lghsctl-host=<host>.
	TagHost = "lghsctl-host="
	// TagCloneOf marks a server restored from another host's image.
	TagCloneOf = "lghsctl-clone-of="
	// TagBackup marks images and snapshots made by lghsctl snapshot.
	TagBackup = "lghsctl-backup"
	// commentPrefix starts the comment of the DNS records lghsctl owns:
	// "managed by lghsctl: <inventory>/<host>".
	commentPrefix = "managed by lghsctl: "
)

// OwnerTags are the tags of everything lghsctl makes for a host.
func OwnerTags(inv, host string) []string {
	return []string{TagOwner + inv, TagHost + host}
}

// RecordComment is the comment of the DNS records lghsctl owns for a host.
func RecordComment(inv, host string) string { return commentPrefix + inv + "/" + host }

// recordOwner parses a record comment: the inventory and host it belongs to.
func recordOwner(comment string) (inv, host string, ok bool) {
	rest, found := strings.CutPrefix(comment, commentPrefix)
	if !found {
		return "", "", false
	}
	inv, host, ok = strings.Cut(rest, "/")
	if !ok || inv == "" || host == "" {
		return "", "", false
	}
	return inv, host, true
}

// tagValue returns the value of a "key=value" tag.
func tagValue(tags []string, prefix string) (string, bool) {
	for _, t := range tags {
		if v, ok := strings.CutPrefix(t, prefix); ok {
			return v, true
		}
	}
	return "", false
}

// hostSpec is one server as the inventory (or a restore) wants it.
type hostSpec struct {
	// path is the inventory field of the host ("hosts[0]"), "" for a
	// clone, for error locations.
	path           string
	Name           string
	Zone           string
	Type           string
	ImageLabel     string
	ImageID        string // a private image (restore); otherwise resolved from the label
	RootVolumeName string
	RootVolumeSize int64
	IPv4, IPv6     bool
	SecurityGroup  string
	// Tags are the server's tags: ownership first, then the inventory's.
	Tags    []string
	CloneOf string
	DNS     []nameSpec
}

type nameSpec struct {
	path    string
	Name    string
	Zone    string
	TTL     int
	Proxied bool
	// AwaitsCutover: the host's public name while a migration to it is
	// pending. A record lghsctl does not own there is the old server's:
	// left as it is (migrate cutover moves it), not a conflict.
	AwaitsCutover bool
}

// ttl is what the record's TTL must be: proxied records are always
// automatic (1).
func (n nameSpec) ttl() int {
	if n.Proxied {
		return 1
	}
	return n.TTL
}

func hostFromInventory(f *inventory.File, i int) hostSpec {
	h := f.Hosts[i]
	hs := hostSpec{
		path: fmt.Sprintf("hosts[%d]", i), Name: h.Name, Zone: h.Zone, Type: h.Type,
		ImageLabel: h.Image, RootVolumeName: h.RootVolume.Name, RootVolumeSize: int64(h.RootVolume.Size),
		IPv4: *h.IPv4, IPv6: *h.IPv6, SecurityGroup: h.SecurityGroup,
		Tags: append(OwnerTags(f.Name, h.Name), h.Tags...),
	}
	for j, d := range h.DNS {
		hs.DNS = append(hs.DNS, nameSpec{
			path: fmt.Sprintf("hosts[%d].dns[%d]", i, j), Name: d.Name, Zone: f.ZoneOf(d.Name),
			TTL: d.TTL, Proxied: d.Proxied,
			AwaitsCutover: d.Role == "public" && f.Migrate != nil && f.Migrate.To == h.Name,
		})
	}
	return hs
}

// groupSpec is one security group in one zone.
type groupSpec struct {
	path string
	Zone string
	Spec SecurityGroupSpec
	// Rules are the inventory's rules, one per IP range, in order.
	Rules       []Rule
	KeepUnknown bool
}

func groupFromInventory(f *inventory.File, name, zone string) (groupSpec, bool) {
	for i, sg := range f.SecurityGroups {
		if sg.Name != name {
			continue
		}
		g := groupSpec{
			path: fmt.Sprintf("security_groups[%d]", i), Zone: zone, KeepUnknown: sg.KeepUnknownRules,
			Spec: SecurityGroupSpec{
				Name: sg.Name, Tags: []string{TagOwner + f.Name}, Stateful: *sg.Stateful,
				InboundDefault: sg.InboundDefault, OutboundDefault: sg.OutboundDefault,
				EnableDefaultSecurity: !sg.AllowSMTP,
			},
		}
		for _, r := range sg.Rules {
			g.Rules = append(g.Rules, expandRule(r)...)
		}
		return g, true
	}
	return groupSpec{}, false
}

// expandRule turns an inventory rule into one API rule per IP range.
func expandRule(r inventory.Rule) []Rule {
	var out []Rule
	for _, cidr := range r.IPRanges {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			a, err := netip.ParseAddr(cidr)
			if err != nil {
				continue // the inventory validated it
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		rule := Rule{Direction: r.Direction, Action: r.Action, Protocol: r.Protocol, IPRange: p.Masked(), Editable: true}
		if (r.Protocol == "TCP" || r.Protocol == "UDP") && !r.Ports.IsZero() {
			rule.PortFrom, rule.PortTo = r.Ports.From, r.Ports.To
		}
		out = append(out, rule)
	}
	return out
}

// normalise puts a rule in the form the API echoes: masked range, no ports
// for ICMP and ANY, PortTo set for a single port.
func normalise(r Rule) Rule {
	r.IPRange = r.IPRange.Masked()
	if r.Protocol == "ICMP" || r.Protocol == "ANY" {
		r.PortFrom, r.PortTo = 0, 0
	}
	if r.PortFrom != 0 && r.PortTo == 0 {
		r.PortTo = r.PortFrom
	}
	r.Editable = true
	return r
}

func (r Rule) key() string {
	r = normalise(r)
	return fmt.Sprintf("%s/%s/%s/%s/%d-%d", r.Direction, r.Action, r.Protocol, r.IPRange, r.PortFrom, r.PortTo)
}

// String is a rule the way plans show it: "inbound accept TCP 22 ::/0".
func (r Rule) String() string {
	r = normalise(r)
	ports := ""
	switch {
	case r.Protocol == "ICMP" || r.Protocol == "ANY":
	case r.PortFrom == 0:
		ports = " all ports"
	case r.PortFrom == r.PortTo:
		ports = fmt.Sprintf(" %d", r.PortFrom)
	default:
		ports = fmt.Sprintf(" %d-%d", r.PortFrom, r.PortTo)
	}
	return fmt.Sprintf("%s %s %s%s %s", r.Direction, r.Action, r.Protocol, ports, r.IPRange)
}

// ruleDiff compares a group's editable rules with the wanted ones, by
// content. It returns the rules to set (nil when nothing changes), the
// wanted rules missing, and the rules found that the inventory does not
// have (kept at the end of the list when keep is set).
func ruleDiff(actual, wanted []Rule, keep bool) (set []Rule, missing, unknown []Rule) {
	var editable []Rule
	for _, r := range actual {
		if r.Editable {
			editable = append(editable, normalise(r))
		}
	}
	want := map[string]int{}
	for _, r := range wanted {
		want[r.key()]++
	}
	have := map[string]int{}
	for _, r := range editable {
		k := r.key()
		if want[k] > have[k] {
			have[k]++
			continue
		}
		unknown = append(unknown, r)
	}
	seen := map[string]int{}
	for _, r := range wanted {
		k := r.key()
		seen[k]++
		if seen[k] > have[k] {
			missing = append(missing, normalise(r))
		}
	}
	target := make([]Rule, 0, len(wanted)+len(unknown))
	for _, r := range wanted {
		target = append(target, normalise(r))
	}
	if keep {
		target = append(target, unknown...)
	}
	if slices.EqualFunc(editable, target, func(a, b Rule) bool { return a.key() == b.key() }) {
		return nil, missing, unknown
	}
	return target, missing, unknown
}

// sameTags compares tag sets.
func sameTags(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// hasTags reports whether have contains every tag of want.
func hasTags(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

// normaliseKey reduces an authorized_keys line to "type base64" (the API
// strips comments).
func normaliseKey(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return strings.TrimSpace(line)
	}
	// Options before the key type are not valid in IAM keys; take the
	// first field that looks like a key type.
	for i := 0; i+1 < len(f); i++ {
		if strings.HasPrefix(f[i], "ssh-") || strings.HasPrefix(f[i], "ecdsa-") || strings.HasPrefix(f[i], "sk-") {
			return f[i] + " " + f[i+1]
		}
	}
	return f[0] + " " + f[1]
}
