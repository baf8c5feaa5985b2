package scaleway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/scaleway/scaleway-sdk-go/api/account/v3"
	"github.com/scaleway/scaleway-sdk-go/api/block/v1"
	"github.com/scaleway/scaleway-sdk-go/api/iam/v1alpha1"
	"github.com/scaleway/scaleway-sdk-go/api/instance/v1"
	"github.com/scaleway/scaleway-sdk-go/api/marketplace/v2"
	"github.com/scaleway/scaleway-sdk-go/scw"

	"github.com/lghs/lghsctl/provision"
)

// Config builds a Client.
type Config struct {
	// Credentials are the resolved profile (LoadCredentials): keys, API
	// URL, default project and zone.
	Credentials *Credentials
	// ProjectID overrides the profile's default project.
	ProjectID string
	// HTTPClient does the requests (the retrying transport); nil means
	// http.DefaultClient.
	HTTPClient *http.Client
	// UserAgent is added to the SDK's.
	UserAgent string
}

// Client implements provision.Scaleway over scaleway-sdk-go.
type Client struct {
	project string
	inst    *instance.API
	mkt     *marketplace.API
	iam     *iam.API
	block   *block.API
	acct    *account.ProjectAPI
}

// New returns a Client for the project of cfg (or of the profile).
func New(cfg Config) (*Client, error) {
	if cfg.Credentials == nil {
		return nil, errors.New("scaleway: no credentials")
	}
	if err := cfg.Credentials.Check(); err != nil {
		return nil, err
	}
	opts := []scw.ClientOption{scw.WithProfile(cfg.Credentials.Profile)}
	if cfg.HTTPClient != nil {
		opts = append(opts, scw.WithHTTPClient(cfg.HTTPClient))
	}
	if cfg.UserAgent != "" {
		opts = append(opts, scw.WithUserAgent(cfg.UserAgent))
	}
	sc, err := scw.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("scaleway client: %w", err)
	}
	project := cfg.ProjectID
	if project == "" {
		if p := cfg.Credentials.Profile.DefaultProjectID; p != nil {
			project = *p
		}
	}
	return &Client{project: project, inst: instance.NewAPI(sc), mkt: marketplace.NewAPI(sc), iam: iam.NewAPI(sc),
		block: block.NewAPI(sc), acct: account.NewProjectAPI(sc)}, nil
}

// Project is the project id the client acts in ("" when unknown).
func (c *Client) Project() string { return c.project }

// ResolveProject finds a project's id by name through the Account API and
// makes the client use it.
func (c *Client) ResolveProject(ctx context.Context, name string) (string, error) {
	resp, err := c.acct.ListProjects(&account.ProjectAPIListProjectsRequest{Name: &name}, scw.WithContext(ctx), scw.WithAllPages())
	if err != nil {
		return "", fmt.Errorf("look up Scaleway project %q: %w", name, apiErr(err))
	}
	for _, p := range resp.Projects {
		if p.Name == name {
			c.project = p.ID
			return p.ID, nil
		}
	}
	return "", fmt.Errorf("look up Scaleway project %q: %w", name, provision.ErrNotFound)
}

// apiErr turns an SDK error into a *provision.APIError with its status.
func apiErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	e := &provision.APIError{API: "scaleway", Err: err, Message: err.Error()}
	var (
		re  *scw.ResponseError
		nf  *scw.ResourceNotFoundError
		ia  *scw.InvalidArgumentsError
		qe  *scw.QuotasExceededError
		pd  *scw.PermissionsDeniedError
		ts  *scw.TransientStateError
		da  *scw.DeniedAuthenticationError
		pf  *scw.PreconditionFailedError
		rl  *scw.ResourceLockedError
		oos *scw.OutOfStockError
	)
	switch {
	case errors.As(err, &nf):
		e.Status = http.StatusNotFound
		e.Err = fmt.Errorf("%w: %v", provision.ErrNotFound, err)
	case errors.As(err, &ia):
		e.Status = http.StatusBadRequest
	case errors.As(err, &da):
		e.Status = http.StatusUnauthorized
	case errors.As(err, &pd), errors.As(err, &qe):
		e.Status = http.StatusForbidden
	case errors.As(err, &ts):
		e.Status = http.StatusConflict
	case errors.As(err, &pf):
		e.Status = http.StatusPreconditionFailed
	case errors.As(err, &rl):
		e.Status = http.StatusLocked
	case errors.As(err, &oos):
		e.Status = http.StatusServiceUnavailable
	case errors.As(err, &re):
		e.Status = re.StatusCode
		if re.Message != "" {
			e.Message = re.Message
		}
		if re.StatusCode == http.StatusNotFound {
			e.Err = fmt.Errorf("%w: %v", provision.ErrNotFound, err)
		}
	}
	e.Message = strings.TrimPrefix(e.Message, "scaleway-sdk-go: ")
	return e
}

