package provision

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/inventory"
)

// Zone permissions as the DNS API lists them: lghsctl needs to edit
// records.
const (
	PermDNSEdit = "#dns_records:edit"
	PermDNSRead = "#dns_records:read"
)

// readDNS checks the token and reads the zones the specs' names sit in,
// with their records, into pl.zones. A zone the token cannot see is an
// inventory problem; a token that cannot edit records is an error: both
// show at plan time rather than half-way through an apply.
func (p *Provisioner) readDNS(ctx context.Context, specs []hostSpec, pl *Plan) (inventory.Problems, error) {
	if err := p.dns.Verify(ctx); err != nil {
		return nil, fmt.Errorf("check the DNS token (%s): %w", p.inv.DNS.Token, err)
	}
	// Every declared zone is read, not only those of the wanted names, so
	// that a record whose name moved to another zone is found and removed.
	var names []string
	for _, z := range p.inv.DNS.Zones {
		names = append(names, strings.TrimSuffix(strings.ToLower(z.Name), "."))
	}
	for _, h := range specs {
		for _, n := range h.DNS {
			if !slices.Contains(names, n.Zone) {
				names = append(names, n.Zone)
			}
		}
	}
	return p.readZones(ctx, names, pl)
}

func (p *Provisioner) readZones(ctx context.Context, names []string, pl *Plan) (inventory.Problems, error) {
	var problems inventory.Problems
	for _, name := range names {
		path := "dns.zones"
		for i, z := range p.inv.DNS.Zones {
			if strings.TrimSuffix(strings.ToLower(z.Name), ".") == name {
				path = fmt.Sprintf("dns.zones[%d].name", i)
			}
		}
		z, err := p.dns.Zone(ctx, name)
		if errors.Is(err, ErrNotFound) {
			problems = append(problems, p.inv.Problemf(path, "zone %s is not in the DNS account, or the token (%s) cannot read it: it needs Zone › Zone › Read on it", name, p.inv.DNS.Token))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up DNS zone %s: %w", name, err)
		}
		// The zone's permissions field is not documented as the token's
		// own; only a list that speaks of DNS records and lacks edit is
		// taken as a read-only token.
		if slices.Contains(z.Permissions, PermDNSRead) && !slices.Contains(z.Permissions, PermDNSEdit) {
			return nil, fmt.Errorf("the DNS token (%s) cannot edit records in zone %s (it has %s): give it Zone › DNS › Edit on the zone", p.inv.DNS.Token, name, strings.Join(z.Permissions, ", "))
		}
		recs, err := p.dns.Records(ctx, z.ID)
		if err != nil {
			return nil, fmt.Errorf("list the records of zone %s: %w", name, err)
		}
		pl.zones[name] = &zoneState{Zone: z, records: recs}
	}
	return problems, nil
}

// recordOp is one record change.
type recordOp struct {
	action report.Action // Create, Update, Delete
	zone   *zoneState
	old    *Record
	rec    Record
	// unknown: the content is only known after the servers and IPs exist.
	unknown bool
}

func (op recordOp) change() report.Change {
	const later = "(known after apply)"
	switch op.action {
	case report.Create:
		content := op.rec.Content
		if op.unknown {
			content = "address known after apply"
		}
		return report.Change{Action: report.Create, Kind: op.rec.Type, Name: op.rec.Name, Detail: fmt.Sprintf("%s, %s", content, recordMode(op.rec))}
	case report.Update:
		var f []report.FieldChange
		newContent := op.rec.Content
		if op.unknown {
			newContent = later
		}
		if op.unknown || !sameContent(op.old.Content, op.rec.Content) {
			f = append(f, report.FieldChange{Name: "content", Old: op.old.Content, New: newContent})
		}
		if op.old.TTL != op.rec.TTL {
			f = append(f, report.FieldChange{Name: "ttl", Old: ttlString(op.old.TTL), New: ttlString(op.rec.TTL)})
		}
		if op.old.Proxied != op.rec.Proxied {
			f = append(f, report.FieldChange{Name: "proxied", Old: fmt.Sprint(op.old.Proxied), New: fmt.Sprint(op.rec.Proxied)})
		}
		return report.Change{Action: report.Update, Kind: op.rec.Type, Name: op.rec.Name, Fields: f}
	}
	return report.Change{Action: report.Delete, Kind: op.old.Type, Name: op.old.Name, Detail: op.old.Content}
}

func recordMode(r Record) string {
	if r.Proxied {
		return "proxied"
	}
	return "ttl " + ttlString(r.TTL) + ", DNS only"
}

func ttlString(ttl int) string {
	if ttl == 1 {
		return "auto"
	}
	return fmt.Sprint(ttl)
}

func sameContent(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	if err1 == nil && err2 == nil {
		return x == y
	}
	return a == b
}

