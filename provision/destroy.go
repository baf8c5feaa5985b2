package provision

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/internal/task"
	"github.com/lghs/lghsctl/inventory"
)

// DestroyOptions say what destroy may delete besides a host's server, IPs,
// records and unused security group.
type DestroyOptions struct {
	// WithBackups also deletes the hosts' backups (images and snapshots).
	WithBackups bool
	// Force allows deleting the last backup of a host.
	Force bool
}

// DestroyPlan is what Destroy would delete, and what it would leave.
type DestroyPlan struct {
	Changes []report.Change
	// Leftovers are what stays, and why (backups kept, a group still used,
	// records lghsctl does not own at the hosts' names, project SSH keys).
	Leftovers []string
	hosts     []*destroyHost
	groups    []destroyGroup
}

// Empty reports whether there is nothing to delete.
func (dp *DestroyPlan) Empty() bool {
	return !slices.ContainsFunc(dp.Changes, func(c report.Change) bool { return c.Action == report.Delete })
}

// Addresses are, per host, the public addresses of the servers the plan
// deletes: their SSH host keys pinned in known_hosts must go with them, or
// a new server given the same address would be refused as a changed key.
func (dp *DestroyPlan) Addresses() map[string][]netip.Addr {
	m := map[string][]netip.Addr{}
	for _, dh := range dp.hosts {
		for _, srv := range dh.servers {
			for _, ip := range srv.IPs {
				if ip.Address.IsValid() {
					m[dh.name] = append(m[dh.name], ip.Address)
				}
			}
		}
	}
	return m
}

// Blocked reports whether the plan has refused deletions.
func (dp *DestroyPlan) Blocked() bool {
	return slices.ContainsFunc(dp.Changes, func(c report.Change) bool { return c.Action == report.Blocked })
}

type destroyHost struct {
	name    string
	servers []Server
	ips     []IP
	records []zoneRecord
	backups []Backup
}

type zoneRecord struct {
	zone *zoneState
	rec  Record
}

type destroyGroup struct {
	zone string
	g    SecurityGroup
}

