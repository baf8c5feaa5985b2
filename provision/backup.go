package provision

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/inventory"
)

// Backup is an image backup of a host, made by lghsctl snapshot create.
type Backup struct {
	Host    string    `json:"host"`
	ImageID string    `json:"image_id"`
	Name    string    `json:"name"`
	Zone    string    `json:"zone"`
	Created time.Time `json:"created"`
	// Size is the total size of its snapshots, in bytes.
	Size int64 `json:"size"`
	// State is "available" once every snapshot is, "error" if one failed,
	// else the state of the slowest one (e.g. "snapshotting").
	State     string        `json:"state"`
	Snapshots []SnapshotRef `json:"-"`
}

// zonesOf are the zones the inventory's hosts live in (where their
// servers, backups and clones are).
func (p *Provisioner) zonesOf() []string {
	zones := []string{p.inv.Scaleway.Zone}
	for _, h := range p.inv.Hosts {
		if h.Provider == "scaleway" && !slices.Contains(zones, h.Zone) {
			zones = append(zones, h.Zone)
		}
	}
	return zones
}

// hostServer finds the server lghsctl made for a host (an inventory host
// or a clone).
func (p *Provisioner) hostServer(ctx context.Context, host string) (Server, error) {
	var found []Server
	for _, z := range p.zonesOf() {
		ss, err := p.sc.Servers(ctx, z, OwnerTags(p.inv.Name, host))
		if err != nil {
			return Server{}, fmt.Errorf("find the server of %s in %s: %w", host, z, authHint(err))
		}
		found = append(found, ss...)
	}
	switch len(found) {
	case 0:
		return Server{}, fmt.Errorf("%s has no server made by lghsctl (run lghsctl up first): %w", host, ErrNotFound)
	case 1:
		return found[0], nil
	}
	return Server{}, fmt.Errorf("%d servers carry the tags of %s: destroy the extra ones first", len(found), host)
}

// BackupName is the default name of a backup taken now.
func BackupName(host string, now time.Time) string {
	return host + "-" + now.UTC().Format("20060102-150405")
}

// CreateBackup takes an image of every volume of a host's server (the
// backup action, as the console's "create an image" does), tags the image
// and its snapshots as lghsctl's, and waits until every snapshot is
// available: the image itself is reported available at once, long before
// its data is safe. A lost answer to the backup call is followed by a
// lookup of the image by name, so no second image is taken.
func (p *Provisioner) CreateBackup(ctx context.Context, host, name string) (Backup, error) {
	s, err := p.hostServer(ctx, host)
	if err != nil {
		return Backup{}, err
	}
	if name == "" {
		name = BackupName(host, p.now())
	}
	zone := s.Zone
	imageID, err := createOnce(ctx, p, "backup "+name, func() (string, error) {
		return p.sc.Backup(ctx, zone, s.ID, name)
	}, func() (string, bool, error) {
		ims, err := p.sc.Images(ctx, zone, nil)
		if err != nil {
			return "", false, err
		}
		for _, im := range ims {
			if im.Name == name && im.FromServer == s.ID {
				return im.ID, true, nil
			}
		}
		return "", false, nil
	})
	if err != nil {
		return Backup{}, err
	}
	im, err := p.sc.Image(ctx, zone, imageID)
	if err != nil {
		return Backup{}, fmt.Errorf("read image %s: %w", imageID, err)
	}
	tags := append(OwnerTags(p.inv.Name, host), TagBackup)
	if err := p.sc.TagImage(ctx, zone, im.ID, tags); err != nil {
		return Backup{}, fmt.Errorf("tag image %s: %w", name, err)
	}
	for _, ref := range im.Snapshots {
		if err := p.sc.TagSnapshot(ctx, zone, ref, tags); err != nil {
			return Backup{}, fmt.Errorf("tag snapshot %s of %s: %w", ref.ID, name, err)
		}
	}
	b := Backup{Host: host, ImageID: im.ID, Name: im.Name, Zone: zone, Created: im.Created, Snapshots: im.Snapshots}
	err = p.wait(ctx, host, fmt.Sprintf("waiting for the %d snapshot(s) of %s", len(im.Snapshots), name), func() (bool, string, error) {
		if err := p.fillBackup(ctx, &b); err != nil {
			return false, "", err
		}
		switch b.State {
		case SnapshotAvailable:
			return true, b.State, nil
		case SnapshotError:
			return false, "", fmt.Errorf("a snapshot of %s failed", name)
		}
		return false, b.State, nil
	})
	return b, err
}

