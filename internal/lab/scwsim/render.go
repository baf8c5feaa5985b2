package scwsim

import (
	"net/netip"
	"slices"
	"time"
)

// The *JSON types are the wire shapes, field for field as the 2026
// recordings show them (nullable fields are pointers or any).

func instTime(t time.Time) string  { return t.UTC().Format("2006-01-02T15:04:05.000000+00:00") }
func blockTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

type refJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type imageVolumeJSON struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	VolumeType string `json:"volume_type"`
	Size       int64  `json:"size"`
}

type imageJSON struct {
	ID                string                     `json:"id"`
	Name              string                     `json:"name"`
	Organization      string                     `json:"organization"`
	Project           string                     `json:"project"`
	RootVolume        *imageVolumeJSON           `json:"root_volume"`
	ExtraVolumes      map[string]imageVolumeJSON `json:"extra_volumes"`
	Public            bool                       `json:"public"`
	Arch              string                     `json:"arch"`
	CreationDate      string                     `json:"creation_date"`
	ModificationDate  string                     `json:"modification_date"`
	DefaultBootscript any                        `json:"default_bootscript"`
	FromServer        string                     `json:"from_server"`
	State             string                     `json:"state"`
	Tags              []string                   `json:"tags"`
	Zone              string                     `json:"zone"`
}

func renderImageVolume(v imageVolume) imageVolumeJSON {
	if v.VolumeType == volSBSSnapshot {
		// Block snapshots are described by the Block API only.
		return imageVolumeJSON{ID: v.ID, VolumeType: v.VolumeType}
	}
	return imageVolumeJSON(v)
}

func renderImage(im *image) imageJSON {
	root := renderImageVolume(im.Root)
	extra := map[string]imageVolumeJSON{}
	for k, v := range im.Extra {
		extra[k] = renderImageVolume(v)
	}
	return imageJSON{
		ID: im.ID, Name: im.Name, Organization: im.Organization, Project: im.Project,
		RootVolume: &root, ExtraVolumes: extra, Public: im.Public, Arch: im.Arch,
		CreationDate: instTime(im.Created), ModificationDate: instTime(im.Modified),
		FromServer: im.FromServer, State: "available", Tags: nonNil(im.Tags), Zone: im.Zone,
	}
}

type volumeJSON struct {
	ID               string   `json:"id"`
	Name             string   `json:"name"`
	VolumeType       string   `json:"volume_type"`
	ExportURI        any      `json:"export_uri"`
	Organization     string   `json:"organization"`
	Project          string   `json:"project"`
	Server           *refJSON `json:"server"`
	Size             int64    `json:"size"`
	State            string   `json:"state"`
	CreationDate     string   `json:"creation_date"`
	ModificationDate string   `json:"modification_date"`
	Tags             []string `json:"tags"`
	Zone             string   `json:"zone"`
}

// serverLSSDJSON is an l_ssd entry of server.volumes: the volume plus "boot".
type serverLSSDJSON struct {
	Boot bool `json:"boot"`
	volumeJSON
}

type serverSBSJSON struct {
	Boot       bool   `json:"boot"`
	VolumeType string `json:"volume_type"`
	ID         string `json:"id"`
	State      string `json:"state"`
	Zone       string `json:"zone"`
}

func (s *Sim) renderVolume(v *volume) volumeJSON {
	var srv *refJSON
	if v.Server != "" {
		name := ""
		if sv := s.st.Servers[v.Server]; sv != nil {
			name = sv.Name
		}
		srv = &refJSON{ID: v.Server, Name: name}
	}
	return volumeJSON{
		ID: v.ID, Name: v.Name, VolumeType: volLSSD, Organization: v.Organization, Project: v.Project,
		Server: srv, Size: v.Size, State: v.State, CreationDate: instTime(v.Created),
		ModificationDate: instTime(v.Modified), Tags: nonNil(v.Tags), Zone: v.Zone,
	}
}

