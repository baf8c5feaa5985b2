package scwsim

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Volume and snapshot types as the Instance API names them.
const (
	volLSSD        = "l_ssd"
	volSBSVolume   = "sbs_volume"
	volSBSSnapshot = "sbs_snapshot"
)

// Server states and the actions of the Instance API.
const (
	stStopped        = "stopped"
	stStarting       = "starting"
	stRunning        = "running"
	stStopping       = "stopping"
	stStoppedInPlace = "stopped in place"

	actPoweron     = "poweron"
	actPoweroff    = "poweroff"
	actStopInPlace = "stop_in_place"
	actReboot      = "reboot"
	actBackup      = "backup"
	actTerminate   = "terminate"
)

// state is everything the stand-in remembers; it is what the state file holds.
// Maps are keyed by resource id.
type state struct {
	Servers        map[string]*server
	Volumes        map[string]*volume // Instance (l_ssd) volumes
	Snapshots      map[string]*snapshot
	Images         map[string]*image // private images; public ones are in the catalogue
	IPs            map[string]*flexIP
	SecurityGroups map[string]*securityGroup
	SSHKeys        map[string]*sshKey
	BlockVolumes   map[string]*blockVolume
	BlockSnapshots map[string]*blockSnapshot
	// MACCounter numbers MAC addresses (de:00:xx:xx:xx:xx).
	MACCounter uint32
}

func newState() *state {
	return &state{
		Servers:        map[string]*server{},
		Volumes:        map[string]*volume{},
		Snapshots:      map[string]*snapshot{},
		Images:         map[string]*image{},
		IPs:            map[string]*flexIP{},
		SecurityGroups: map[string]*securityGroup{},
		SSHKeys:        map[string]*sshKey{},
		BlockVolumes:   map[string]*blockVolume{},
		BlockSnapshots: map[string]*blockSnapshot{},
	}
}

// owner is the project/organization pair every resource carries.
type owner struct {
	Project      string
	Organization string
}

type imageVolume struct {
	ID         string
	Name       string
	VolumeType string
	Size       int64
}

type image struct {
	owner
	ID         string
	Name       string
	Zone       string
	Arch       string
	Public     bool
	Root       imageVolume
	Extra      map[string]imageVolume
	FromServer string
	Tags       []string
	Created    time.Time
	Modified   time.Time
	// Label is the marketplace label the image's root descends from.
	Label string
}

// serverVolume is one entry of server.volumes: an Instance l_ssd volume or a
// Block sbs volume.
type serverVolume struct {
	Type string // volLSSD or volSBSVolume
	ID   string
}

type server struct {
	owner
	ID                string
	Name              string
	Zone              string
	CommercialType    string
	Arch              string
	BootType          string
	Image             *image // copy taken at creation, as the API keeps reporting it
	Volumes           []serverVolume
	Tags              []string
	State             string
	StateDetail       string
	Protected         bool
	MAC               string
	DynamicIPRequired bool
	EnableIPv6        bool
	SecurityGroup     string
	IPs               []string // attached flexible IPs, in attach order
	DynamicIP         netip.Addr
	DynamicIPSince    time.Time
	Created           time.Time
	Modified          time.Time
	Location          *location
	UserData          map[string]string
	Label             string
	AdminKeyID        *string
	// Op is the transition in progress (nil when the state is stable).
	Op *serverOp
	// MachineUp is true between a Start and the next Stop/Remove request: the
	// machine exists and firewall changes must reach it.
	MachineUp bool
}

type location struct {
	ZoneID, PlatformID, ClusterID, HypervisorID, NodeID string
}

// serverOp is a server transition: its state moves on when MinDuration has
// passed since Started and the machine work (Done) is finished.
type serverOp struct {
	Action string
	Timer  timer
	Done   bool
	Err    string
}

type volume struct {
	owner
	ID       string
	Name     string
	Zone     string
	Size     int64
	State    string
	Server   string
	Tags     []string
	Created  time.Time
	Modified time.Time
	Label    string
}

