package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/inventory"
)

// Plan is what Apply would do, computed from the inventory and what the
// APIs report. It is read-only: printing or encoding it changes nothing.
type Plan struct {
	// Changes are the plan lines, in the order Apply makes them.
	Changes []report.Change
	// Notes are things worth knowing that are not changes (rules kept by
	// keep_unknown_rules, an SMTP unblock the account may refuse, ...).
	Notes []string

	inv      string
	withKeys bool
	keys     []keyPlan
	groups   []*groupPlan
	hosts    []*hostPlan
	zones    map[string]*zoneState
	// zoneMu guards the records of zones while Apply changes them.
	zoneMu sync.Mutex
}

// Blocked reports whether the plan has changes Apply will not make.
func (pl *Plan) Blocked() bool {
	return slices.ContainsFunc(pl.Changes, func(c report.Change) bool { return c.Action == report.Blocked })
}

// Pending reports whether Apply has something to change.
func (pl *Plan) Pending() bool {
	return slices.ContainsFunc(pl.Changes, func(c report.Change) bool { return c.Action != report.Blocked })
}

// MarshalJSON encodes the changes and notes.
func (pl *Plan) MarshalJSON() ([]byte, error) {
	changes := pl.Changes
	if changes == nil {
		changes = []report.Change{}
	}
	return json.Marshal(struct {
		Changes []report.Change `json:"changes"`
		Notes   []string        `json:"notes,omitempty"`
	}{changes, pl.Notes})
}

// Outputs are the hosts' outputs as far as the plan knows them (servers
// that exist already); for check mode.
func (pl *Plan) Outputs() Outputs {
	var out Outputs
	for _, hp := range pl.hosts {
		if hp.server != nil {
			out.Hosts = append(out.Hosts, hp.output(*hp.server, false))
		}
	}
	return out
}

func (pl *Plan) add(c report.Change) { pl.Changes = append(pl.Changes, c) }

type keyPlan struct {
	Name, PublicKey string
}

type groupPlan struct {
	spec   groupSpec
	actual *SecurityGroup // nil: to create
	update bool
	rules  []Rule // the editable rules to set; nil: unchanged
	// id is known after the group exists (filled by Apply).
	id string
}

type hostPlan struct {
	spec  hostSpec
	group *groupPlan
	// server is the existing server, nil when it is to be created.
	server *Server
	// ips are the host's IPs by family: the one kept, or nil.
	ips       map[Family]*IP
	createIP  map[Family]bool
	deleteIPs []IP
	attach    map[Family]bool
	create    bool
	imageID   string
	rootType  string
	update    *ServerUpdate
	rename    bool
	powerOn   bool
	wait      bool
}

// zoneState is a DNS zone and its records as read at plan time.
type zoneState struct {
	Zone
	records []Record
}

// Plan reads the actual state and computes the changes. Problems the
// inventory can fix (an unknown zone, commercial type or image label, a
// DNS zone the token cannot see) are returned as inventory.Problems,
// located in the inventory; nothing is changed either way.
func (p *Provisioner) Plan(ctx context.Context) (*Plan, error) {
	var specs []hostSpec
	for i, h := range p.inv.Hosts {
		if h.Provider != "scaleway" || !p.inScope(h.Name) {
			continue
		}
		specs = append(specs, hostFromInventory(p.inv, i))
	}
	return p.plan(ctx, specs, true)
}

// plan computes the plan of specs; withKeys adds the project's SSH keys.
func (p *Provisioner) plan(ctx context.Context, specs []hostSpec, withKeys bool) (*Plan, error) {
	pl := &Plan{inv: p.inv.Name, withKeys: withKeys, zones: map[string]*zoneState{}}
	var problems inventory.Problems

	// DNS reads run while the Scaleway ones do.
	var dnsErr error
	var dnsProblems inventory.Problems
	var wg sync.WaitGroup
	if needsDNS(specs) {
		if p.dns == nil {
			return nil, errors.New("the inventory has DNS names but no DNS provider is configured")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dnsProblems, dnsErr = p.readDNS(ctx, specs, pl)
		}()
	}
	scwProblems, err := p.planScaleway(ctx, specs, withKeys, pl)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if dnsErr != nil {
		return nil, dnsErr
	}
	problems = append(problems, scwProblems...)
	problems = append(problems, dnsProblems...)
	if len(problems) > 0 {
		return nil, problems
	}
	for _, hp := range pl.hosts {
		p.planDNS(pl, hp)
	}
	return pl, nil
}