type snapshotJSON struct {
	ID               string   `json:"id"`
	Name             string   `json:"name"`
	VolumeType       string   `json:"volume_type"`
	CreationDate     string   `json:"creation_date"`
	ModificationDate string   `json:"modification_date"`
	Organization     string   `json:"organization"`
	Project          string   `json:"project"`
	Size             int64    `json:"size"`
	State            string   `json:"state"`
	BaseVolume       *refJSON `json:"base_volume"`
	Tags             []string `json:"tags"`
	Zone             string   `json:"zone"`
	ErrorDetails     any      `json:"error_details"`
}

func renderSnapshot(sn *snapshot) snapshotJSON {
	var base *refJSON
	if sn.BaseVolume != nil {
		base = &refJSON{ID: sn.BaseVolume.ID, Name: sn.BaseVolume.Name}
	}
	return snapshotJSON{
		ID: sn.ID, Name: sn.Name, VolumeType: sn.VolumeType, CreationDate: instTime(sn.Created),
		ModificationDate: instTime(sn.Modified), Organization: sn.Organization, Project: sn.Project,
		Size: sn.Size, State: sn.State, BaseVolume: base, Tags: nonNil(sn.Tags), Zone: sn.Zone,
	}
}

type ipJSON struct {
	ID           string   `json:"id"`
	Address      *string  `json:"address"`
	Prefix       *string  `json:"prefix"`
	Reverse      *string  `json:"reverse"`
	Server       *refJSON `json:"server"`
	Organization string   `json:"organization"`
	Project      string   `json:"project"`
	Zone         string   `json:"zone"`
	Type         string   `json:"type"`
	State        string   `json:"state"`
	Tags         []string `json:"tags"`
	IPAMID       string   `json:"ipam_id"`
}

func (s *Sim) renderIP(ip *flexIP) ipJSON {
	out := ipJSON{
		ID: ip.ID, Reverse: ip.Reverse, Organization: ip.Organization, Project: ip.Project,
		Zone: ip.Zone, Type: ip.Type, State: ip.State, Tags: nonNil(ip.Tags), IPAMID: ip.ID,
	}
	if ip.Type == ipTypeV6 {
		p := ip.Prefix.String()
		out.Prefix = &p
	} else {
		a := ip.Address.String()
		out.Address = &a
	}
	if ip.Server != "" {
		name := ""
		if sv := s.st.Servers[ip.Server]; sv != nil {
			name = sv.Name
		}
		out.Server = &refJSON{ID: ip.Server, Name: name}
	}
	return out
}

// serverIPJSON is an IP as seen from the server (public_ips[]).
type serverIPJSON struct {
	ID               string   `json:"id"`
	Address          string   `json:"address"`
	Dynamic          bool     `json:"dynamic"`
	Gateway          string   `json:"gateway"`
	Netmask          string   `json:"netmask"`
	Family           string   `json:"family"`
	ProvisioningMode string   `json:"provisioning_mode"`
	Tags             []string `json:"tags"`
	State            string   `json:"state"`
	IPAMID           string   `json:"ipam_id"`
}

type locationJSON struct {
	ZoneID       string `json:"zone_id"`
	PlatformID   string `json:"platform_id"`
	ClusterID    string `json:"cluster_id"`
	HypervisorID string `json:"hypervisor_id"`
	NodeID       string `json:"node_id"`
}

