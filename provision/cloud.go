package provision

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Scaleway is what provision needs from the Scaleway API, in provision's own
// terms; provision/scaleway implements it over scaleway-sdk-go.
//
// Contract:
//   - Every method acts in the project the adapter was built for; lists
//     return only that project's resources, every page of them.
//   - A resource that does not exist is reported with an error wrapping
//     ErrNotFound. Deleting something already gone returns nil.
//   - Errors of a call that reached the API are *APIError (with the HTTP
//     status); Ambiguous tells whether a failed write may have happened
//     anyway. Reads, PATCH, PUT and DELETE are retried by the adapter's
//     transport; creates (POST) are not: the caller looks the resource up
//     before trying again, so nothing is ever made twice.
//   - Tags filters are exact tags, all of which must be present.
type Scaleway interface {
	// ServerTypes lists the commercial types of a zone. An unknown zone
	// is an *APIError with status 400.
	ServerTypes(ctx context.Context, zone string) (map[string]ServerType, error)
	// ResolveImage returns the id of the marketplace image with this label
	// for the commercial type and zone; local asks for an image whose root
	// is a local (l_ssd) volume, otherwise a block (sbs) one. An unknown
	// label wraps ErrNotFound.
	ResolveImage(ctx context.Context, zone, label, commercialType string, local bool) (string, error)

	SSHKeys(ctx context.Context) ([]SSHKey, error)
	CreateSSHKey(ctx context.Context, name, publicKey string) (SSHKey, error)

	SecurityGroups(ctx context.Context, zone string) ([]SecurityGroup, error)
	// Rules lists every rule of a group, the non-editable ones included.
	Rules(ctx context.Context, zone, groupID string) ([]Rule, error)
	CreateSecurityGroup(ctx context.Context, zone string, spec SecurityGroupSpec) (SecurityGroup, error)
	UpdateSecurityGroup(ctx context.Context, zone, id string, spec SecurityGroupSpec) (SecurityGroup, error)
	// SetRules replaces the editable rules of a group, in order.
	SetRules(ctx context.Context, zone, groupID string, rules []Rule) error
	DeleteSecurityGroup(ctx context.Context, zone, id string) error

	Servers(ctx context.Context, zone string, tags []string) ([]Server, error)
	Server(ctx context.Context, zone, id string) (Server, error)
	CreateServer(ctx context.Context, spec ServerSpec) (Server, error)
	UpdateServer(ctx context.Context, zone, id string, u ServerUpdate) (Server, error)
	// ServerAction starts poweron, poweroff or terminate; the state then
	// moves on its own (see Server).
	ServerAction(ctx context.Context, zone, id, action string) error
	// DeleteServer deletes a stopped server; its volumes stay.
	DeleteServer(ctx context.Context, zone, id string) error
	RenameVolume(ctx context.Context, zone string, v Volume, name string) error
	DeleteVolume(ctx context.Context, zone string, v Volume) error

	IPs(ctx context.Context, zone string, tags []string) ([]IP, error)
	CreateIP(ctx context.Context, zone string, family Family, tags []string) (IP, error)
	// AttachIP attaches an IP to a server, or detaches it (serverID "").
	AttachIP(ctx context.Context, zone, ipID, serverID string) error
	DeleteIP(ctx context.Context, zone, id string) error

	// Backup makes an image of every volume of a server (the backup
	// action) and returns the image id. The image is reported available at
	// once; its snapshots are not done until their state says so.
	Backup(ctx context.Context, zone, serverID, name string) (string, error)
	Images(ctx context.Context, zone string, tags []string) ([]Image, error)
	Image(ctx context.Context, zone, id string) (Image, error)
	TagImage(ctx context.Context, zone, id string, tags []string) error
	DeleteImage(ctx context.Context, zone, id string) error
	Snapshot(ctx context.Context, zone string, ref SnapshotRef) (Snapshot, error)
	TagSnapshot(ctx context.Context, zone string, ref SnapshotRef, tags []string) error
	DeleteSnapshot(ctx context.Context, zone string, ref SnapshotRef) error
}

// DNS is what provision needs from the DNS provider; provision/cloudflare
// implements it. Errors follow the same rules as Scaleway's (ErrNotFound,
// *APIError, Ambiguous creates).
type DNS interface {
	// Verify checks that the token is valid and active.
	Verify(ctx context.Context) error
	// Zone finds a zone by apex name; a zone the token cannot see wraps
	// ErrNotFound.
	Zone(ctx context.Context, name string) (Zone, error)
	// Records lists every record of a zone.
	Records(ctx context.Context, zoneID string) ([]Record, error)
	CreateRecord(ctx context.Context, zoneID string, r Record) (Record, error)
	// UpdateRecord overwrites a record (content, TTL, proxied, comment).
	UpdateRecord(ctx context.Context, zoneID, id string, r Record) (Record, error)
	DeleteRecord(ctx context.Context, zoneID, id string) error
}

// ErrNotFound is wrapped by errors about resources that do not exist.
var ErrNotFound = errors.New("not found")

// APIError is an error answered by a cloud API, or a call that got no
// answer (Status 0: connection refused, reset, timed out).
type APIError struct {
	// API is "scaleway" or "cloudflare".
	API string
	// Status is the HTTP status, 0 when no answer came.
	Status int
	// Message is what the API said.
	Message string
	Err     error
}

func (e *APIError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%s API unreachable: %v", e.API, e.Err)
	}
	return fmt.Sprintf("%s API: %d %s", e.API, e.Status, e.Message)
}