// PlanDestroy finds what lghsctl made for hosts (every Scaleway host of
// the inventory when empty; a clone made by snapshot restore is named
// explicitly): the DNS records carrying the host's comment, its servers and
// their volumes, its IPs, the security groups no server will use any more,
// and (with WithBackups) its backups. Only resources with lghsctl's marks
// are considered. It makes only read calls.
func (p *Provisioner) PlanDestroy(ctx context.Context, hosts []string, opts DestroyOptions) (*DestroyPlan, error) {
	all := len(hosts) == 0
	if all {
		for _, h := range p.inv.Hosts {
			if h.Provider == "scaleway" {
				hosts = append(hosts, h.Name)
			}
		}
	}
	dp := &DestroyPlan{}
	zones := map[string]*zoneState{}
	if p.dns != nil && len(p.inv.DNS.Zones) > 0 {
		if err := p.dns.Verify(ctx); err != nil {
			return nil, fmt.Errorf("check the DNS token (%s): %w", p.inv.DNS.Token, err)
		}
		pl := &Plan{zones: zones}
		var names []string
		for _, z := range p.inv.DNS.Zones {
			names = append(names, strings.TrimSuffix(strings.ToLower(z.Name), "."))
		}
		problems, err := p.readZones(ctx, names, pl)
		if err != nil {
			return nil, err
		}
		if len(problems) > 0 {
			return nil, problems
		}
	}
	destroyed := map[string]bool{} // server ids
	for _, host := range hosts {
		dh := &destroyHost{name: host}
		marker := RecordComment(p.inv.Name, host)
		for _, zn := range sortedKeys(zones) {
			z := zones[zn]
			for _, r := range z.records {
				if r.Comment == marker {
					dh.records = append(dh.records, zoneRecord{z, r})
					dp.Changes = append(dp.Changes, report.Change{Action: report.Delete, Kind: r.Type, Name: r.Name, Detail: r.Content})
				}
			}
		}
		for _, zone := range p.zonesOf() {
			ss, err := p.sc.Servers(ctx, zone, OwnerTags(p.inv.Name, host))
			if err != nil {
				return nil, fmt.Errorf("list the servers of %s in %s: %w", host, zone, authHint(err))
			}
			for _, s := range ss {
				dh.servers = append(dh.servers, s)
				destroyed[s.ID] = true
				dp.Changes = append(dp.Changes, report.Change{Action: report.Delete, Kind: "server", Name: s.Name,
					Detail: fmt.Sprintf("%s %s, %s, %s", s.CommercialType, zone, s.State, s.ID)})
				for _, v := range s.Volumes {
					dp.Changes = append(dp.Changes, report.Change{Action: report.Delete, Kind: "volume", Name: v.Name,
						Detail: fmt.Sprintf("%s %s of %s", v.Type, HumanSize(v.Size), s.Name)})
				}
			}
			ips, err := p.sc.IPs(ctx, zone, OwnerTags(p.inv.Name, host))
			if err != nil {
				return nil, fmt.Errorf("list the IPs of %s in %s: %w", host, zone, authHint(err))
			}
			for _, ip := range ips {
				dh.ips = append(dh.ips, ip)
				dp.Changes = append(dp.Changes, report.Change{Action: report.Delete, Kind: "ip", Name: host, Detail: fmt.Sprintf("%s %s", ip.Family, ip)})
			}
		}
		backups, err := p.Backups(ctx, host)
		if err != nil {
			return nil, err
		}
		switch {
		case len(backups) > 0 && opts.WithBackups && !opts.Force:
			dp.Changes = append(dp.Changes, report.Change{Action: report.Blocked, Kind: "image", Name: backups[len(backups)-1].Name,
				Note: fmt.Sprintf("this would delete the last backup of %s (%d in all): add --force to delete it too, or drop --with-backups to keep them", host, len(backups))})
		case len(backups) > 0 && opts.WithBackups:
			dh.backups = backups
			for _, b := range backups {
				dp.Changes = append(dp.Changes, report.Change{Action: report.Delete, Kind: "image", Name: b.Name,
					Detail: fmt.Sprintf("backup of %s, %s, %d snapshot(s)", host, HumanSize(b.Size), len(b.Snapshots))})
			}
		case len(backups) > 0:
			var names []string
			for _, b := range backups {
				names = append(names, b.Name)
			}
			dp.Leftovers = append(dp.Leftovers, fmt.Sprintf("backups of %s kept: %s (lghsctl snapshot list; destroy --with-backups --force deletes them)", host, strings.Join(names, ", ")))
		}
		// Records at the host's names that lghsctl does not own stay.
		if idx := slices.IndexFunc(p.inv.Hosts, func(h inventory.Host) bool { return h.Name == host }); idx >= 0 {
			for _, d := range p.inv.Hosts[idx].DNS {
				z := zones[p.inv.ZoneOf(d.Name)]
				if z == nil {
					continue
				}
				for _, r := range z.records {
					if strings.EqualFold(r.Name, d.Name) && r.Comment != marker {
						dp.Leftovers = append(dp.Leftovers, fmt.Sprintf("%s %s (%s) is not managed by lghsctl: left as it is", r.Type, r.Name, r.Content))
					}
				}
			}
		}
		dp.hosts = append(dp.hosts, dh)
	}

	// Security groups: lghsctl's, deleted when no server will use them and
	// no remaining host of the inventory needs them.
	kept := map[string]bool{} // zone/name needed by hosts not destroyed
	for _, h := range p.inv.Hosts {
		if h.Provider == "scaleway" && !slices.Contains(hosts, h.Name) {
			kept[h.Zone+"/"+h.SecurityGroup] = true
		}
	}
	for _, zone := range p.zonesOf() {
		sgs, err := p.sc.SecurityGroups(ctx, zone)
		if err != nil {
			return nil, fmt.Errorf("list security groups in %s: %w", zone, authHint(err))
		}
		for _, g := range sgs {
			if !slices.Contains(g.Tags, TagOwner+p.inv.Name) {
				continue
			}
			var users []string
			for _, id := range g.Servers {
				if !destroyed[id] {
					users = append(users, id)
				}
			}
			mine := false
			for _, dh := range dp.hosts {
				for _, s := range dh.servers {
					mine = mine || s.SecurityGroup == g.ID
				}
			}
			switch {
			case len(users) > 0:
				if mine {
					dp.Leftovers = append(dp.Leftovers, fmt.Sprintf("security group %s kept: %d other server(s) use it", g.Name, len(users)))
				}
			case kept[zone+"/"+g.Name]:
				if mine {
					dp.Leftovers = append(dp.Leftovers, fmt.Sprintf("security group %s kept: other hosts of the inventory use it", g.Name))
				}
			default:
				dp.groups = append(dp.groups, destroyGroup{zone, g})
				dp.Changes = append(dp.Changes, report.Change{Action: report.Delete, Kind: "security group", Name: g.Name, Detail: zone})
			}
		}
	}
	if !dp.Empty() && len(p.inv.SSHKeys) > 0 {
		dp.Leftovers = append(dp.Leftovers, "project SSH keys kept: they are the project's, other servers may use them")
	}
	return dp, nil
}