type serverJSON struct {
	ID                              string         `json:"id"`
	Name                            string         `json:"name"`
	Arch                            string         `json:"arch"`
	CommercialType                  string         `json:"commercial_type"`
	BootType                        string         `json:"boot_type"`
	Organization                    string         `json:"organization"`
	Project                         string         `json:"project"`
	Hostname                        string         `json:"hostname"`
	Image                           *imageJSON     `json:"image"`
	Volumes                         map[string]any `json:"volumes"`
	Tags                            []string       `json:"tags"`
	State                           string         `json:"state"`
	Protected                       bool           `json:"protected"`
	StateDetail                     string         `json:"state_detail"`
	PublicIP                        *serverIPJSON  `json:"public_ip"`
	PublicIPs                       []serverIPJSON `json:"public_ips"`
	MACAddress                      string         `json:"mac_address"`
	RoutedIPEnabled                 bool           `json:"routed_ip_enabled"`
	IPv6                            any            `json:"ipv6"`
	ExtraNetworks                   []any          `json:"extra_networks"`
	DynamicIPRequired               bool           `json:"dynamic_ip_required"`
	EnableIPv6                      bool           `json:"enable_ipv6"`
	PrivateIP                       any            `json:"private_ip"`
	CreationDate                    string         `json:"creation_date"`
	ModificationDate                string         `json:"modification_date"`
	Bootscript                      any            `json:"bootscript"`
	SecurityGroup                   refJSON        `json:"security_group"`
	Location                        *locationJSON  `json:"location"`
	Maintenances                    []any          `json:"maintenances"`
	AllowedActions                  []string       `json:"allowed_actions"`
	PlacementGroup                  any            `json:"placement_group"`
	PrivateNics                     []any          `json:"private_nics"`
	Zone                            string         `json:"zone"`
	Filesystems                     []any          `json:"filesystems"`
	EndOfService                    bool           `json:"end_of_service"`
	DNS                             string         `json:"dns"`
	AdminPasswordEncryptionSSHKeyID *string        `json:"admin_password_encryption_ssh_key_id"`
}

// serverIPs renders public_ips: flexible IPs in attach order, then the
// dynamic IPv4 if any.
func (s *Sim) serverIPs(sv *server) []serverIPJSON {
	out := []serverIPJSON{}
	firstV4 := true
	for _, id := range sv.IPs {
		ip := s.st.IPs[id]
		if ip == nil {
			continue
		}
		e := serverIPJSON{ID: ip.ID, Tags: nonNil(ip.Tags), State: ip.State, IPAMID: ip.ID}
		if ip.Type == ipTypeV6 {
			e.Address = slaacAddress(ip.Prefix, sv.MAC).String()
			e.Gateway = linkLocalGateway(sv.MAC).String()
			e.Netmask, e.Family, e.ProvisioningMode = "64", "inet6", "slaac"
		} else {
			e.Address = ip.Address.String()
			e.Gateway, e.Netmask, e.Family = ipv4Gateway, "32", "inet"
			e.ProvisioningMode = "manual"
			if firstV4 {
				e.ProvisioningMode = "dhcp"
				firstV4 = false
			}
		}
		out = append(out, e)
	}
	if sv.DynamicIP.IsValid() {
		st := "attached"
		if s.now().Before(sv.DynamicIPSince.Add(s.cfg.Timings.IPAttach)) {
			st = "pending"
		}
		out = append(out, serverIPJSON{
			ID: stableID("dynamic-ip", sv.ID, sv.DynamicIP.String()), Address: sv.DynamicIP.String(), Dynamic: true,
			Gateway: ipv4Gateway, Netmask: "32", Family: "inet", ProvisioningMode: "dhcp",
			Tags: []string{}, State: st, IPAMID: stableID("dynamic-ipam", sv.ID, sv.DynamicIP.String()),
		})
	}
	return out
}