// gone reports whether err says the resource does not exist (for deletes).
func gone(err error) bool { return errors.Is(err, provision.ErrNotFound) }

func (c *Client) opts(ctx context.Context, all bool) []scw.RequestOption {
	o := []scw.RequestOption{scw.WithContext(ctx)}
	if all {
		o = append(o, scw.WithAllPages())
	}
	return o
}

func tagList(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	return tags
}

// ---- server types, images ----

// ServerTypes implements provision.Scaleway.
func (c *Client) ServerTypes(ctx context.Context, zone string) (map[string]provision.ServerType, error) {
	resp, err := c.inst.ListServersTypes(&instance.ListServersTypesRequest{Zone: scw.Zone(zone)}, c.opts(ctx, true)...)
	if err != nil {
		return nil, apiErr(err)
	}
	out := map[string]provision.ServerType{}
	for name, t := range resp.Servers {
		var st provision.ServerType
		if t != nil && t.PerVolumeConstraint != nil && t.PerVolumeConstraint.LSSD != nil && t.PerVolumeConstraint.LSSD.MaxSize > 0 &&
			t.VolumesConstraint != nil {
			st.MaxLocalStorage = int64(t.VolumesConstraint.MaxSize)
		}
		out[name] = st
	}
	return out, nil
}

// ResolveImage implements provision.Scaleway.
func (c *Client) ResolveImage(ctx context.Context, zone, label, commercialType string, local bool) (string, error) {
	typ := marketplace.LocalImageTypeInstanceSbs
	if local {
		typ = marketplace.LocalImageTypeInstanceLocal
	}
	z := scw.Zone(zone)
	resp, err := c.mkt.ListLocalImages(&marketplace.ListLocalImagesRequest{ImageLabel: &label, Zone: &z, Type: typ}, c.opts(ctx, true)...)
	if err != nil {
		return "", apiErr(err)
	}
	for _, li := range resp.LocalImages {
		if li.IsCompatible(strings.ToUpper(commercialType)) {
			return li.ID, nil
		}
	}
	return "", fmt.Errorf("no %s image %s for %s in %s: %w", typ, label, commercialType, zone, provision.ErrNotFound)
}

// ---- SSH keys ----

// SSHKeys implements provision.Scaleway.
func (c *Client) SSHKeys(ctx context.Context) ([]provision.SSHKey, error) {
	resp, err := c.iam.ListSSHKeys(&iam.ListSSHKeysRequest{ProjectID: &c.project}, c.opts(ctx, true)...)
	if err != nil {
		return nil, apiErr(err)
	}
	out := make([]provision.SSHKey, 0, len(resp.SSHKeys))
	for _, k := range resp.SSHKeys {
		if k.Disabled {
			continue
		}
		out = append(out, provision.SSHKey{ID: k.ID, Name: k.Name, PublicKey: k.PublicKey})
	}
	return out, nil
}

// CreateSSHKey implements provision.Scaleway.
func (c *Client) CreateSSHKey(ctx context.Context, name, publicKey string) (provision.SSHKey, error) {
	k, err := c.iam.CreateSSHKey(&iam.CreateSSHKeyRequest{Name: name, PublicKey: publicKey, ProjectID: c.project}, c.opts(ctx, false)...)
	if err != nil {
		return provision.SSHKey{}, apiErr(err)
	}
	return provision.SSHKey{ID: k.ID, Name: k.Name, PublicKey: k.PublicKey}, nil
}

// ---- security groups ----

func toGroup(g *instance.SecurityGroup) provision.SecurityGroup {
	out := provision.SecurityGroup{ID: g.ID, Name: g.Name, Tags: g.Tags, Stateful: g.Stateful,
		InboundDefault: string(g.InboundDefaultPolicy), OutboundDefault: string(g.OutboundDefaultPolicy),
		EnableDefaultSecurity: g.EnableDefaultSecurity, ProjectDefault: g.ProjectDefault}
	for _, s := range g.Servers {
		out.Servers = append(out.Servers, s.ID)
	}
	return out
}