// Destroy deletes what the plan lists, in order: DNS records (so names stop
// pointing at addresses about to be released), servers (terminated when
// running, which deletes their local volumes; deleted with their volumes
// when stopped), IPs, unused security groups, then backups. Each host is a
// task target, groups are on "cloud". Interrupted, it leaves marked
// resources that the next PlanDestroy finds.
func (p *Provisioner) Destroy(ctx context.Context, dp *DestroyPlan) error {
	if dp.Blocked() {
		return ErrBlocked
	}
	runner := &task.Runner{Reporter: p.rep, Log: p.log}
	var targets []task.Target
	for _, dh := range dp.hosts {
		if len(dh.records)+len(dh.servers)+len(dh.ips)+len(dh.backups) == 0 {
			continue
		}
		targets = append(targets, task.Target{Name: dh.name, Steps: []task.Step{
			{Name: "delete dns records", Run: func(ctx context.Context, _ task.Env) (task.Result, error) {
				for _, zr := range dh.records {
					if err := p.dns.DeleteRecord(ctx, zr.zone.ID, zr.rec.ID); err != nil {
						return task.Result{}, fmt.Errorf("delete %s %s: %w", zr.rec.Type, zr.rec.Name, err)
					}
				}
				return changedIf(len(dh.records), "%d record(s) deleted", len(dh.records)), nil
			}},
			{Name: "delete server", Run: func(ctx context.Context, _ task.Env) (task.Result, error) {
				for _, s := range dh.servers {
					if err := p.deleteServer(ctx, dh.name, s); err != nil {
						return task.Result{}, err
					}
				}
				return changedIf(len(dh.servers), "%d server(s) and their volumes deleted", len(dh.servers)), nil
			}},
			{Name: "delete ips", Run: func(ctx context.Context, _ task.Env) (task.Result, error) {
				for _, ip := range dh.ips {
					zone := p.zoneOfIP(dh, ip)
					if err := p.sc.DeleteIP(ctx, zone, ip.ID); err != nil {
						return task.Result{}, fmt.Errorf("delete IP %s: %w", ip, err)
					}
				}
				return changedIf(len(dh.ips), "%d IP(s) released", len(dh.ips)), nil
			}},
			{Name: "delete backups", Run: func(ctx context.Context, _ task.Env) (task.Result, error) {
				for _, b := range dh.backups {
					if err := p.DeleteBackup(ctx, b); err != nil {
						return task.Result{}, err
					}
				}
				return changedIf(len(dh.backups), "%d backup(s) deleted", len(dh.backups)), nil
			}},
		}})
	}
	if len(targets) > 0 {
		if err := runner.Run(ctx, targets); err != nil {
			return err
		}
	}
	if len(dp.groups) == 0 {
		return nil
	}
	var steps []task.Step
	for _, dg := range dp.groups {
		steps = append(steps, task.Step{Name: "delete security group " + dg.g.Name, Run: func(ctx context.Context, _ task.Env) (task.Result, error) {
			if err := p.sc.DeleteSecurityGroup(ctx, dg.zone, dg.g.ID); err != nil {
				if Status(err) == 409 {
					return task.Skipf("still in use: kept"), nil
				}
				return task.Result{}, fmt.Errorf("delete security group %s: %w", dg.g.Name, err)
			}
			return task.Changedf("deleted"), nil
		}})
	}
	return runner.Run(ctx, []task.Target{{Name: CloudTarget, Steps: steps}})
}