func (s *Sim) renderServer(sv *server) serverJSON {
	vols := map[string]any{}
	for i, v := range sv.Volumes {
		key := itoa(i)
		switch v.Type {
		case volLSSD:
			if vol := s.st.Volumes[v.ID]; vol != nil {
				vols[key] = serverLSSDJSON{volumeJSON: s.renderVolume(vol)}
			}
		case volSBSVolume:
			vols[key] = serverSBSJSON{VolumeType: volSBSVolume, ID: v.ID, State: "available", Zone: sv.Zone}
		}
	}
	ips := s.serverIPs(sv)
	var first *serverIPJSON
	if len(ips) > 0 {
		first = &ips[0]
	}
	sg := refJSON{ID: sv.SecurityGroup}
	if g := s.st.SecurityGroups[sv.SecurityGroup]; g != nil {
		sg.Name = g.Name
	}
	var loc *locationJSON
	if sv.Location != nil {
		l := locationJSON(*sv.Location)
		loc = &l
	}
	var im *imageJSON
	if sv.Image != nil {
		j := renderImage(sv.Image)
		im = &j
	}
	return serverJSON{
		ID: sv.ID, Name: sv.Name, Arch: sv.Arch, CommercialType: sv.CommercialType, BootType: sv.BootType,
		Organization: sv.Organization, Project: sv.Project, Hostname: hostname(sv.Name), Image: im,
		Volumes: vols, Tags: nonNil(sv.Tags), State: sv.State, Protected: sv.Protected,
		StateDetail: sv.StateDetail, PublicIP: first, PublicIPs: ips, MACAddress: sv.MAC,
		RoutedIPEnabled: true, ExtraNetworks: []any{}, DynamicIPRequired: sv.DynamicIPRequired,
		EnableIPv6: sv.EnableIPv6, CreationDate: instTime(sv.Created), ModificationDate: instTime(sv.Modified),
		SecurityGroup: sg, Location: loc, Maintenances: []any{}, AllowedActions: s.allowedActions(sv),
		PrivateNics: []any{}, Zone: sv.Zone, Filesystems: []any{}, DNS: sv.ID + ".pub.instances.scw.cloud",
		AdminPasswordEncryptionSSHKeyID: sv.AdminKeyID,
	}
}

type sgJSON struct {
	ID                    string    `json:"id"`
	CreationDate          string    `json:"creation_date"`
	ModificationDate      string    `json:"modification_date"`
	Name                  string    `json:"name"`
	Description           *string   `json:"description"`
	Organization          string    `json:"organization"`
	Project               string    `json:"project"`
	Servers               []refJSON `json:"servers"`
	Stateful              bool      `json:"stateful"`
	InboundDefaultPolicy  string    `json:"inbound_default_policy"`
	OutboundDefaultPolicy string    `json:"outbound_default_policy"`
	OrganizationDefault   bool      `json:"organization_default"`
	ProjectDefault        bool      `json:"project_default"`
	EnableDefaultSecurity bool      `json:"enable_default_security"`
	State                 string    `json:"state"`
	Tags                  []string  `json:"tags"`
	Zone                  string    `json:"zone"`
}

func (s *Sim) renderSG(g *securityGroup) sgJSON {
	servers := []refJSON{}
	for _, sv := range s.sortedServers() {
		if sv.SecurityGroup == g.ID {
			servers = append(servers, refJSON{ID: sv.ID, Name: sv.Name})
		}
	}
	st := "available"
	if s.now().Before(g.SyncUntil) {
		st = "syncing"
	}
	return sgJSON{
		ID: g.ID, CreationDate: instTime(g.Created), ModificationDate: instTime(g.Modified), Name: g.Name,
		Description: g.Description, Organization: g.Organization, Project: g.Project, Servers: servers,
		Stateful: g.Stateful, InboundDefaultPolicy: g.Inbound, OutboundDefaultPolicy: g.Outbound,
		OrganizationDefault: g.OrganizationDefault, ProjectDefault: g.ProjectDefault,
		EnableDefaultSecurity: g.EnableDefaultSecurity, State: st, Tags: nonNil(g.Tags), Zone: g.Zone,
	}
}

type ruleJSON struct {
	ID           string  `json:"id"`
	Protocol     string  `json:"protocol"`
	Direction    string  `json:"direction"`
	IPRange      string  `json:"ip_range"`
	DestIPRange  any     `json:"dest_ip_range"`
	DestPortFrom *uint32 `json:"dest_port_from"`
	DestPortTo   *uint32 `json:"dest_port_to"`
	Position     int     `json:"position"`
	Editable     bool    `json:"editable"`
	Action       string  `json:"action"`
	Zone         string  `json:"zone"`
}