type ref struct {
	ID   string
	Name string
}

type snapshot struct {
	owner
	ID         string
	Name       string
	Zone       string
	VolumeType string
	Size       int64
	State      string
	BaseVolume *ref
	Tags       []string
	Created    time.Time
	Modified   time.Time
	Label      string
	// Backup is set when a backup action made the snapshot: the volume shows
	// "snapshotting" until the snapshot is available.
	Backup   bool
	CopyDone bool
	Err      string
	// Timer runs the snapshotting state (frozen while stuck).
	Timer timer
}

// timer measures a transient state's duration, frozen while the resource is
// held by a StuckFault.
type timer struct {
	Start    time.Time
	LastSeen time.Time
}

func newTimer(now time.Time) timer { return timer{Start: now, LastSeen: now} }

// tick accounts the time since the last tick: frozen time pushes Start.
func (t *timer) tick(now time.Time, frozen bool) time.Duration {
	if frozen {
		t.Start = t.Start.Add(now.Sub(t.LastSeen))
	}
	t.LastSeen = now
	return now.Sub(t.Start)
}

type flexIP struct {
	owner
	ID           string
	Zone         string
	Type         string // routed_ipv4 or routed_ipv6
	Address      netip.Addr
	Prefix       netip.Prefix
	Reverse      *string
	Server       string
	State        string
	PendingUntil time.Time
	Tags         []string
	Created      time.Time
}

type securityGroup struct {
	owner
	ID                    string
	Name                  string
	Zone                  string
	Description           *string
	Stateful              bool
	Inbound               string
	Outbound              string
	OrganizationDefault   bool
	ProjectDefault        bool
	EnableDefaultSecurity bool
	SyncUntil             time.Time
	SyncSeen              time.Time
	Tags                  []string
	Rules                 []sgRule // editable rules, by position
	Created               time.Time
	Modified              time.Time
}

type sgRule struct {
	ID        string
	Protocol  string
	Direction string
	Action    string
	IPRange   string // normalised: host masks dropped
	PortFrom  *uint32
	PortTo    *uint32
}

type sshKey struct {
	owner
	ID          string
	Name        string
	PublicKey   string
	Fingerprint string
	Disabled    bool
	Created     time.Time
	Updated     time.Time
}

type blockVolume struct {
	ID             string
	Name           string
	Zone           string
	Project        string
	Size           int64
	ParentSnapshot string
	Status         string
	Server         string
	RefID          string
	RefCreated     time.Time
	Tags           []string
	Created        time.Time
	Updated        time.Time
	LastDetached   *time.Time
	Label          string
}

type blockSnapshot struct {
	ID       string
	Name     string
	Zone     string
	Project  string
	Parent   ref
	Size     int64
	Status   string
	Tags     []string
	Created  time.Time
	Updated  time.Time
	Label    string
	CopyDone bool
	Err      string
	Timer    timer
}

// resource is anything listed in creation order.
type resource interface {
	sortKey() (time.Time, string)
}

func (v *server) sortKey() (time.Time, string)        { return v.Created, v.ID }
func (v *volume) sortKey() (time.Time, string)        { return v.Created, v.ID }
func (v *snapshot) sortKey() (time.Time, string)      { return v.Created, v.ID }
func (v *image) sortKey() (time.Time, string)         { return v.Created, v.ID }
func (v *flexIP) sortKey() (time.Time, string)        { return v.Created, v.ID }
func (v *securityGroup) sortKey() (time.Time, string) { return v.Created, v.ID }
func (v *sshKey) sortKey() (time.Time, string)        { return v.Created, v.ID }
func (v *blockVolume) sortKey() (time.Time, string)   { return v.Created, v.ID }
func (v *blockSnapshot) sortKey() (time.Time, string) { return v.Created, v.ID }

// ordered lists a map's values oldest first (ties by id).
func ordered[T resource](m map[string]T) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b T) int {
		ta, ia := a.sortKey()
		tb, ib := b.sortKey()
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		return strings.Compare(ia, ib)
	})
	return out
}
