package scwsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/lghs/lghsctl/internal/lab/labhost"
)

// LabHosts is the Machines of the lab: a powered-on server is a
// labhost.Host (a Debian system under systemd-nspawn in its own network
// namespace, its security group enforced by the lab's router), and each
// volume or snapshot is a layer directory LabHosts owns under Dir.
//
// Layers are created lazily: a volume made from a marketplace image only
// records its image until the first boot lays it down, and a copy of such a
// layer is again only a record. Extra (non-root) volumes are kept as layers
// but not mounted in the host.
type LabHosts struct {
	lab       *labhost.Lab
	dir       string
	resolvers []netip.Addr
	files     []labhost.File
	log       *slog.Logger

	mu    sync.Mutex
	hosts map[string]*labhost.Host
}

// LabHostsConfig configures NewLabHosts.
type LabHostsConfig struct {
	// Lab is the open lab the hosts run in.
	Lab *labhost.Lab
	// Dir holds the layers (one directory and one small JSON record per
	// volume or snapshot id); it survives restarts of the stand-in.
	Dir string
	// Resolvers go into the hosts' /etc/resolv.conf (e.g. the lab DNS).
	Resolvers []netip.Addr
	// Files are written into every host at every boot (e.g. the lab
	// registry's CA in /etc/docker/certs.d), as a cloud image would carry.
	Files []labhost.File
	// Log receives what the adapter does; nil discards it.
	Log *slog.Logger
}

// NewLabHosts returns the Machines backed by cfg.Lab.
func NewLabHosts(cfg LabHostsConfig) (*LabHosts, error) {
	if cfg.Lab == nil || cfg.Dir == "" {
		return nil, errors.New("new lab hosts: a lab and a layer directory are required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("new lab hosts: create %s: %w", cfg.Dir, err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &LabHosts{lab: cfg.Lab, dir: cfg.Dir, resolvers: cfg.Resolvers, files: cfg.Files, log: cfg.Log, hosts: map[string]*labhost.Host{}}, nil
}

// layerRecord is what LabHosts remembers of a layer beside its directory.
type layerRecord struct {
	// Image is the marketplace label the layer descends from ("" for an
	// empty data volume).
	Image string `json:"image"`
	// Copied is true for a copy of another layer that has not booted yet:
	// its first boot gets new SSH host keys, as a new Scaleway server does.
	Copied bool `json:"copied"`
}

func (m *LabHosts) layerDir(id string) string   { return filepath.Join(m.dir, id) }
func (m *LabHosts) recordPath(id string) string { return filepath.Join(m.dir, id+".json") }

func (m *LabHosts) readRecord(id string) (layerRecord, error) {
	var rec layerRecord
	b, err := os.ReadFile(m.recordPath(id))
	if err != nil {
		return rec, fmt.Errorf("read layer record %s: %w", id, err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("read layer record %s: %w", id, err)
	}
	return rec, nil
}

func (m *LabHosts) writeRecord(id string, rec layerRecord) error {
	b, _ := json.Marshal(rec)
	tmp := m.recordPath(id) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write layer record %s: %w", id, err)
	}
	if err := os.Rename(tmp, m.recordPath(id)); err != nil {
		return fmt.Errorf("write layer record %s: %w", id, err)
	}
	return nil
}

// laidDown reports whether a layer's directory exists (it booted once, or
// is a copy of one that did).
func (m *LabHosts) laidDown(id string) bool {
	_, err := os.Stat(filepath.Join(m.layerDir(id), "layer.json"))
	return err == nil
}

// AllocateIPv4 reserves a lab address.
func (m *LabHosts) AllocateIPv4(context.Context) (netip.Addr, error) {
	a, err := m.lab.AllocIPv4()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("allocate lab ipv4: %w", err)
	}
	return a, nil
}

// AllocateIPv6Prefix reserves a lab /64.
func (m *LabHosts) AllocateIPv6Prefix(context.Context) (netip.Prefix, error) {
	p, err := m.lab.AllocIPv6Prefix()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("allocate lab ipv6 prefix: %w", err)
	}
	return p, nil
}

// ReleaseAddress gives an address or prefix back to the lab.
func (m *LabHosts) ReleaseAddress(_ context.Context, p netip.Prefix) error {
	m.lab.ReleaseAddr(p)
	return nil
}

// CreateLayer records a layer from an image, or copies another layer (the
// copy is crash-consistent when the source's host runs).
func (m *LabHosts) CreateLayer(ctx context.Context, id string, src LayerSource) error {
	rec := layerRecord{Image: src.Image}
	if src.From != "" {
		from, err := m.readRecord(src.From)
		if err != nil {
			return fmt.Errorf("create layer %s from %s: %w", id, src.From, err)
		}
		rec = layerRecord{Image: from.Image, Copied: true}
		if m.laidDown(src.From) {
			if err := m.lab.RemoveLayer(ctx, m.layerDir(id)); err != nil {
				return fmt.Errorf("create layer %s: %w", id, err)
			}
			if err := m.lab.CopyLayer(ctx, m.layerDir(src.From), m.layerDir(id)); err != nil {
				return fmt.Errorf("create layer %s from %s: %w", id, src.From, err)
			}
		} else {
			// A layer never booted is its image: so is its copy.
			rec.Copied = from.Copied
		}
	}
	return m.writeRecord(id, rec)
}

// DeleteLayer removes a layer and its record.
func (m *LabHosts) DeleteLayer(ctx context.Context, id string) error {
	if err := m.lab.RemoveLayer(ctx, m.layerDir(id)); err != nil {
		return fmt.Errorf("delete layer %s: %w", id, err)
	}
	if err := os.Remove(m.recordPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete layer %s: %w", id, err)
	}
	return nil
}