// smtpRuleIDs are the ids the real API gives the six SMTP drop rules.
var smtpRuleIDs = [6]string{
	"11111111-2222-4333-8444-000000000001", "11111111-2222-4333-8444-000000000002",
	"11111111-2222-4333-8444-000000000003", "11111111-2222-4333-8444-000000000004",
	"11111111-2222-4333-8444-000000000005", "11111111-2222-4333-8444-000000000006",
}

// smtpRules are the non-editable outbound drops of enable_default_security.
func smtpRules() []sgRule {
	var out []sgRule
	i := 0
	for _, rng := range []string{"0.0.0.0/0", "::/0"} {
		for _, port := range []uint32{25, 465, 587} {
			p := port
			out = append(out, sgRule{ID: smtpRuleIDs[i], Protocol: "TCP", Direction: "outbound", Action: "drop", IPRange: rng, PortFrom: &p})
			i++
		}
	}
	return out
}

// allRules renders the full rule list: non-editable first, each set
// numbered from 1.
func allRules(g *securityGroup) []ruleJSON {
	out := []ruleJSON{}
	if g.EnableDefaultSecurity {
		for i, r := range smtpRules() {
			out = append(out, renderRule(r, i+1, false, g.Zone))
		}
	}
	for i, r := range g.Rules {
		out = append(out, renderRule(r, i+1, true, g.Zone))
	}
	return out
}

func renderRule(r sgRule, pos int, editable bool, zone string) ruleJSON {
	return ruleJSON{
		ID: r.ID, Protocol: r.Protocol, Direction: r.Direction, IPRange: r.IPRange,
		DestPortFrom: r.PortFrom, DestPortTo: r.PortTo, Position: pos, Editable: editable,
		Action: r.Action, Zone: zone,
	}
}

type taskJSON struct {
	ID           string `json:"id"`
	Description  string `json:"description"`
	Status       string `json:"status"`
	HrefFrom     string `json:"href_from"`
	HrefResult   string `json:"href_result"`
	StartedAt    string `json:"started_at"`
	TerminatedAt any    `json:"terminated_at"`
	Progress     int    `json:"progress"`
	Zone         string `json:"zone"`
}

// newTask is the placeholder task the 2026 API returns for every action.
func (s *Sim) newTask(zone, from, result string) taskJSON {
	return taskJSON{
		ID: "00000000-0000-0000-0000-000000000000", Description: "fake task", Status: "pending",
		HrefFrom: from, HrefResult: result, StartedAt: instTime(s.now()), Zone: zone,
	}
}

// ipv4Gateway is the gateway Scaleway reports for every routed IPv4.
const ipv4Gateway = "62.210.0.1"

// slaacAddress is the EUI-64 address of mac in prefix, as Scaleway reports
// (and assigns) the address of a server in its routed IPv6 prefix.
func slaacAddress(prefix netip.Prefix, mac string) netip.Addr {
	if !prefix.IsValid() {
		return netip.Addr{}
	}
	b := prefix.Masked().Addr().As16()
	iid := eui64(mac)
	copy(b[8:], iid[:])
	return netip.AddrFrom16(b)
}

// linkLocalGateway is the gateway Scaleway reports: the link-local EUI-64
// address of the MAC address plus one.
func linkLocalGateway(mac string) netip.Addr {
	hw := parseMAC(mac)
	hw[5]++
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	iid := eui64(formatMAC(hw))
	copy(b[8:], iid[:])
	return netip.AddrFrom16(b)
}

func eui64(mac string) [8]byte {
	hw := parseMAC(mac)
	return [8]byte{hw[0] ^ 0x02, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]}
}