// SecurityGroups implements provision.Scaleway.
func (c *Client) SecurityGroups(ctx context.Context, zone string) ([]provision.SecurityGroup, error) {
	resp, err := c.inst.ListSecurityGroups(&instance.ListSecurityGroupsRequest{Zone: scw.Zone(zone), Project: &c.project}, c.opts(ctx, true)...)
	if err != nil {
		return nil, apiErr(err)
	}
	out := make([]provision.SecurityGroup, 0, len(resp.SecurityGroups))
	for _, g := range resp.SecurityGroups {
		out = append(out, toGroup(g))
	}
	return out, nil
}

// Rules implements provision.Scaleway.
func (c *Client) Rules(ctx context.Context, zone, groupID string) ([]provision.Rule, error) {
	resp, err := c.inst.ListSecurityGroupRules(&instance.ListSecurityGroupRulesRequest{Zone: scw.Zone(zone), SecurityGroupID: groupID}, c.opts(ctx, true)...)
	if err != nil {
		return nil, apiErr(err)
	}
	rules := slices.Clone(resp.Rules)
	slices.SortStableFunc(rules, func(a, b *instance.SecurityGroupRule) int { return int(a.Position) - int(b.Position) })
	out := make([]provision.Rule, 0, len(rules))
	for _, r := range rules {
		pr := provision.Rule{Direction: string(r.Direction), Action: string(r.Action), Protocol: string(r.Protocol), Editable: r.Editable}
		if p, ok := prefixOf(r.IPRange); ok {
			pr.IPRange = p
		}
		if r.DestPortFrom != nil {
			pr.PortFrom = int(*r.DestPortFrom)
			pr.PortTo = pr.PortFrom
		}
		if r.DestPortTo != nil {
			pr.PortTo = int(*r.DestPortTo)
		}
		out = append(out, pr)
	}
	return out, nil
}

func prefixOf(n scw.IPNet) (netip.Prefix, bool) {
	if n.IP == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	bits := a.BitLen()
	if n.Mask != nil {
		bits, _ = n.Mask.Size()
	}
	return netip.PrefixFrom(a, bits).Masked(), true
}