func needsDNS(specs []hostSpec) bool {
	return slices.ContainsFunc(specs, func(h hostSpec) bool { return len(h.DNS) > 0 })
}

// zonePath is the inventory field a host's zone comes from.
func (p *Provisioner) zonePath(h hostSpec) string {
	if h.path == "" || h.Zone == p.inv.Scaleway.Zone {
		return "scaleway.zone"
	}
	return h.path + ".zone"
}

func (p *Provisioner) planScaleway(ctx context.Context, specs []hostSpec, withKeys bool, pl *Plan) (inventory.Problems, error) {
	var problems inventory.Problems
	f := p.inv

	// Zones and commercial types.
	types := map[string]map[string]ServerType{}
	var zones []string
	for _, h := range specs {
		if !slices.Contains(zones, h.Zone) {
			zones = append(zones, h.Zone)
		}
	}
	badZone := map[string]bool{}
	for _, z := range zones {
		ts, err := p.sc.ServerTypes(ctx, z)
		if Status(err) == 400 || Status(err) == 404 {
			badZone[z] = true
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list the commercial types of %s: %w", z, authHint(err))
		}
		types[z] = ts
	}
	for _, h := range specs {
		if badZone[h.Zone] {
			problems = append(problems, f.Problemf(p.zonePath(h), "zone %s is not served by the Scaleway API", h.Zone))
			continue
		}
		if _, ok := types[h.Zone][h.Type]; !ok {
			path := h.path + ".type"
			if h.path == "" {
				path = "hosts"
			}
			problems = append(problems, f.Problemf(path, "commercial type %s does not exist in %s (%s)", h.Type, h.Zone, typeList(types[h.Zone])))
		}
	}
	if len(problems) > 0 {
		return problems, nil
	}

	// SSH keys: every inventory key registered in the project, matched by
	// key material.
	if withKeys && len(f.SSHKeys) > 0 {
		have, err := p.sc.SSHKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("list the project's SSH keys: %w", authHint(err))
		}
		for _, k := range f.SSHKeys {
			pub, err := p.publicKey(k)
			if err != nil {
				return nil, err
			}
			if slices.ContainsFunc(have, func(h SSHKey) bool { return normaliseKey(h.PublicKey) == normaliseKey(pub) }) {
				continue
			}
			pl.keys = append(pl.keys, keyPlan{Name: k.Name, PublicKey: pub})
			pl.add(report.Change{Action: report.Create, Kind: "ssh key", Name: k.Name, Detail: "project key, installed for root at boot"})
		}
	}

	// Per zone: groups, servers, IPs.
	groups := map[string]*groupPlan{} // zone/name
	for _, z := range zones {
		sgs, err := p.sc.SecurityGroups(ctx, z)
		if err != nil {
			return nil, fmt.Errorf("list security groups in %s: %w", z, authHint(err))
		}
		servers, err := p.sc.Servers(ctx, z, nil)
		if err != nil {
			return nil, fmt.Errorf("list servers in %s: %w", z, authHint(err))
		}
		ips, err := p.sc.IPs(ctx, z, []string{TagOwner + f.Name})
		if err != nil {
			return nil, fmt.Errorf("list flexible IPs in %s: %w", z, authHint(err))
		}
		for _, h := range specs {
			if h.Zone != z {
				continue
			}
			key := z + "/" + h.SecurityGroup
			gp := groups[key]
			if gp == nil {
				gs, ok := groupFromInventory(f, h.SecurityGroup, z)
				if !ok {
					return nil, fmt.Errorf("host %s: security group %q is not in the inventory", h.Name, h.SecurityGroup)
				}
				gp, err = p.planGroup(ctx, pl, gs, sgs)
				if err != nil {
					return nil, err
				}
				groups[key] = gp
				pl.groups = append(pl.groups, gp)
			}
			hp, probs, err := p.planHost(ctx, pl, h, gp, servers, ips, types[z])
			if err != nil {
				return nil, err
			}
			problems = append(problems, probs...)
			if hp != nil {
				pl.hosts = append(pl.hosts, hp)
			}
		}
	}
	return problems, nil
}

