package scwsim

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"time"
)

// publicOrg owns Scaleway's public images (same id in every recording).
const publicOrg = "51b656e3-4865-41e8-adbc-0c45bdd780db"

// serverType is one commercial type of GET /products/servers. Values come
// from the real catalogue (2026 recordings) for the types listed; only a
// subset of the ~135 real types is served.
type serverType struct {
	Name          string
	Arch          string
	NCPUs         int
	RAM           int64
	MaxLocal      int64 // volumes_constraint.max_size (total local storage)
	LocalVolumes  bool  // per_volume_constraint.l_ssd is usable
	HotSnapshots  bool
	Bandwidth     int64
	BlockBW       int64
	MonthlyPrice  float64
	HourlyPrice   float64
	SBSCompatible bool
}

var serverTypes = []serverType{
	{"DEV1-L", "x86_64", 4, 8 << 30, 80e9, true, true, 400e6, 209715200, 31.2732, 0.04284, true},
	{"DEV1-M", "x86_64", 3, 4 << 30, 40e9, true, true, 300e6, 157286400, 14.74308, 0.020196, true},
	{"DEV1-S", "x86_64", 2, 2 << 30, 20e9, true, true, 200e6, 104857600, 6.55248, 0.008976, true},
	{"DEV1-XL", "x86_64", 4, 12 << 30, 120e9, true, true, 500e6, 262144000, 47.50548, 0.065076, true},
	{"GP1-XS", "x86_64", 4, 16 << 30, 150e9, true, true, 500e6, 314572800, 67.7586, 0.09282, true},
	{"PLAY2-MICRO", "x86_64", 4, 8 << 30, 0, false, false, 400e6, 167772160, 40.2084, 0.05508, true},
	{"PLAY2-NANO", "x86_64", 2, 4 << 30, 0, false, false, 200e6, 83886080, 20.1042, 0.02754, true},
	{"PLAY2-PICO", "x86_64", 1, 2 << 30, 0, false, false, 100e6, 41943040, 10.4244, 0.01428, true},
	{"PRO2-XXS", "x86_64", 2, 8 << 30, 0, false, false, 350e6, 131072000, 40.953, 0.0561, true},
	{"STARDUST1-S", "x86_64", 1, 1 << 30, 10e9, true, true, 100e6, 52428800, 0.438, 0.0006, true},
}

func findServerType(name string) (serverType, bool) {
	i := slices.IndexFunc(serverTypes, func(t serverType) bool { return t.Name == name })
	if i < 0 {
		return serverType{}, false
	}
	return serverTypes[i], true
}

// Compatible commercial types as the real marketplace lists them per image
// flavour (trimmed to a representative set).
var (
	localCompatible = []string{"DEV1-L", "DEV1-M", "DEV1-S", "DEV1-XL", "GP1-L", "GP1-M", "GP1-S", "GP1-XL", "GP1-XS",
		"STARDUST1-S", "START1-L", "START1-M", "START1-S", "START1-XS", "VC1L", "VC1M", "VC1S",
		"X64-120GB", "X64-15GB", "X64-30GB", "X64-60GB"}
	sbsX86Compatible = []string{"DEV1-L", "DEV1-M", "DEV1-S", "DEV1-XL", "GP1-L", "GP1-M", "GP1-S", "GP1-XL", "GP1-XS",
		"START1-L", "START1-M", "START1-S", "START1-XS", "VC1L", "VC1M", "VC1S", "X64-120GB", "X64-15GB", "X64-30GB", "X64-60GB",
		"PRO2-XXS", "PRO2-XS", "PRO2-S", "PRO2-M", "PRO2-L", "STARDUST1-S", "PLAY2-MICRO", "PLAY2-NANO", "PLAY2-PICO",
		"POP2-2C-8G", "POP2-4C-16G", "POP2-8C-32G", "POP2-16C-64G"}
	sbsArmCompatible = []string{"COPARM1-2C-8G", "COPARM1-4C-16G", "COPARM1-8C-32G", "COPARM1-16C-64G", "COPARM1-32C-128G",
		"BASIC2-A2C-4G", "BASIC2-A2C-8G", "BASIC2-A4C-8G", "BASIC2-A4C-16G"}
)

