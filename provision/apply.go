package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/internal/task"
)

// ErrBlocked is returned by Apply when the plan has blocked changes.
var ErrBlocked = errors.New("the plan has blocked changes (see their notes); nothing was changed")

// CloudTarget is the task target of what is shared by hosts (SSH keys,
// security groups).
const CloudTarget = "cloud"

// Apply makes the plan's changes: shared resources first (SSH keys, so
// they are installed when servers boot, and security groups), then every
// host in parallel: its IPs, its server, power-on, its DNS records while it
// boots, then the wait until it runs. Each step is reported as a task
// (target "cloud" or the host). A step that finds nothing to do makes no
// API call, so applying a converged plan only read. It returns the hosts'
// outputs, also when it fails or is interrupted part-way (for what is
// known); the next Plan starts from whatever was done.
func (p *Provisioner) Apply(ctx context.Context, pl *Plan) (Outputs, error) {
	if pl.Blocked() {
		return pl.Outputs(), ErrBlocked
	}
	runner := &task.Runner{Reporter: p.rep, Log: p.log}
	shared := task.Target{Name: CloudTarget}
	if pl.withKeys && len(p.inv.SSHKeys) > 0 {
		shared.Steps = append(shared.Steps, task.Step{Name: "ssh keys", Run: func(ctx context.Context, _ task.Env) (task.Result, error) {
			return p.applyKeys(ctx, pl)
		}})
	}
	for _, gp := range pl.groups {
		shared.Steps = append(shared.Steps, task.Step{Name: "security group " + gp.spec.Spec.Name, Run: func(ctx context.Context, _ task.Env) (task.Result, error) {
			return p.applyGroup(ctx, pl, gp)
		}})
	}
	if len(shared.Steps) > 0 {
		if err := runner.Run(ctx, []task.Target{shared}); err != nil {
			return pl.Outputs(), err
		}
	}

	var mu sync.Mutex
	outs := map[string]HostOutput{}
	var targets []task.Target
	for _, hp := range pl.hosts {
		hr := &hostRun{p: p, pl: pl, hp: hp, server: hp.server}
		targets = append(targets, task.Target{Name: hp.spec.Name, Steps: hr.steps(), Close: func() {
			if hr.server != nil {
				mu.Lock()
				outs[hp.spec.Name] = hp.output(*hr.server, hr.created)
				mu.Unlock()
			}
		}})
	}
	err := runner.Run(ctx, targets)
	var out Outputs
	for _, hp := range pl.hosts {
		if o, ok := outs[hp.spec.Name]; ok {
			out.Hosts = append(out.Hosts, o)
		}
	}
	return out, err
}

func (p *Provisioner) applyKeys(ctx context.Context, pl *Plan) (task.Result, error) {
	if len(pl.keys) == 0 {
		return task.Unchanged(), nil
	}
	var names []string
	for _, k := range pl.keys {
		_, err := createOnce(ctx, p, "SSH key "+k.Name, func() (SSHKey, error) {
			return p.sc.CreateSSHKey(ctx, k.Name, k.PublicKey)
		}, func() (SSHKey, bool, error) {
			have, err := p.sc.SSHKeys(ctx)
			if err != nil {
				return SSHKey{}, false, err
			}
			for _, h := range have {
				if normaliseKey(h.PublicKey) == normaliseKey(k.PublicKey) {
					return h, true, nil
				}
			}
			return SSHKey{}, false, nil
		})
		if err != nil {
			return task.Result{}, err
		}
		names = append(names, k.Name)
	}
	return task.Changedf("registered %s", strings.Join(names, ", ")), nil
}