// fillBackup reads the backup's snapshots: total size and overall state.
func (p *Provisioner) fillBackup(ctx context.Context, b *Backup) error {
	b.Size, b.State = 0, SnapshotAvailable
	done := 0
	for _, ref := range b.Snapshots {
		sn, err := p.sc.Snapshot(ctx, b.Zone, ref)
		if errors.Is(err, ErrNotFound) {
			b.State = "missing snapshot"
			continue
		}
		if err != nil {
			return fmt.Errorf("read snapshot %s of %s: %w", ref.ID, b.Name, err)
		}
		b.Size += sn.Size
		switch sn.State {
		case SnapshotAvailable:
			done++
		case SnapshotError:
			b.State = SnapshotError
		default:
			if b.State != SnapshotError {
				b.State = sn.State
			}
		}
	}
	if b.State != SnapshotAvailable && b.State != SnapshotError && len(b.Snapshots) > 1 {
		b.State = fmt.Sprintf("%s, %d/%d done", b.State, done, len(b.Snapshots))
	}
	return nil
}

// Backups lists the backups lghsctl made for a host ("" for every host),
// newest first.
func (p *Provisioner) Backups(ctx context.Context, host string) ([]Backup, error) {
	tags := []string{TagOwner + p.inv.Name, TagBackup}
	if host != "" {
		tags = append(tags, TagHost+host)
	}
	var out []Backup
	for _, z := range p.zonesOf() {
		ims, err := p.sc.Images(ctx, z, tags)
		if err != nil {
			return nil, fmt.Errorf("list images in %s: %w", z, authHint(err))
		}
		for _, im := range ims {
			h, _ := tagValue(im.Tags, TagHost)
			b := Backup{Host: h, ImageID: im.ID, Name: im.Name, Zone: im.Zone, Created: im.Created, Snapshots: im.Snapshots}
			if b.Zone == "" {
				b.Zone = z
			}
			if err := p.fillBackup(ctx, &b); err != nil {
				return nil, err
			}
			out = append(out, b)
		}
	}
	slices.SortStableFunc(out, func(a, b Backup) int { return b.Created.Compare(a.Created) })
	return out, nil
}

// findBackup finds a backup by image name or id.
func (p *Provisioner) findBackup(ctx context.Context, ref string) (Backup, error) {
	all, err := p.Backups(ctx, "")
	if err != nil {
		return Backup{}, err
	}
	var match []Backup
	for _, b := range all {
		if b.ImageID == ref || b.Name == ref {
			match = append(match, b)
		}
	}
	switch len(match) {
	case 0:
		return Backup{}, fmt.Errorf("no backup named %q made by lghsctl for %s (see lghsctl snapshot list): %w", ref, p.inv.Name, ErrNotFound)
	case 1:
		return match[0], nil
	}
	return Backup{}, fmt.Errorf("%d backups are named %q: give the image id", len(match), ref)
}