func ipNet(p netip.Prefix) scw.IPNet {
	return scw.IPNet{IPNet: net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
}

func groupRequestPolicies(spec provision.SecurityGroupSpec) (instance.SecurityGroupPolicy, instance.SecurityGroupPolicy) {
	return instance.SecurityGroupPolicy(spec.InboundDefault), instance.SecurityGroupPolicy(spec.OutboundDefault)
}

// CreateSecurityGroup implements provision.Scaleway. stateful: false
// cannot be sent at creation (the SDK omits false), so a stateless group
// is made stateful then updated.
func (c *Client) CreateSecurityGroup(ctx context.Context, zone string, spec provision.SecurityGroupSpec) (provision.SecurityGroup, error) {
	in, out := groupRequestPolicies(spec)
	resp, err := c.inst.CreateSecurityGroup(&instance.CreateSecurityGroupRequest{
		Zone: scw.Zone(zone), Name: spec.Name, Project: &c.project, Tags: tagList(spec.Tags), Stateful: spec.Stateful,
		InboundDefaultPolicy: in, OutboundDefaultPolicy: out, EnableDefaultSecurity: scw.BoolPtr(spec.EnableDefaultSecurity),
	}, c.opts(ctx, false)...)
	if err != nil {
		return provision.SecurityGroup{}, apiErr(err)
	}
	g := toGroup(resp.SecurityGroup)
	if !spec.Stateful && g.Stateful {
		return c.UpdateSecurityGroup(ctx, zone, g.ID, spec)
	}
	return g, nil
}

// UpdateSecurityGroup implements provision.Scaleway.
func (c *Client) UpdateSecurityGroup(ctx context.Context, zone, id string, spec provision.SecurityGroupSpec) (provision.SecurityGroup, error) {
	in, out := groupRequestPolicies(spec)
	tags := slices.Clone(spec.Tags)
	resp, err := c.inst.UpdateSecurityGroup(&instance.UpdateSecurityGroupRequest{
		Zone: scw.Zone(zone), SecurityGroupID: id, InboundDefaultPolicy: in, OutboundDefaultPolicy: out,
		Stateful: scw.BoolPtr(spec.Stateful), EnableDefaultSecurity: scw.BoolPtr(spec.EnableDefaultSecurity), Tags: &tags,
	}, c.opts(ctx, false)...)
	if err != nil {
		return provision.SecurityGroup{}, apiErr(err)
	}
	return toGroup(resp.SecurityGroup), nil
}

// SetRules implements provision.Scaleway.
func (c *Client) SetRules(ctx context.Context, zone, groupID string, rules []provision.Rule) error {
	req := &instance.SetSecurityGroupRulesRequest{Zone: scw.Zone(zone), SecurityGroupID: groupID, Rules: []*instance.SetSecurityGroupRulesRequestRule{}}
	for i, r := range rules {
		rr := &instance.SetSecurityGroupRulesRequestRule{
			Action: instance.SecurityGroupRuleAction(r.Action), Protocol: instance.SecurityGroupRuleProtocol(r.Protocol),
			Direction: instance.SecurityGroupRuleDirection(r.Direction), IPRange: ipNet(r.IPRange), Position: uint32(i + 1),
		}
		if r.PortFrom != 0 && r.Protocol != "ICMP" && r.Protocol != "ANY" {
			from := uint32(r.PortFrom)
			rr.DestPortFrom = &from
			if r.PortTo != 0 && r.PortTo != r.PortFrom {
				to := uint32(r.PortTo)
				rr.DestPortTo = &to
			}
		}
		req.Rules = append(req.Rules, rr)
	}
	_, err := c.inst.SetSecurityGroupRules(req, c.opts(ctx, false)...)
	return apiErr(err)
}

// DeleteSecurityGroup implements provision.Scaleway.
func (c *Client) DeleteSecurityGroup(ctx context.Context, zone, id string) error {
	err := apiErr(c.inst.DeleteSecurityGroup(&instance.DeleteSecurityGroupRequest{Zone: scw.Zone(zone), SecurityGroupID: id}, c.opts(ctx, false)...))
	if gone(err) {
		return nil
	}
	return err
}

// ---- servers ----

func toServer(s *instance.Server) provision.Server {
	out := provision.Server{ID: s.ID, Name: s.Name, Zone: string(s.Zone), CommercialType: s.CommercialType,
		State: string(s.State), StateDetail: s.StateDetail, Tags: s.Tags}
	if s.SecurityGroup != nil {
		out.SecurityGroup = s.SecurityGroup.ID
	}
	if s.Image != nil {
		out.ImageID = s.Image.ID
	}
	if s.CreationDate != nil {
		out.Created = *s.CreationDate
	}
	for _, ip := range s.PublicIPs {
		if ip == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(ip.Address)
		if !ok {
			continue
		}
		out.IPs = append(out.IPs, provision.ServerIP{ID: ip.ID, Address: a.Unmap(), Dynamic: ip.Dynamic})
	}
	keys := make([]string, 0, len(s.Volumes))
	for k := range s.Volumes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	for _, k := range keys {
		v := s.Volumes[k]
		if v == nil {
			continue
		}
		pv := provision.Volume{ID: v.ID, Type: string(v.VolumeType)}
		if v.Name != nil {
			pv.Name = *v.Name
		}
		if v.Size != nil {
			pv.Size = int64(*v.Size)
		}
		out.Volumes = append(out.Volumes, pv)
	}
	return out
}

// Servers implements provision.Scaleway.
func (c *Client) Servers(ctx context.Context, zone string, tags []string) ([]provision.Server, error) {
	resp, err := c.inst.ListServers(&instance.ListServersRequest{Zone: scw.Zone(zone), Project: &c.project, Tags: tagList(tags)}, c.opts(ctx, true)...)
	if err != nil {
		return nil, apiErr(err)
	}
	out := make([]provision.Server, 0, len(resp.Servers))
	for _, s := range resp.Servers {
		out = append(out, toServer(s))
	}
	return out, nil
}

// Server implements provision.Scaleway.
func (c *Client) Server(ctx context.Context, zone, id string) (provision.Server, error) {
	resp, err := c.inst.GetServer(&instance.GetServerRequest{Zone: scw.Zone(zone), ServerID: id}, c.opts(ctx, false)...)
	if err != nil {
		return provision.Server{}, apiErr(err)
	}
	return toServer(resp.Server), nil
}

// CreateServer implements provision.Scaleway: the server is created
// stopped, with its root volume named, its flexible IPs, security group
// and tags, and no dynamic IP.
func (c *Client) CreateServer(ctx context.Context, spec provision.ServerSpec) (provision.Server, error) {
	root := &instance.VolumeServerTemplate{Name: &spec.RootVolumeName, VolumeType: instance.VolumeVolumeType(spec.RootVolumeType)}
	if spec.RootVolumeSize > 0 {
		size := scw.Size(spec.RootVolumeSize)
		root.Size = &size
	}
	req := &instance.CreateServerRequest{
		Zone: scw.Zone(spec.Zone), Name: spec.Name, CommercialType: spec.CommercialType, Image: &spec.ImageID,
		Volumes: map[string]*instance.VolumeServerTemplate{"0": root}, DynamicIPRequired: scw.BoolPtr(false),
		Project: &c.project, Tags: tagList(spec.Tags),
	}
	if len(spec.IPs) > 0 {
		ips := slices.Clone(spec.IPs)
		req.PublicIPs = &ips
	}
	if spec.SecurityGroup != "" {
		req.SecurityGroup = &spec.SecurityGroup
	}
	resp, err := c.inst.CreateServer(req, c.opts(ctx, false)...)
	if err != nil {
		return provision.Server{}, apiErr(err)
	}
	return toServer(resp.Server), nil
}

// UpdateServer implements provision.Scaleway.
func (c *Client) UpdateServer(ctx context.Context, zone, id string, u provision.ServerUpdate) (provision.Server, error) {
	req := &instance.UpdateServerRequest{Zone: scw.Zone(zone), ServerID: id, Name: u.Name, Tags: u.Tags}
	if u.SecurityGroup != nil {
		req.SecurityGroup = &instance.SecurityGroupTemplate{ID: *u.SecurityGroup}
	}
	resp, err := c.inst.UpdateServer(req, c.opts(ctx, false)...)
	if err != nil {
		return provision.Server{}, apiErr(err)
	}
	return toServer(resp.Server), nil
}

// ServerAction implements provision.Scaleway.
func (c *Client) ServerAction(ctx context.Context, zone, id, action string) error {
	_, err := c.inst.ServerAction(&instance.ServerActionRequest{Zone: scw.Zone(zone), ServerID: id, Action: instance.ServerAction(action)}, c.opts(ctx, false)...)
	return apiErr(err)
}

// DeleteServer implements provision.Scaleway.
func (c *Client) DeleteServer(ctx context.Context, zone, id string) error {
	err := apiErr(c.inst.DeleteServer(&instance.DeleteServerRequest{Zone: scw.Zone(zone), ServerID: id}, c.opts(ctx, false)...))
	if gone(err) {
		return nil
	}
	return err
}

// RenameVolume implements provision.Scaleway (local volumes only).
func (c *Client) RenameVolume(ctx context.Context, zone string, v provision.Volume, name string) error {
	if v.Type == "sbs_volume" {
		_, err := c.block.UpdateVolume(&block.UpdateVolumeRequest{Zone: scw.Zone(zone), VolumeID: v.ID, Name: &name}, c.opts(ctx, false)...)
		return apiErr(err)
	}
	_, err := c.inst.UpdateVolume(&instance.UpdateVolumeRequest{Zone: scw.Zone(zone), VolumeID: v.ID, Name: &name}, c.opts(ctx, false)...)
	return apiErr(err)
}

// DeleteVolume implements provision.Scaleway.
func (c *Client) DeleteVolume(ctx context.Context, zone string, v provision.Volume) error {
	var err error
	if v.Type == "sbs_volume" {
		err = c.block.DeleteVolume(&block.DeleteVolumeRequest{Zone: scw.Zone(zone), VolumeID: v.ID}, c.opts(ctx, false)...)
	} else {
		err = c.inst.DeleteVolume(&instance.DeleteVolumeRequest{Zone: scw.Zone(zone), VolumeID: v.ID}, c.opts(ctx, false)...)
	}
	if err = apiErr(err); gone(err) {
		return nil
	}
	return err
}

// ---- IPs ----

func toIP(ip *instance.IP) provision.IP {
	out := provision.IP{ID: ip.ID, Tags: ip.Tags}
	if ip.Type == instance.IPTypeRoutedIPv6 {
		out.Family = provision.IPv6
		if p, ok := prefixOf(ip.Prefix); ok {
			out.Prefix = p
		}
	} else {
		out.Family = provision.IPv4
		if a, ok := netip.AddrFromSlice(ip.Address); ok {
			out.Address = a.Unmap()
		}
	}
	if ip.Server != nil {
		out.Server = ip.Server.ID
	}
	return out
}

// IPs implements provision.Scaleway.
func (c *Client) IPs(ctx context.Context, zone string, tags []string) ([]provision.IP, error) {
	resp, err := c.inst.ListIPs(&instance.ListIPsRequest{Zone: scw.Zone(zone), Project: &c.project, Tags: tagList(tags)}, c.opts(ctx, true)...)
	if err != nil {
		return nil, apiErr(err)
	}
	out := make([]provision.IP, 0, len(resp.IPs))
	for _, ip := range resp.IPs {
		out = append(out, toIP(ip))
	}
	return out, nil
}

// CreateIP implements provision.Scaleway.
func (c *Client) CreateIP(ctx context.Context, zone string, family provision.Family, tags []string) (provision.IP, error) {
	typ := instance.IPTypeRoutedIPv4
	if family == provision.IPv6 {
		typ = instance.IPTypeRoutedIPv6
	}
	resp, err := c.inst.CreateIP(&instance.CreateIPRequest{Zone: scw.Zone(zone), Project: &c.project, Tags: tagList(tags), Type: typ}, c.opts(ctx, false)...)
	if err != nil {
		return provision.IP{}, apiErr(err)
	}
	return toIP(resp.IP), nil
}

// AttachIP implements provision.Scaleway.
func (c *Client) AttachIP(ctx context.Context, zone, ipID, serverID string) error {
	srv := &instance.NullableStringValue{Value: serverID}
	if serverID == "" {
		srv = &instance.NullableStringValue{Null: true}
	}
	_, err := c.inst.UpdateIP(&instance.UpdateIPRequest{Zone: scw.Zone(zone), IP: ipID, Server: srv}, c.opts(ctx, false)...)
	return apiErr(err)
}

// DeleteIP implements provision.Scaleway.
func (c *Client) DeleteIP(ctx context.Context, zone, id string) error {
	err := apiErr(c.inst.DeleteIP(&instance.DeleteIPRequest{Zone: scw.Zone(zone), IP: id}, c.opts(ctx, false)...))
	if gone(err) {
		return nil
	}
	return err
}

// ---- images and snapshots ----

// Backup implements provision.Scaleway.
func (c *Client) Backup(ctx context.Context, zone, serverID, name string) (string, error) {
	resp, err := c.inst.ServerAction(&instance.ServerActionRequest{Zone: scw.Zone(zone), ServerID: serverID,
		Action: instance.ServerActionBackup, Name: &name}, c.opts(ctx, false)...)
	if err != nil {
		return "", apiErr(err)
	}
	if resp.Task == nil {
		return "", errors.New("backup: the API returned no task")
	}
	id, ok := strings.CutPrefix(resp.Task.HrefResult, "/images/")
	if !ok || id == "" {
		return "", fmt.Errorf("backup: unexpected task result %q", resp.Task.HrefResult)
	}
	return id, nil
}

func toImage(im *instance.Image) provision.Image {
	out := provision.Image{ID: im.ID, Name: im.Name, Zone: string(im.Zone), Tags: im.Tags, FromServer: im.FromServer}
	if im.CreationDate != nil {
		out.Created = *im.CreationDate
	}
	if im.RootVolume != nil {
		out.Snapshots = append(out.Snapshots, provision.SnapshotRef{ID: im.RootVolume.ID, VolumeType: string(im.RootVolume.VolumeType)})
	}
	keys := make([]string, 0, len(im.ExtraVolumes))
	for k := range im.ExtraVolumes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	for _, k := range keys {
		if v := im.ExtraVolumes[k]; v != nil {
			out.Snapshots = append(out.Snapshots, provision.SnapshotRef{ID: v.ID, VolumeType: string(v.VolumeType)})
		}
	}
	return out
}

// Images implements provision.Scaleway (private images only).
func (c *Client) Images(ctx context.Context, zone string, tags []string) ([]provision.Image, error) {
	req := &instance.ListImagesRequest{Zone: scw.Zone(zone), Project: &c.project, Public: scw.BoolPtr(false)}
	if len(tags) > 0 {
		t := strings.Join(tags, ",")
		req.Tags = &t
	}
	resp, err := c.inst.ListImages(req, c.opts(ctx, true)...)
	if err != nil {
		return nil, apiErr(err)
	}
	out := make([]provision.Image, 0, len(resp.Images))
	for _, im := range resp.Images {
		out = append(out, toImage(im))
	}
	return out, nil
}

// Image implements provision.Scaleway.
func (c *Client) Image(ctx context.Context, zone, id string) (provision.Image, error) {
	resp, err := c.inst.GetImage(&instance.GetImageRequest{Zone: scw.Zone(zone), ImageID: id}, c.opts(ctx, false)...)
	if err != nil {
		return provision.Image{}, apiErr(err)
	}
	return toImage(resp.Image), nil
}

// TagImage implements provision.Scaleway.
func (c *Client) TagImage(ctx context.Context, zone, id string, tags []string) error {
	t := slices.Clone(tags)
	_, err := c.inst.UpdateImage(&instance.UpdateImageRequest{Zone: scw.Zone(zone), ImageID: id, Tags: &t}, c.opts(ctx, false)...)
	return apiErr(err)
}

// DeleteImage implements provision.Scaleway.
func (c *Client) DeleteImage(ctx context.Context, zone, id string) error {
	err := apiErr(c.inst.DeleteImage(&instance.DeleteImageRequest{Zone: scw.Zone(zone), ImageID: id}, c.opts(ctx, false)...))
	if gone(err) {
		return nil
	}
	return err
}

func isBlock(ref provision.SnapshotRef) bool { return ref.VolumeType == "sbs_snapshot" }

// Snapshot implements provision.Scaleway.
func (c *Client) Snapshot(ctx context.Context, zone string, ref provision.SnapshotRef) (provision.Snapshot, error) {
	if isBlock(ref) {
		s, err := c.block.GetSnapshot(&block.GetSnapshotRequest{Zone: scw.Zone(zone), SnapshotID: ref.ID}, c.opts(ctx, false)...)
		if err != nil {
			return provision.Snapshot{}, apiErr(err)
		}
		state := string(s.Status)
		if state == "in_use" {
			state = provision.SnapshotAvailable
		}
		return provision.Snapshot{ID: s.ID, Name: s.Name, State: state, Size: int64(s.Size), Tags: s.Tags}, nil
	}
	resp, err := c.inst.GetSnapshot(&instance.GetSnapshotRequest{Zone: scw.Zone(zone), SnapshotID: ref.ID}, c.opts(ctx, false)...)
	if err != nil {
		return provision.Snapshot{}, apiErr(err)
	}
	s := resp.Snapshot
	return provision.Snapshot{ID: s.ID, Name: s.Name, State: string(s.State), Size: int64(s.Size), Tags: s.Tags}, nil
}

// TagSnapshot implements provision.Scaleway.
func (c *Client) TagSnapshot(ctx context.Context, zone string, ref provision.SnapshotRef, tags []string) error {
	t := slices.Clone(tags)
	var err error
	if isBlock(ref) {
		_, err = c.block.UpdateSnapshot(&block.UpdateSnapshotRequest{Zone: scw.Zone(zone), SnapshotID: ref.ID, Tags: &t}, c.opts(ctx, false)...)
	} else {
		_, err = c.inst.UpdateSnapshot(&instance.UpdateSnapshotRequest{Zone: scw.Zone(zone), SnapshotID: ref.ID, Tags: &t}, c.opts(ctx, false)...)
	}
	return apiErr(err)
}

// DeleteSnapshot implements provision.Scaleway.
func (c *Client) DeleteSnapshot(ctx context.Context, zone string, ref provision.SnapshotRef) error {
	var err error
	if isBlock(ref) {
		err = c.block.DeleteSnapshot(&block.DeleteSnapshotRequest{Zone: scw.Zone(zone), SnapshotID: ref.ID}, c.opts(ctx, false)...)
	} else {
		err = c.inst.DeleteSnapshot(&instance.DeleteSnapshotRequest{Zone: scw.Zone(zone), SnapshotID: ref.ID}, c.opts(ctx, false)...)
	}
	if err = apiErr(err); gone(err) {
		return nil
	}
	return err
}

var _ provision.Scaleway = (*Client)(nil)