// recordOps compares a host's records with what they must be, given its
// addresses (invalid when not known yet). blocked are conflicts with
// records lghsctl does not own for this host; notes say which names are
// left to migrate cutover.
func (p *Provisioner) recordOps(zones map[string]*zoneState, h hostSpec, v4, v6 netip.Addr) (ops []recordOp, blocked []report.Change, notes []string) {
	marker := RecordComment(p.inv.Name, h.Name)
	type want struct {
		n    nameSpec
		typ  string
		addr netip.Addr
	}
	var wants []want
	for _, n := range h.DNS {
		if h.IPv4 {
			wants = append(wants, want{n, "A", v4})
		}
		if h.IPv6 {
			wants = append(wants, want{n, "AAAA", v6})
		}
	}
	used := map[string]bool{} // ids of owned records kept
	// A public name awaiting migrate cutover whose A or AAAA record is the
	// old server's (not lghsctl's) is left alone, both types: an AAAA to
	// the new host next to the old A would split the users.
	oldServer := map[string]Record{}
	var noted []string
	for _, n := range h.DNS {
		z := zones[n.Zone]
		if !n.AwaitsCutover || z == nil {
			continue
		}
		for _, r := range z.records {
			if strings.EqualFold(r.Name, n.Name) && (r.Type == "A" || r.Type == "AAAA") && r.Comment != marker {
				if _, _, owned := recordOwner(r.Comment); !owned {
					oldServer[strings.ToLower(n.Name)] = r
					break
				}
			}
		}
	}
	for _, w := range wants {
		z := zones[w.n.Zone]
		if z == nil {
			continue
		}
		if old, ok := oldServer[strings.ToLower(w.n.Name)]; ok {
			if !slices.Contains(noted, w.n.Name) {
				noted = append(noted, w.n.Name)
				notes = append(notes, fmt.Sprintf("%s points at the old server (%s %s, not managed by lghsctl): left as it is, A and AAAA, until lghsctl migrate cutover moves it to %s",
					w.n.Name, old.Type, old.Content, h.Name))
			}
			continue
		}
		var mine []Record
		conflict := ""
		for _, r := range z.records {
			if !strings.EqualFold(r.Name, w.n.Name) {
				continue
			}
			if r.Type == "CNAME" {
				conflict = fmt.Sprintf("a CNAME %s → %s exists that lghsctl does not manage", r.Name, r.Content)
				continue
			}
			if r.Type != w.typ {
				continue
			}
			if r.Comment == marker {
				mine = append(mine, r)
				continue
			}
			if inv, host, ok := recordOwner(r.Comment); ok {
				conflict = fmt.Sprintf("%s %s (%s) is managed by lghsctl for %s/%s", r.Type, r.Name, r.Content, inv, host)
			} else {
				conflict = fmt.Sprintf("%s %s (%s) exists and is not managed by lghsctl (comment %q)", r.Type, r.Name, r.Content, r.Comment)
			}
		}
		if conflict != "" {
			blocked = append(blocked, report.Change{Action: report.Blocked, Kind: w.typ, Name: w.n.Name,
				Note: conflict + ": delete it or move this name in the inventory; lghsctl only changes records whose comment is \"" + marker + "\""})
			for _, r := range mine {
				used[r.ID] = true
			}
			continue
		}
		rec := Record{Name: w.n.Name, Type: w.typ, Content: w.addr.String(), TTL: w.n.ttl(), Proxied: w.n.Proxied, Comment: marker}
		unknown := !w.addr.IsValid()
		if unknown {
			rec.Content = ""
		}
		if len(mine) == 0 {
			ops = append(ops, recordOp{action: report.Create, zone: z, rec: rec, unknown: unknown})
			continue
		}
		first := mine[0]
		used[first.ID] = true
		if unknown || !sameContent(first.Content, rec.Content) || first.TTL != rec.TTL || first.Proxied != rec.Proxied {
			ops = append(ops, recordOp{action: report.Update, zone: z, old: &first, rec: rec, unknown: unknown})
		}
		for _, extra := range mine[1:] {
			e := extra
			used[e.ID] = true
			ops = append(ops, recordOp{action: report.Delete, zone: z, old: &e})
		}
	}
	// Records this host owns that the inventory no longer wants.
	for _, name := range sortedKeys(zones) {
		z := zones[name]
		for _, r := range z.records {
			if r.Comment == marker && !used[r.ID] {
				rr := r
				ops = append(ops, recordOp{action: report.Delete, zone: z, old: &rr})
			}
		}
	}
	return ops, blocked, notes
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// planDNS adds a host's record changes to the plan.
func (p *Provisioner) planDNS(pl *Plan, hp *hostPlan) {
	v4, v6 := hp.expected()
	ops, blocked, notes := p.recordOps(pl.zones, hp.spec, v4, v6)
	for _, op := range ops {
		pl.add(op.change())
	}
	pl.Changes = append(pl.Changes, blocked...)
	pl.Notes = append(pl.Notes, notes...)
}