func typeList(ts map[string]ServerType) string {
	names := make([]string, 0, len(ts))
	for n := range ts {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) > 12 {
		return "e.g. " + strings.Join(names[:12], ", ") + ", ..."
	}
	return "available: " + strings.Join(names, ", ")
}

// authHint adds what to check to an authentication or permission refusal.
func authHint(err error) error {
	switch Status(err) {
	case 401:
		return fmt.Errorf("%w (the Scaleway credentials were refused: check SCW_ACCESS_KEY/SCW_SECRET_KEY or the scw profile)", err)
	case 403:
		return fmt.Errorf("%w (the API key lacks a permission on this project)", err)
	}
	return err
}

func (p *Provisioner) planGroup(ctx context.Context, pl *Plan, gs groupSpec, sgs []SecurityGroup) (*groupPlan, error) {
	gp := &groupPlan{spec: gs}
	owner := TagOwner + p.inv.Name
	var owned, foreign []SecurityGroup
	for _, g := range sgs {
		if g.Name != gs.Spec.Name {
			continue
		}
		if slices.Contains(g.Tags, owner) {
			owned = append(owned, g)
		} else {
			foreign = append(foreign, g)
		}
	}
	name := gs.Spec.Name
	switch {
	case len(owned) > 1:
		ids := make([]string, len(owned))
		for i, g := range owned {
			ids[i] = g.ID
		}
		pl.add(report.Change{Action: report.Blocked, Kind: "security group", Name: name, Detail: gs.Zone,
			Note: fmt.Sprintf("%d groups named %s carry %s (%s): delete the extra ones", len(owned), name, owner, strings.Join(ids, ", "))})
		gp.actual = &owned[0]
		gp.id = owned[0].ID
		return gp, nil
	case len(owned) == 0 && len(foreign) > 0:
		pl.add(report.Change{Action: report.Blocked, Kind: "security group", Name: name, Detail: gs.Zone,
			Note: fmt.Sprintf("a group named %s exists (%s) that lghsctl did not create: rename it, or tag it %s to let lghsctl manage it", name, foreign[0].ID, owner)})
		gp.actual = &foreign[0]
		gp.id = foreign[0].ID
		return gp, nil
	case len(owned) == 0:
		gp.rules = slices.Clone(gs.Rules)
		if gp.rules == nil {
			gp.rules = []Rule{}
		}
		smtp := "SMTP blocked"
		if !gs.Spec.EnableDefaultSecurity {
			smtp = "SMTP unblocked"
		}
		pl.add(report.Change{Action: report.Create, Kind: "security group", Name: name,
			Detail: fmt.Sprintf("%s, inbound %s, outbound %s, %s, %d rules", gs.Zone, gs.Spec.InboundDefault, gs.Spec.OutboundDefault, smtp, len(gs.Rules))})
		return gp, nil
	}
	g := owned[0]
	gp.actual, gp.id = &g, g.ID
	var fields []report.FieldChange
	if g.InboundDefault != gs.Spec.InboundDefault {
		fields = append(fields, report.FieldChange{Name: "inbound_default", Old: g.InboundDefault, New: gs.Spec.InboundDefault})
	}
	if g.OutboundDefault != gs.Spec.OutboundDefault {
		fields = append(fields, report.FieldChange{Name: "outbound_default", Old: g.OutboundDefault, New: gs.Spec.OutboundDefault})
	}
	if g.Stateful != gs.Spec.Stateful {
		fields = append(fields, report.FieldChange{Name: "stateful", Old: fmt.Sprint(g.Stateful), New: fmt.Sprint(gs.Spec.Stateful)})
	}
	if g.EnableDefaultSecurity != gs.Spec.EnableDefaultSecurity {
		fields = append(fields, report.FieldChange{Name: "allow_smtp", Old: fmt.Sprint(!g.EnableDefaultSecurity), New: fmt.Sprint(!gs.Spec.EnableDefaultSecurity)})
	}
	if len(fields) > 0 {
		gp.update = true
		pl.add(report.Change{Action: report.Update, Kind: "security group", Name: name, Detail: gs.Zone, Fields: fields})
	}
	rules, err := p.sc.Rules(ctx, gs.Zone, g.ID)
	if err != nil {
		return nil, fmt.Errorf("list the rules of security group %s: %w", name, err)
	}
	set, missing, unknown := ruleDiff(rules, gs.Rules, gs.KeepUnknown)
	gp.rules = set
	for _, r := range missing {
		pl.add(report.Change{Action: report.Create, Kind: "rule", Name: name, Detail: r.String()})
	}
	for _, r := range unknown {
		if gs.KeepUnknown {
			pl.Notes = append(pl.Notes, fmt.Sprintf("security group %s: rule %q is not in the inventory (added outside lghsctl); kept because keep_unknown_rules is set", name, r.String()))
			continue
		}
		pl.add(report.Change{Action: report.Delete, Kind: "rule", Name: name, Detail: r.String(),
			Note: "not in the inventory (added outside lghsctl?); set keep_unknown_rules: true to keep such rules"})
	}
	if set != nil && len(missing) == 0 && (len(unknown) == 0 || gs.KeepUnknown) {
		pl.add(report.Change{Action: report.Update, Kind: "rules", Name: name, Detail: "same rules, new order"})
	}
	return gp, nil
}