func changedIf(n int, format string, args ...any) task.Result {
	if n == 0 {
		return task.Unchanged()
	}
	return task.Changedf(format, args...)
}

// zoneOfIP is the zone an IP of a host was found in.
func (p *Provisioner) zoneOfIP(dh *destroyHost, ip IP) string {
	for _, s := range dh.servers {
		if s.ID == ip.Server {
			return s.Zone
		}
	}
	if len(dh.servers) > 0 {
		return dh.servers[0].Zone
	}
	return p.inv.Scaleway.Zone
}

// deleteServer removes a server and its volumes: terminate from running
// (its local volumes go with it), delete then remove volumes from stopped;
// a server changing state is waited for first. It returns once the server
// is gone.
func (p *Provisioner) deleteServer(ctx context.Context, host string, s Server) error {
	cur := s
	err := p.wait(ctx, host, "waiting for "+s.Name+" to settle before deleting it", func() (bool, string, error) {
		c, err := p.sc.Server(ctx, s.Zone, s.ID)
		if errors.Is(err, ErrNotFound) {
			cur.State = ""
			return true, "gone", nil
		}
		if err != nil {
			return false, "", fmt.Errorf("read server %s: %w", s.Name, err)
		}
		cur = c
		return c.State != StateStarting && c.State != StateStopping, describeState(c), nil
	})
	if err != nil {
		return err
	}
	switch cur.State {
	case "":
	case StateRunning, StateStoppedInPlace:
		if err := p.sc.ServerAction(ctx, s.Zone, s.ID, "terminate"); err != nil {
			c, rerr := p.sc.Server(ctx, s.Zone, s.ID)
			if !errors.Is(rerr, ErrNotFound) && (rerr != nil || c.State != StateStopping) {
				return fmt.Errorf("terminate %s: %w", s.Name, err)
			}
		}
		err := p.wait(ctx, host, "waiting for "+s.Name+" to be terminated", func() (bool, string, error) {
			c, err := p.sc.Server(ctx, s.Zone, s.ID)
			if errors.Is(err, ErrNotFound) {
				return true, "gone", nil
			}
			if err != nil {
				return false, "", fmt.Errorf("read server %s: %w", s.Name, err)
			}
			if c.State != StateStopping {
				return false, "", fmt.Errorf("server %s is %s instead of terminating", s.Name, c.State)
			}
			return false, describeState(c), nil
		})
		if err != nil {
			return err
		}
	case StateStopped:
		if err := p.sc.DeleteServer(ctx, s.Zone, s.ID); err != nil {
			return fmt.Errorf("delete server %s: %w", s.Name, err)
		}
	default:
		return fmt.Errorf("server %s is %s: lghsctl cannot delete it in that state", s.Name, cur.State)
	}
	// Terminate deletes local volumes but keeps block ones; delete leaves
	// both. Whatever is left goes now (a volume already gone is fine).
	for _, v := range cur.Volumes {
		if err := p.sc.DeleteVolume(ctx, s.Zone, v); err != nil {
			return fmt.Errorf("delete volume %s of %s: %w", v.Name, s.Name, err)
		}
	}
	return nil
}
