// Package cfdns wires the Cloudflare stand-in (cfsim) into the lab's DNS
// server (labdns): it presents cfsim's zones as a labdns.Source, the way
// Cloudflare's authoritative servers present them.
//
//	cf, _ := cfsim.New(cfsim.Options{})
//	srv, _ := labdns.Start(ctx, labdns.Config{Addr: "10.99.0.1:53", Source: cfdns.Source(cf)})
//
// Each query reads a fresh cfsim snapshot, so API changes are answered at
// once, and the SOA serial is cfsim's per-zone serial.
package cfdns

import (
	"strconv"

	"github.com/lghs/lghsctl/internal/lab/cfsim"
	"github.com/lghs/lghsctl/internal/lab/labdns"
)

// AutoTTL is what Cloudflare serves for records with ttl 1 ("automatic").
const AutoTTL = 300

// Snapshotter is what Source needs of the stand-in (cfsim.Server has it).
type Snapshotter interface {
	Snapshot() []cfsim.ZoneSnapshot
}

// Source adapts the stand-in to labdns. Only active zones are served (a
// pending zone is not on Cloudflare's name servers yet). Proxied records are
// answered with their origin content: the lab has no proxy whose addresses
// the real service would answer instead.
func Source(s Snapshotter) labdns.Source {
	return labdns.SourceFunc(func() []labdns.Zone {
		snaps := s.Snapshot()
		out := make([]labdns.Zone, 0, len(snaps))
		for _, z := range snaps {
			if z.Zone.Status != "active" {
				continue
			}
			lz := labdns.Zone{Name: z.Zone.Name, NameServers: z.Zone.NameServers, Serial: z.Serial,
				Records: make([]labdns.Record, 0, len(z.Records))}
			for _, r := range z.Records {
				lz.Records = append(lz.Records, Record(r))
			}
			out = append(out, lz)
		}
		return out
	})
}

// Record converts one stand-in record to its DNS form.
func Record(r cfsim.Record) labdns.Record {
	ttl := uint32(r.TTL)
	if r.TTL <= 1 {
		ttl = AutoTTL
	}
	content := r.Content
	if r.Type == "MX" && r.Priority != nil {
		content = strconv.Itoa(*r.Priority) + " " + r.Content
	}
	return labdns.Record{Name: r.Name, Type: r.Type, TTL: ttl, Content: content}
}