func (p *Provisioner) applyGroup(ctx context.Context, pl *Plan, gp *groupPlan) (task.Result, error) {
	spec, zone := gp.spec.Spec, gp.spec.Zone
	var did []string
	if gp.actual == nil {
		g, err := createOnce(ctx, p, "security group "+spec.Name, func() (SecurityGroup, error) {
			return p.sc.CreateSecurityGroup(ctx, zone, spec)
		}, func() (SecurityGroup, bool, error) {
			sgs, err := p.sc.SecurityGroups(ctx, zone)
			if err != nil {
				return SecurityGroup{}, false, err
			}
			for _, g := range sgs {
				if g.Name == spec.Name && hasTags(g.Tags, spec.Tags) {
					return g, true, nil
				}
			}
			return SecurityGroup{}, false, nil
		})
		if err != nil {
			return task.Result{}, err
		}
		gp.actual, gp.id = &g, g.ID
		did = append(did, "created in "+zone)
		p.checkSMTP(g, spec)
	} else if gp.update {
		g, err := p.sc.UpdateSecurityGroup(ctx, zone, gp.actual.ID, spec)
		if err != nil {
			return task.Result{}, fmt.Errorf("update security group %s: %w", spec.Name, err)
		}
		did = append(did, "policies updated")
		p.checkSMTP(g, spec)
	}
	if gp.rules != nil {
		if err := p.sc.SetRules(ctx, zone, gp.id, gp.rules); err != nil {
			return task.Result{}, fmt.Errorf("set the rules of security group %s: %w", spec.Name, err)
		}
		did = append(did, fmt.Sprintf("%d rules set", len(gp.rules)))
	}
	if len(did) == 0 {
		return task.Unchanged(), nil
	}
	return task.Changedf("%s", strings.Join(did, ", ")), nil
}

// checkSMTP warns when Scaleway kept SMTP blocked although the inventory
// asked otherwise: the account needs to be allowed to send mail.
func (p *Provisioner) checkSMTP(g SecurityGroup, spec SecurityGroupSpec) {
	if g.EnableDefaultSecurity && !spec.EnableDefaultSecurity {
		p.rep.Message(report.Warning, fmt.Sprintf("security group %s: Scaleway kept outbound SMTP blocked; the account must be verified and allowed to send mail (Scaleway console: Instances › Security groups › Enable SMTP)", spec.Name))
	}
}

// hostRun is one host's apply: what it learns as steps run.
type hostRun struct {
	p       *Provisioner
	pl      *Plan
	hp      *hostPlan
	server  *Server
	created bool
	started bool
}

func (hr *hostRun) steps() []task.Step {
	return []task.Step{
		{Name: "ips", Run: hr.ips},
		{Name: "server", Run: hr.serverStep},
		{Name: "power on", Run: hr.powerOn},
		{Name: "dns records", Run: hr.records},
		{Name: "wait running", Run: hr.waitRunning},
	}
}

func (hr *hostRun) ips(ctx context.Context, _ task.Env) (task.Result, error) {
	p, hp := hr.p, hr.hp
	zone, host := hp.spec.Zone, hp.spec.Name
	var did []string
	for _, ip := range hp.deleteIPs {
		if err := p.sc.DeleteIP(ctx, zone, ip.ID); err != nil {
			return task.Result{}, fmt.Errorf("delete IP %s of %s: %w", ip, host, err)
		}
		did = append(did, "deleted "+ip.String())
	}
	known := []string{}
	for _, ip := range hp.ips {
		known = append(known, ip.ID)
	}
	for _, ip := range hp.deleteIPs {
		known = append(known, ip.ID)
	}
	tags := OwnerTags(p.inv.Name, host)
	for _, fam := range []Family{IPv4, IPv6} {
		if !hp.createIP[fam] {
			continue
		}
		ip, err := createOnce(ctx, p, fmt.Sprintf("%s of %s", fam, host), func() (IP, error) {
			return p.sc.CreateIP(ctx, zone, fam, tags)
		}, func() (IP, bool, error) {
			ips, err := p.sc.IPs(ctx, zone, tags)
			if err != nil {
				return IP{}, false, err
			}
			for _, ip := range ips {
				if ip.Family == fam && !slices.Contains(known, ip.ID) {
					return ip, true, nil
				}
			}
			return IP{}, false, nil
		})
		if err != nil {
			return task.Result{}, err
		}
		hp.ips[fam] = &ip
		hp.createIP[fam] = false
		known = append(known, ip.ID)
		did = append(did, fmt.Sprintf("created %s %s", fam, ip))
	}
	if len(did) == 0 {
		return task.Unchanged(), nil
	}
	return task.Changedf("%s", strings.Join(did, ", ")), nil
}