// planHost compares one host with its server and IPs. servers are every
// server of the zone, ips the inventory's IPs of the zone.
func (p *Provisioner) planHost(ctx context.Context, pl *Plan, h hostSpec, gp *groupPlan, servers []Server, ips []IP, types map[string]ServerType) (*hostPlan, inventory.Problems, error) {
	hp := &hostPlan{spec: h, group: gp, ips: map[Family]*IP{}, createIP: map[Family]bool{}, attach: map[Family]bool{}}
	owner := OwnerTags(p.inv.Name, h.Name)
	var owned, foreign []Server
	for _, s := range servers {
		switch {
		case hasTags(s.Tags, owner):
			owned = append(owned, s)
		case s.Name == h.Name:
			foreign = append(foreign, s)
		}
	}
	switch {
	case len(owned) > 1:
		ids := make([]string, len(owned))
		for i, s := range owned {
			ids[i] = s.ID
		}
		pl.add(report.Change{Action: report.Blocked, Kind: "server", Name: h.Name, Detail: h.Zone,
			Note: fmt.Sprintf("%d servers carry %s (%s): destroy the extra ones", len(owned), strings.Join(owner, ","), strings.Join(ids, ", "))})
		return nil, nil, nil
	case len(owned) == 0 && len(foreign) > 0:
		pl.add(report.Change{Action: report.Blocked, Kind: "server", Name: h.Name, Detail: h.Zone,
			Note: fmt.Sprintf("a server named %s exists (%s) that lghsctl did not create: rename it, or tag it %s to let lghsctl manage it", h.Name, foreign[0].ID, strings.Join(owner, " and "))})
		return nil, nil, nil
	case len(owned) == 1:
		s := owned[0]
		hp.server = &s
	}

	// IPs: one of each wanted family, attached to the server.
	byFamily := map[Family][]IP{}
	for _, ip := range ips {
		if v, _ := tagValue(ip.Tags, TagHost); v == h.Name {
			byFamily[ip.Family] = append(byFamily[ip.Family], ip)
		}
	}
	for _, fam := range []Family{IPv4, IPv6} {
		want := (fam == IPv4 && h.IPv4) || (fam == IPv6 && h.IPv6)
		list := byFamily[fam]
		// Prefer the one attached to the server.
		slices.SortStableFunc(list, func(a, b IP) int {
			return boolRank(hp.server != nil && b.Server == hp.server.ID) - boolRank(hp.server != nil && a.Server == hp.server.ID)
		})
		if want && len(list) > 0 {
			ip := list[0]
			hp.ips[fam] = &ip
			list = list[1:]
			if hp.server != nil && ip.Server != hp.server.ID {
				hp.attach[fam] = true
				pl.add(report.Change{Action: report.Update, Kind: "ip", Name: h.Name, Detail: fmt.Sprintf("%s %s", fam, ip),
					Fields: []report.FieldChange{{Name: "server", Old: orNone(ip.Server), New: h.Name}}})
			}
		} else if want {
			hp.createIP[fam] = true
			detail := "routed IPv4 flexible IP"
			if fam == IPv6 {
				detail = "routed IPv6 flexible IP (/64 prefix)"
			}
			pl.add(report.Change{Action: report.Create, Kind: "ip", Name: h.Name, Detail: fmt.Sprintf("%s, %s", detail, h.Zone)})
			if hp.server != nil {
				hp.attach[fam] = true
			}
		}
		for _, extra := range list {
			hp.deleteIPs = append(hp.deleteIPs, extra)
			why := "a second " + string(fam) + " tagged for this host"
			if !want {
				why = string(fam) + " is off in the inventory"
			}
			pl.add(report.Change{Action: report.Delete, Kind: "ip", Name: h.Name, Detail: fmt.Sprintf("%s %s", fam, extra), Note: why})
		}
	}

	var problems inventory.Problems
	st := types[h.Type]
	if hp.server == nil {
		hp.create, hp.powerOn, hp.wait = true, true, true
		hp.rootType = "l_ssd"
		if st.MaxLocalStorage == 0 {
			hp.rootType = "sbs_volume"
		}
		imageDesc := h.ImageLabel
		if h.ImageID != "" {
			hp.imageID = h.ImageID
			imageDesc = "image " + h.ImageID
		} else {
			id, err := p.sc.ResolveImage(ctx, h.Zone, h.ImageLabel, h.Type, hp.rootType == "l_ssd")
			switch {
			case errors.Is(err, ErrNotFound):
				problems = append(problems, p.inv.Problemf(h.path+".image", "the marketplace has no image %q for %s in %s", h.ImageLabel, h.Type, h.Zone))
			case err != nil:
				return nil, nil, fmt.Errorf("resolve image %s: %w", h.ImageLabel, authHint(err))
			}
			hp.imageID = id
		}
		size := "default size"
		if h.RootVolumeSize > 0 {
			size = fmt.Sprintf("%dGB", h.RootVolumeSize/1e9)
		}
		detail := fmt.Sprintf("%s %s, %s, volume %s (%s %s), security group %s", h.Type, h.Zone, imageDesc, h.RootVolumeName, hp.rootType, size, h.SecurityGroup)
		if h.CloneOf != "" {
			detail += ", clone of " + h.CloneOf
		}
		pl.add(report.Change{Action: report.Create, Kind: "server", Name: h.Name, Detail: detail})
		return hp, problems, nil
	}

	// An existing server: what can be fixed in place, and what cannot.
	s := hp.server
	if s.CommercialType != h.Type {
		pl.add(report.Change{Action: report.Blocked, Kind: "server", Name: h.Name,
			Fields: []report.FieldChange{{Name: "commercial_type", Old: s.CommercialType, New: h.Type}},
			Note:   fmt.Sprintf("changing the type needs the server stopped, which lghsctl never does by itself: take a backup (lghsctl snapshot create %s), power the server off, change its type (console, or scw instance server update %s commercial-type=%s zone=%s), power it on, then run lghsctl up again", h.Name, s.ID, h.Type, h.Zone)})
	}
	if len(s.Volumes) > 0 {
		root := s.Volumes[0]
		if h.RootVolumeSize > 0 && root.Size > 0 && root.Size != h.RootVolumeSize {
			pl.add(report.Change{Action: report.Blocked, Kind: "volume", Name: root.Name,
				Fields: []report.FieldChange{{Name: "size", Old: fmt.Sprintf("%dGB", root.Size/1e9), New: fmt.Sprintf("%dGB", h.RootVolumeSize/1e9)}},
				Note:   "a local volume cannot be resized: take a backup and restore it as a new server with the new size, or set the size back"})
		}
		if root.Name != h.RootVolumeName && root.Type == "l_ssd" {
			hp.rename = true
			pl.add(report.Change{Action: report.Update, Kind: "volume", Name: h.RootVolumeName,
				Fields: []report.FieldChange{{Name: "name", Old: root.Name, New: h.RootVolumeName}}})
		}
	}
	var u ServerUpdate
	var fields []report.FieldChange
	if s.Name != h.Name {
		u.Name = &h.Name
		fields = append(fields, report.FieldChange{Name: "name", Old: s.Name, New: h.Name})
	}
	if !sameTags(s.Tags, h.Tags) {
		tags := slices.Clone(h.Tags)
		u.Tags = &tags
		fields = append(fields, report.FieldChange{Name: "tags", Old: strings.Join(s.Tags, ","), New: strings.Join(h.Tags, ",")})
	}
	if gp.actual == nil || s.SecurityGroup != gp.actual.ID {
		sg := h.SecurityGroup
		u.SecurityGroup = &sg
		fields = append(fields, report.FieldChange{Name: "security_group", Old: s.SecurityGroup, New: h.SecurityGroup})
	}
	switch s.State {
	case StateRunning:
	case StateStopped, StateStoppedInPlace:
		hp.powerOn, hp.wait = true, true
		fields = append(fields, report.FieldChange{Name: "state", Old: s.State, New: StateRunning})
	case StateStarting:
		hp.wait = true
	case StateStopping:
		pl.add(report.Change{Action: report.Blocked, Kind: "server", Name: h.Name, Detail: "stopping",
			Note: "the server is being stopped (by someone else?); run lghsctl up again once it is stopped"})
	default:
		pl.add(report.Change{Action: report.Blocked, Kind: "server", Name: h.Name, Detail: s.State,
			Note: fmt.Sprintf("the server is %s; see the Scaleway console", s.State)})
	}
	if u.Name != nil || u.Tags != nil || u.SecurityGroup != nil {
		hp.update = &u
	}
	if len(fields) > 0 {
		pl.add(report.Change{Action: report.Update, Kind: "server", Name: h.Name, Detail: h.Zone, Fields: fields})
	}
	return hp, problems, nil
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// output is the host's output for a server.
func (hp *hostPlan) output(s Server, created bool) HostOutput {
	o := HostOutput{Host: hp.spec.Name, ServerID: s.ID, Zone: s.Zone, Created: created, State: s.State}
	if o.Zone == "" {
		o.Zone = hp.spec.Zone
	}
	o.IPv4, o.IPv6 = hp.addresses(s)
	if ip := hp.ips[IPv6]; ip != nil {
		o.IPv6Prefix = ip.Prefix
	}
	for _, n := range hp.spec.DNS {
		o.DNSNames = append(o.DNSNames, n.Name)
	}
	return o
}

// addresses are the server's addresses from its flexible IPs: the IPv4
// address and its address in the routed IPv6 prefix.
func (hp *hostPlan) addresses(s Server) (v4, v6 netip.Addr) {
	for _, sip := range s.IPs {
		if ip := hp.ips[IPv4]; ip != nil && sip.ID == ip.ID {
			v4 = sip.Address
		}
		if ip := hp.ips[IPv6]; ip != nil && sip.ID == ip.ID {
			v6 = sip.Address
		}
	}
	if !v4.IsValid() {
		if ip := hp.ips[IPv4]; ip != nil && ip.Server == s.ID {
			v4 = ip.Address
		}
	}
	return v4, v6
}

// expected are the addresses the DNS records must have, as far as they
// are known before Apply (invalid: known after apply).
func (hp *hostPlan) expected() (v4, v6 netip.Addr) {
	if hp.create || hp.server == nil {
		if ip := hp.ips[IPv4]; ip != nil {
			return ip.Address, netip.Addr{}
		}
		return netip.Addr{}, netip.Addr{}
	}
	v4, v6 = hp.addresses(*hp.server)
	if ip := hp.ips[IPv4]; ip != nil && !v4.IsValid() {
		v4 = ip.Address
	}
	if hp.createIP[IPv6] || hp.attach[IPv6] {
		v6 = netip.Addr{}
	}
	return v4, v6
}