func (e *APIError) Unwrap() error { return e.Err }

// Ambiguous reports whether a failed write may nevertheless have been
// done: the API answered 5xx, or nothing came back.
func Ambiguous(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status == 0 || ae.Status >= 500
	}
	return false
}

// Status returns the HTTP status of an API error, 0 otherwise.
func Status(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// ServerType is what provision needs to know of a commercial type.
type ServerType struct {
	// MaxLocalStorage is the largest total size of local (l_ssd) volumes,
	// 0 for types that boot on block storage only.
	MaxLocalStorage int64
}

// SSHKey is an IAM project SSH key.
type SSHKey struct {
	ID        string
	Name      string
	PublicKey string
}

// SecurityGroupSpec is what lghsctl sets on a security group.
type SecurityGroupSpec struct {
	Name            string
	Tags            []string
	Stateful        bool
	InboundDefault  string
	OutboundDefault string
	// EnableDefaultSecurity is Scaleway's SMTP block (true blocks ports
	// 25, 465 and 587 outbound).
	EnableDefaultSecurity bool
}

// SecurityGroup is a Scaleway security group.
type SecurityGroup struct {
	ID                    string
	Name                  string
	Tags                  []string
	Stateful              bool
	InboundDefault        string
	OutboundDefault       string
	EnableDefaultSecurity bool
	ProjectDefault        bool
	// Servers are the ids of the servers using the group.
	Servers []string
}

// Rule is one security group rule. PortFrom and PortTo are 0 for "every
// port"; a single port has PortTo == PortFrom.
type Rule struct {
	Direction string // inbound, outbound
	Action    string // accept, drop
	Protocol  string // TCP, UDP, ICMP, ANY
	IPRange   netip.Prefix
	PortFrom  int
	PortTo    int
	// Editable is false for the rules Scaleway adds itself (the SMTP
	// block); they cannot be changed and are never compared.
	Editable bool
}

// Family is an IP family.
type Family string

// IP families.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// IP is a routed flexible IP: an IPv4 address, or an IPv6 /64 prefix.
type IP struct {
	ID      string
	Family  Family
	Address netip.Addr   // IPv4 only
	Prefix  netip.Prefix // IPv6 only
	// Server is the id of the server it is attached to, or "".
	Server string
	Tags   []string
}

// String is the address or prefix.
func (ip IP) String() string {
	if ip.Family == IPv6 {
		return ip.Prefix.String()
	}
	return ip.Address.String()
}

// Volume is a server volume.
type Volume struct {
	ID   string
	Name string
	// Type is "l_ssd" (Instance API) or "sbs_volume" (Block API).
	Type string
	Size int64
}

// ServerIP is an address as seen from the server.
type ServerIP struct {
	// ID is the flexible IP's id (empty for a dynamic one).
	ID      string
	Address netip.Addr
	Dynamic bool
}

// Server states, as the API reports them.
const (
	StateRunning        = "running"
	StateStopped        = "stopped"
	StateStoppedInPlace = "stopped in place"
	StateStarting       = "starting"
	StateStopping       = "stopping"
	StateLocked         = "locked"
)

// Server is an Instance.
type Server struct {
	ID             string
	Name           string
	Zone           string
	CommercialType string
	State          string
	StateDetail    string
	Tags           []string
	SecurityGroup  string
	// IPs are the server's public addresses; for a routed IPv6 prefix the
	// address is the one the server has in it (SLAAC, from its MAC).
	IPs []ServerIP
	// Volumes in volume order: Volumes[0] is the root volume.
	Volumes []Volume
	ImageID string
	Created time.Time
}

// ServerSpec is a server to create (stopped).
type ServerSpec struct {
	Zone           string
	Name           string
	CommercialType string
	ImageID        string
	RootVolumeName string
	// RootVolumeSize 0 lets the API pick (the largest local size the type
	// allows, or the image's size).
	RootVolumeSize int64
	// RootVolumeType is "l_ssd" or "sbs_volume".
	RootVolumeType string
	IPs            []string
	SecurityGroup  string
	Tags           []string
}

// ServerUpdate changes a server; nil fields stay as they are.
type ServerUpdate struct {
	Name          *string
	Tags          *[]string
	SecurityGroup *string
}

// SnapshotRef names a snapshot of an image: the Instance API for local
// volumes ("l_ssd"), the Block API for block ones ("sbs_snapshot").
type SnapshotRef struct {
	ID         string
	VolumeType string
}

// Image is a private image.
type Image struct {
	ID         string
	Name       string
	Zone       string
	Tags       []string
	FromServer string
	Created    time.Time
	// Snapshots are the image's volumes, root first.
	Snapshots []SnapshotRef
}

// Snapshot states that end a wait.
const (
	SnapshotAvailable = "available"
	SnapshotError     = "error"
)

// Snapshot is a volume snapshot.
type Snapshot struct {
	ID    string
	Name  string
	State string
	Size  int64
	Tags  []string
}

// Zone is a DNS zone.
type Zone struct {
	ID   string
	Name string
	// Permissions the token has on the zone, as the API lists them
	// ("#dns_records:edit", ...); empty when the API does not say.
	Permissions []string
}

// Record is a DNS record.
type Record struct {
	ID      string
	Name    string
	Type    string
	Content string
	// TTL in seconds; 1 is automatic.
	TTL     int
	Proxied bool
	Comment string
}