func (hr *hostRun) serverStep(ctx context.Context, _ task.Env) (task.Result, error) {
	p, hp := hr.p, hr.hp
	h := hp.spec
	if hp.create {
		spec := ServerSpec{Zone: h.Zone, Name: h.Name, CommercialType: h.Type, ImageID: hp.imageID,
			RootVolumeName: h.RootVolumeName, RootVolumeSize: h.RootVolumeSize, RootVolumeType: hp.rootType,
			SecurityGroup: hp.group.id, Tags: h.Tags}
		for _, fam := range []Family{IPv4, IPv6} {
			if ip := hp.ips[fam]; ip != nil {
				spec.IPs = append(spec.IPs, ip.ID)
			}
		}
		owner := OwnerTags(p.inv.Name, h.Name)
		s, err := createOnce(ctx, p, "server "+h.Name, func() (Server, error) {
			return p.sc.CreateServer(ctx, spec)
		}, func() (Server, bool, error) {
			ss, err := p.sc.Servers(ctx, h.Zone, owner)
			if err != nil || len(ss) == 0 {
				return Server{}, false, err
			}
			return ss[0], true, nil
		})
		if err != nil {
			return task.Result{}, err
		}
		hr.server, hr.created = &s, true
		hp.create = false
		for _, ip := range hp.ips {
			ip.Server = s.ID
		}
		return task.Changedf("created %s (%s)", s.ID, h.Type), nil
	}
	s := *hr.server
	var did []string
	if hp.update != nil {
		u := *hp.update
		if u.SecurityGroup != nil {
			id := hp.group.id
			u.SecurityGroup = &id
		}
		ns, err := p.sc.UpdateServer(ctx, h.Zone, s.ID, u)
		if err != nil {
			return task.Result{}, fmt.Errorf("update server %s: %w", h.Name, err)
		}
		s = ns
		did = append(did, "updated")
	}
	if hp.rename && len(s.Volumes) > 0 {
		if err := p.sc.RenameVolume(ctx, h.Zone, s.Volumes[0], h.RootVolumeName); err != nil {
			return task.Result{}, fmt.Errorf("rename the root volume of %s: %w", h.Name, err)
		}
		did = append(did, "root volume renamed "+h.RootVolumeName)
	}
	attached := false
	for _, fam := range []Family{IPv4, IPv6} {
		ip := hp.ips[fam]
		if ip == nil || ip.Server == s.ID {
			continue
		}
		if err := p.sc.AttachIP(ctx, h.Zone, ip.ID, s.ID); err != nil {
			return task.Result{}, fmt.Errorf("attach %s %s to %s: %w", fam, ip, h.Name, err)
		}
		ip.Server = s.ID
		attached = true
		did = append(did, fmt.Sprintf("attached %s %s", fam, ip))
	}
	if attached {
		ns, err := p.sc.Server(ctx, h.Zone, s.ID)
		if err != nil {
			return task.Result{}, fmt.Errorf("read server %s: %w", h.Name, err)
		}
		s = ns
	}
	hr.server = &s
	if len(did) == 0 {
		return task.Unchanged(), nil
	}
	return task.Changedf("%s", strings.Join(did, ", ")), nil
}

func (hr *hostRun) powerOn(ctx context.Context, _ task.Env) (task.Result, error) {
	p, hp, s := hr.p, hr.hp, hr.server
	if !hp.powerOn || s == nil {
		return task.Unchanged(), nil
	}
	err := p.sc.ServerAction(ctx, s.Zone, s.ID, "poweron")
	if err != nil {
		// A lost answer, or a state that moved meanwhile: look before failing.
		cur, rerr := p.sc.Server(ctx, s.Zone, s.ID)
		if rerr != nil || (cur.State != StateStarting && cur.State != StateRunning) {
			return task.Result{}, fmt.Errorf("power on %s: %w", hp.spec.Name, err)
		}
	}
	hr.started = true
	hp.powerOn = false
	return task.Changedf("powering on"), nil
}