// releaseOf maps a marketplace label to the Debian release the lab boots.
func releaseOf(label string) (string, error) {
	switch label {
	case "debian_trixie":
		return "trixie", nil
	case "debian_bookworm":
		return "bookworm", nil
	}
	return "", fmt.Errorf("image %q cannot boot in the lab (debian_trixie and debian_bookworm can)", label)
}

// hostName is the lab name of a server's host.
func hostName(serverID string) string { return "scw-" + strings.ReplaceAll(serverID, "-", "")[:24] }

var badHostnameChars = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// Start boots the server's host on its root layer with the spec's
// addresses, keys and firewall. A host that exists (stopped) is replaced,
// so a changed spec (an IP attached meanwhile) takes effect; its layer
// stays.
func (m *LabHosts) Start(ctx context.Context, spec MachineSpec) error {
	if len(spec.Layers) == 0 {
		return fmt.Errorf("start machine %s: no root volume", spec.ID)
	}
	root := spec.Layers[0]
	rec, err := m.readRecord(root)
	if err != nil {
		return fmt.Errorf("start machine %s: %w", spec.ID, err)
	}
	release, err := releaseOf(rec.Image)
	if err != nil {
		return fmt.Errorf("start machine %s: %w", spec.ID, err)
	}
	if err := m.Remove(ctx, spec.ID); err != nil {
		return err
	}
	hn := strings.Trim(badHostnameChars.ReplaceAllString(spec.Hostname, "-"), "-")
	if len(hn) > 63 {
		hn = hn[:63]
	}
	var mac net.HardwareAddr
	if spec.MAC != "" {
		if mac, err = net.ParseMAC(spec.MAC); err != nil {
			return fmt.Errorf("start machine %s: mac %q: %w", spec.ID, spec.MAC, err)
		}
	}
	files := append([]labhost.File(nil), m.files...)
	if rec.Copied {
		// The first boot of a server made from another's disk is a new
		// instance for cloud-init: new host keys, its own hostname.
		files = append(files, []labhost.File{
			{Path: "/etc/hostname", Data: []byte(hn + "\n")},
			{Path: "/etc/hosts", Data: []byte("127.0.0.1\tlocalhost\n127.0.1.1\t" + hn +
				"\n::1\tlocalhost ip6-localhost ip6-loopback\n")},
		}...)
	}
	h, err := m.lab.Start(ctx, labhost.Spec{
		Name: hostName(spec.ID), Hostname: hn, Release: release, LayerDir: m.layerDir(root),
		IPv4: spec.IPv4, IPv6Prefix: spec.IPv6Prefix, IPv6: spec.IPv6, MAC: mac,
		AuthorizedKeys: spec.AuthorizedKeys, Resolvers: m.resolvers, NewHostKeys: rec.Copied, Files: files,
		Firewall: labPolicy(spec.Firewall),
	})
	if err != nil {
		return fmt.Errorf("start machine %s: %w", spec.ID, err)
	}
	m.mu.Lock()
	m.hosts[spec.ID] = h
	m.mu.Unlock()
	if rec.Copied {
		rec.Copied = false
		if err := m.writeRecord(root, rec); err != nil {
			return fmt.Errorf("start machine %s: %w", spec.ID, err)
		}
	}
	m.log.Info("scwsim machine started", "server", spec.ID, "host", h.Name(), "ipv4", h.Addr4(), "ipv6", h.Addr6())
	return nil
}

func (m *LabHosts) host(id string) *labhost.Host {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hosts[id]
}

// Host returns the lab host of a server (nil when it has none), for tests
// and diagnostics: its addresses, host keys, console log.
func (m *LabHosts) Host(serverID string) *labhost.Host { return m.host(serverID) }

// Stop shuts the server's host down, keeping it (and its layer).
func (m *LabHosts) Stop(ctx context.Context, id string) error {
	h := m.host(id)
	if h == nil {
		return nil
	}
	if err := h.Stop(ctx); err != nil {
		return fmt.Errorf("stop machine %s: %w", id, err)
	}
	return nil
}

// Remove stops and forgets the server's host; its layers stay.
func (m *LabHosts) Remove(ctx context.Context, id string) error {
	m.mu.Lock()
	h := m.hosts[id]
	delete(m.hosts, id)
	m.mu.Unlock()
	if h == nil {
		h = m.lab.Host(hostName(id))
	}
	if h == nil {
		return nil
	}
	if err := h.Remove(ctx); err != nil {
		return fmt.Errorf("remove machine %s: %w", id, err)
	}
	return nil
}

// SetFirewall applies a security group to the server's host.
func (m *LabHosts) SetFirewall(ctx context.Context, id string, fw Firewall) error {
	h := m.host(id)
	if h == nil {
		return fmt.Errorf("set firewall of machine %s: no such host", id)
	}
	if err := h.SetFirewall(ctx, labPolicy(fw)); err != nil {
		return fmt.Errorf("set firewall of machine %s: %w", id, err)
	}
	return nil
}

// labPolicy translates a security group; the semantics are the same.
func labPolicy(fw Firewall) labhost.Policy {
	p := labhost.Policy{InboundDefault: labhost.Action(fw.InboundDefault), OutboundDefault: labhost.Action(fw.OutboundDefault),
		Stateful: fw.Stateful}
	for _, r := range fw.Rules {
		p.Rules = append(p.Rules, labhost.Rule{Direction: labhost.Direction(r.Direction), Action: labhost.Action(r.Action),
			Protocol: labhost.Protocol(r.Protocol), IPRange: r.IPRange.Masked(), PortFrom: r.PortFrom, PortTo: r.PortTo})
	}
	return p
}