var reHostName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// PlanRestore plans a new server, as, from a backup image (name or id):
// a clone of the backup's host with its own IPs, the host's security
// group and commercial type, and the host's technical DNS names with
// their first label replaced by as (lghs-chat-prod.lghs.space →
// lghs-chat-test.lghs.space); public names stay with the host. The clone
// is tagged lghsctl-host=<as> and lghsctl-clone-of=<host>: it is not in
// the inventory, so up leaves it alone and destroy <as> removes it.
// Running it again converges like up.
func (p *Provisioner) PlanRestore(ctx context.Context, image, as string) (*Plan, error) {
	if !reHostName.MatchString(as) {
		return nil, fmt.Errorf("--as %q: a server name is lower-case letters, digits and dashes", as)
	}
	if slices.ContainsFunc(p.inv.Hosts, func(h inventory.Host) bool { return h.Name == as }) {
		return nil, fmt.Errorf("--as %s: a host of the inventory has that name; pick another name for the clone", as)
	}
	b, err := p.findBackup(ctx, image)
	if err != nil {
		return nil, err
	}
	idx := slices.IndexFunc(p.inv.Hosts, func(h inventory.Host) bool { return h.Name == b.Host })
	if idx < 0 {
		return nil, fmt.Errorf("backup %s is of host %s, which is not in %s: restore needs its type, security group and DNS zone", b.Name, b.Host, p.inv.Path)
	}
	if b.State != SnapshotAvailable {
		return nil, fmt.Errorf("backup %s is not complete yet (%s)", b.Name, b.State)
	}
	h := hostFromInventory(p.inv, idx)
	h.path = ""
	h.Name, h.ImageID, h.ImageLabel, h.RootVolumeName, h.RootVolumeSize, h.Zone = as, b.ImageID, "", as, 0, b.Zone
	h.CloneOf = b.Host
	h.Tags = append(OwnerTags(p.inv.Name, as), TagCloneOf+b.Host)
	h.DNS = nil
	for j, d := range p.inv.Hosts[idx].DNS {
		if d.Role != "technical" {
			continue
		}
		_, rest, ok := strings.Cut(d.Name, ".")
		if !ok {
			continue
		}
		h.DNS = append(h.DNS, nameSpec{path: fmt.Sprintf("hosts[%d].dns[%d]", idx, j), Name: as + "." + rest,
			Zone: p.inv.ZoneOf(as + "." + rest), TTL: d.TTL, Proxied: d.Proxied})
	}
	return p.plan(ctx, []hostSpec{h}, true)
}

// PlanPrune lists the backups beyond the keep newest of each host (of
// host, or of every host when ""), as delete lines; nothing is deleted.
func (p *Provisioner) PlanPrune(ctx context.Context, host string, keep int) ([]Backup, []report.Change, error) {
	if keep < 1 {
		return nil, nil, errors.New("--keep must be at least 1: prune never deletes the last backup of a host")
	}
	all, err := p.Backups(ctx, host)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]int{}
	var drop []Backup
	var changes []report.Change
	for _, b := range all { // newest first
		seen[b.Host]++
		if seen[b.Host] <= keep {
			continue
		}
		drop = append(drop, b)
		changes = append(changes, report.Change{Action: report.Delete, Kind: "image", Name: b.Name,
			Detail: fmt.Sprintf("backup of %s, %s, %s old, %d snapshot(s)", b.Host, HumanSize(b.Size), HumanAge(p.now().Sub(b.Created)), len(b.Snapshots))})
	}
	return drop, changes, nil
}

// DeleteBackup deletes a backup's image, then its snapshots (deleting
// the image leaves them, and they are what is billed).
func (p *Provisioner) DeleteBackup(ctx context.Context, b Backup) error {
	if err := p.sc.DeleteImage(ctx, b.Zone, b.ImageID); err != nil {
		return fmt.Errorf("delete image %s: %w", b.Name, err)
	}
	for _, ref := range b.Snapshots {
		if err := p.sc.DeleteSnapshot(ctx, b.Zone, ref); err != nil {
			return fmt.Errorf("delete snapshot %s of %s: %w", ref.ID, b.Name, err)
		}
	}
	return nil
}

// HumanSize writes a size in decimal units, as Scaleway bills them.
func HumanSize(n int64) string {
	switch {
	case n >= 1e12:
		return fmt.Sprintf("%.1f TB", float64(n)/1e12)
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%d B", n)
}

// HumanAge writes a duration the way people say ages: 3d, 5h, 12m, 40s.
func HumanAge(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}