// distribution is one marketplace label.
type distribution struct {
	Label        string
	Marketplace  string // marketplace image name
	InstanceName string // instance image (and root snapshot) name
	Released     time.Time
}

var distributions = []distribution{
	{"debian_bookworm", "Debian 12 (Bookworm)", "Debian Bookworm", time.Date(2026, 5, 12, 15, 1, 10, 0, time.UTC)},
	{"debian_trixie", "Debian 13 (Trixie)", "Debian Trixie", time.Date(2026, 5, 12, 15, 3, 22, 0, time.UTC)},
	{"ubuntu_focal", "Ubuntu 20.04 Focal Fossa", "Ubuntu 20.04 Focal Fossa", time.Date(2026, 5, 12, 15, 19, 54, 0, time.UTC)},
	{"ubuntu_jammy", "Ubuntu 22.04 Jammy Jellyfish", "Ubuntu 22.04 Jammy Jellyfish", time.Date(2026, 5, 12, 15, 5, 46, 0, time.UTC)},
	{"ubuntu_noble", "Ubuntu 24.04 Noble Numbat", "Ubuntu 24.04 Noble Numbat", time.Date(2026, 5, 12, 15, 7, 31, 0, time.UTC)},
}

// Marketplace local image types.
const (
	typeLocal = "instance_local"
	typeSBS   = "instance_sbs"
)

// localImage is a marketplace local image; its id is also the id of the
// public Instance image it stands for.
type localImage struct {
	ID         string
	Zone       string
	Label      string
	Type       string
	Arch       string
	Compatible []string
}

// catalogue holds the public, read-only part of the API.
type catalogue struct {
	localImages []localImage
	images      map[string]*image // public instance images by id
	mpImageIDs  map[string]string // label → marketplace image id
}

// stableID derives a UUID-shaped id from parts, so public ids survive
// restarts and persisted state can refer to them.
func stableID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func newCatalogue(zones []string) *catalogue {
	c := &catalogue{images: map[string]*image{}, mpImageIDs: map[string]string{}}
	for _, d := range distributions {
		c.mpImageIDs[d.Label] = stableID("marketplace-image", d.Label)
		for _, z := range zones {
			flavours := []struct {
				typ, arch string
				compat    []string
			}{
				{typeLocal, "x86_64", localCompatible},
				{typeSBS, "arm64", sbsArmCompatible},
				{typeSBS, "x86_64", sbsX86Compatible},
			}
			for _, f := range flavours {
				id := stableID("local-image", z, d.Label, f.typ, f.arch)
				c.localImages = append(c.localImages, localImage{
					ID: id, Zone: z, Label: d.Label, Type: f.typ, Arch: f.arch, Compatible: f.compat,
				})
				root := imageVolume{ID: stableID("public-snapshot", z, d.Label, f.typ, f.arch)}
				if f.typ == typeLocal {
					root.Name, root.VolumeType, root.Size = d.InstanceName, volLSSD, 10e9
				} else {
					root.VolumeType = volSBSSnapshot
				}
				c.images[id] = &image{
					owner: owner{Project: publicOrg, Organization: publicOrg}, ID: id, Name: d.InstanceName, Zone: z,
					Arch: f.arch, Public: true, Root: root, Extra: map[string]imageVolume{},
					Tags: []string{}, Created: d.Released, Modified: d.Released, Label: d.Label,
				}
			}
		}
	}
	// The marketplace answers in type order, then id order.
	slices.SortStableFunc(c.localImages, func(a, b localImage) int {
		if n := strings.Compare(a.Type, b.Type); n != 0 {
			return n
		}
		return strings.Compare(a.ID, b.ID)
	})
	return c
}