func (hr *hostRun) records(ctx context.Context, _ task.Env) (task.Result, error) {
	p, hp := hr.p, hr.hp
	// Hosts run in parallel and may share zones: one host's records at a time.
	hr.pl.zoneMu.Lock()
	defer hr.pl.zoneMu.Unlock()
	if len(hp.spec.DNS) == 0 && !hr.ownsRecords() {
		return task.Unchanged(), nil
	}
	if hr.server == nil {
		return task.Result{}, errors.New("no server to point records at")
	}
	v4, v6 := hp.addresses(*hr.server)
	if hp.spec.IPv6 && !v6.IsValid() && hr.created {
		// The create answer may predate the address; read it again.
		s, err := p.sc.Server(ctx, hr.server.Zone, hr.server.ID)
		if err != nil {
			return task.Result{}, fmt.Errorf("read server %s: %w", hp.spec.Name, err)
		}
		hr.server = &s
		v4, v6 = hp.addresses(s)
	}
	if (hp.spec.IPv4 && !v4.IsValid()) || (hp.spec.IPv6 && !v6.IsValid()) {
		return task.Result{}, fmt.Errorf("server %s does not report its addresses yet (IPv4 %v, IPv6 %v)", hp.spec.Name, v4, v6)
	}
	ops, blocked, _ := p.recordOps(hr.pl.zones, hp.spec, v4, v6)
	if len(blocked) > 0 {
		return task.Result{}, fmt.Errorf("%s %s: %s", blocked[0].Kind, blocked[0].Name, blocked[0].Note)
	}
	var did []string
	for _, op := range ops {
		if err := hr.p.applyRecord(ctx, op); err != nil {
			return task.Result{}, err
		}
		c := op.change()
		did = append(did, fmt.Sprintf("%s %s %s", c.Action.Symbol(), c.Kind, c.Name))
	}
	if len(did) == 0 {
		return task.Unchanged(), nil
	}
	return task.Changedf("%s", strings.Join(did, ", ")), nil
}

// ownsRecords reports whether the zones read at plan time hold records of
// this host (to be removed when it has no names any more).
func (hr *hostRun) ownsRecords() bool {
	marker := RecordComment(hr.p.inv.Name, hr.hp.spec.Name)
	for _, z := range hr.pl.zones {
		if slices.ContainsFunc(z.records, func(r Record) bool { return r.Comment == marker }) {
			return true
		}
	}
	return false
}

func (p *Provisioner) applyRecord(ctx context.Context, op recordOp) error {
	z := op.zone
	switch op.action {
	case report.Create:
		rec, err := createOnce(ctx, p, fmt.Sprintf("%s %s", op.rec.Type, op.rec.Name), func() (Record, error) {
			return p.dns.CreateRecord(ctx, z.ID, op.rec)
		}, func() (Record, bool, error) {
			recs, err := p.dns.Records(ctx, z.ID)
			if err != nil {
				return Record{}, false, err
			}
			for _, r := range recs {
				if strings.EqualFold(r.Name, op.rec.Name) && r.Type == op.rec.Type && r.Comment == op.rec.Comment {
					return r, true, nil
				}
			}
			return Record{}, false, nil
		})
		if err != nil {
			return err
		}
		z.records = append(z.records, rec)
	case report.Update:
		rec, err := p.dns.UpdateRecord(ctx, z.ID, op.old.ID, op.rec)
		if err != nil {
			return fmt.Errorf("update %s %s: %w", op.rec.Type, op.rec.Name, err)
		}
		for i := range z.records {
			if z.records[i].ID == rec.ID {
				z.records[i] = rec
			}
		}
	case report.Delete:
		if err := p.dns.DeleteRecord(ctx, z.ID, op.old.ID); err != nil {
			return fmt.Errorf("delete %s %s: %w", op.old.Type, op.old.Name, err)
		}
		z.records = slices.DeleteFunc(z.records, func(r Record) bool { return r.ID == op.old.ID })
	}
	return nil
}

func (hr *hostRun) waitRunning(ctx context.Context, _ task.Env) (task.Result, error) {
	p, hp := hr.p, hr.hp
	s := hr.server
	if s == nil || (!hp.wait && s.State == StateRunning) {
		return task.Unchanged(), nil
	}
	var last Server
	err := p.wait(ctx, hp.spec.Name, "waiting for the server to be running", func() (bool, string, error) {
		cur, err := p.sc.Server(ctx, s.Zone, s.ID)
		if err != nil {
			return false, "", fmt.Errorf("read server %s: %w", hp.spec.Name, err)
		}
		last = cur
		switch cur.State {
		case StateRunning:
			return true, cur.State, nil
		case StateStarting:
			return false, describeState(cur), nil
		}
		if hr.started {
			return false, "", fmt.Errorf("server %s is %s instead of booting (%s)", hp.spec.Name, cur.State, cur.StateDetail)
		}
		return false, describeState(cur), nil
	})
	if err != nil {
		return task.Result{}, err
	}
	hr.server = &last
	hp.wait = false
	return task.Changedf("running"), nil
}

func describeState(s Server) string {
	if s.StateDetail != "" && s.StateDetail != s.State {
		return s.State + " (" + s.StateDetail + ")"
	}
	return s.State
}
