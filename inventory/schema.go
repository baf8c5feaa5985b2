package inventory

import "strconv"

// The types below are the inventory's schema. Their doc comments are the
// field reference: docs/inventory.md is generated from them (see
// TestReferenceIsCurrent), so a comment here is what users read.

// Inventory is the whole declarative description of what lghsctl manages.
type Inventory struct {
	// Schema version of this file. Only 1 exists.
	Version int `yaml:"version"`
	// Name of this inventory. Everything lghsctl creates in the cloud is
	// tagged `lghsctl=<name>` so that it only ever changes or deletes what it
	// made. Lower-case letters, digits and dashes.
	Name string `yaml:"name"`
	// Where and how to reach the Scaleway API.
	Scaleway Scaleway `yaml:"scaleway"`
	// DNS zones lghsctl may write records in, and how to reach their provider.
	DNS DNS `yaml:"dns"`
	// The ACME certificate authority and account used for site certificates.
	ACME *ACME `yaml:"acme"`
	// Public SSH keys of the project's admins. They are registered as
	// Scaleway project keys (installed for root when an instance boots) and
	// used for the admin accounts below.
	SSHKeys []SSHKey `yaml:"ssh_keys"`
	// Personal admin accounts created on every host (one account per
	// admin, with sudo), each allowed in with the named keys.
	Admins []Admin `yaml:"admins"`
	// Scaleway security groups, referenced by hosts.
	SecurityGroups []SecurityGroup `yaml:"security_groups"`
	// The servers lghsctl provisions and configures.
	Hosts []Host `yaml:"hosts"`
	// The data move from the old server to a host of this inventory.
	Migrate *Migrate `yaml:"migrate"`
}

// Scaleway says which account and project to use. Credentials are never in
// the inventory: they come from the Scaleway SDK's usual places (SCW_*
// environment variables, then ~/.config/scw/config.yaml and its profiles).
type Scaleway struct {
	// Profile of ~/.config/scw/config.yaml to use; empty means the active
	// profile (SCW_PROFILE or active_profile in the file).
	Profile string `yaml:"profile"`
	// Project name, as shown in the console. Resolved to its ID through the
	// API; must match project_id when both are given.
	Project string `yaml:"project"`
	// Project ID (a UUID). Defaults to the profile's default_project_id.
	ProjectID string `yaml:"project_id"`
	// Default zone for hosts, e.g. fr-par-1.
	Zone string `yaml:"zone"`
}

// DNS lists the zones lghsctl manages records in.
type DNS struct {
	// DNS provider. Only cloudflare is supported.
	Provider string `yaml:"provider"`
	// API token used to manage records (zone read + DNS edit on the zones
	// below). Defaults to the environment variable CLOUDFLARE_API_TOKEN.
	Token SecretRef `yaml:"token"`
	// Default TTL of the records lghsctl writes, in seconds (60–86400), or
	// 1 for the provider's automatic TTL.
	TTL int `yaml:"ttl"`
	// The zones. Every DNS name of a host must sit in one of them.
	Zones []Zone `yaml:"zones"`
}

// Zone is one DNS zone, like lghs.be.
type Zone struct {
	// Zone apex, e.g. lghs.be.
	Name string `yaml:"name"`
	// Token for DNS-01 challenges in this zone, limited to DNS edit on this
	// one zone, as Cloudflare recommends. It is copied (mode 0600) to hosts
	// that renew certificates for names in this zone. Defaults to dns.token.
	ACMEToken SecretRef `yaml:"acme_token"`
}

// ACME configures certificate issuance.
type ACME struct {
	// Contact e-mail of the ACME account.
	Email string `yaml:"email"`
	// Directory: letsencrypt, letsencrypt-staging, or the https:// URL of
	// an ACME directory. Defaults to letsencrypt.
	Directory string `yaml:"directory"`
	// PEM file of extra CA roots to trust when talking to the directory
	// (e.g. a test CA).
	CABundle string `yaml:"ca_bundle"`
	// Private key type of certificates: ec256 (default), ec384, rsa2048,
	// rsa4096.
	KeyType string `yaml:"key_type"`
	// Renew when the certificate expires within this long (default 30d),
	// unless the CA's renewal info says otherwise.
	RenewBefore Duration `yaml:"renew_before"`
	// Publish CAA records limiting issuance to this CA and account over
	// DNS-01. Defaults to true for Let's Encrypt directories and false for
	// others.
	CAA *bool `yaml:"caa"`
	// The CA's issuer domain name in CAA records (RFC 8659), e.g.
	// letsencrypt.org (the default for Let's Encrypt directories). Required
	// when caa is on for another directory.
	CAAIdentity string `yaml:"caa_identity"`
	// When hosts check their certificates for renewal: a systemd calendar
	// expression (OnCalendar=), run with up to an hour of random delay.
	// Defaults to twice a day.
	RenewSchedule string `yaml:"renew_schedule"`
	// DNS resolvers (host:port) used to check that challenge records have
	// propagated. Empty means the zone's authoritative servers.
	Resolvers []string `yaml:"resolvers"`
}

// SSHKey is a named public key.
type SSHKey struct {
	// Name of the key, as registered in Scaleway (e.g. who and when:
	// william_gathoye_ssh_key_2021-10-23_lghs_ed25519).
	Name string `yaml:"name"`
	// The public key in authorized_keys format.
	PublicKey string `yaml:"public_key"`
	// A file holding the public key, instead of public_key.
	PublicKeyFile string `yaml:"public_key_file"`
}

// Admin is a personal account on every host.
type Admin struct {
	// Login name.
	Name string `yaml:"name"`
	// Names of entries of ssh_keys allowed to log in as this admin.
	SSHKeys []string `yaml:"ssh_keys"`
	// Whether the admin may use sudo (without password). Defaults to true.
	Sudo *bool `yaml:"sudo"`
}

// SecurityGroup is a Scaleway security group.
type SecurityGroup struct {
	// Name of the group.
	Name string `yaml:"name"`
	// What happens to inbound traffic no rule matches: accept or drop.
	InboundDefault string `yaml:"inbound_default"`
	// What happens to outbound traffic no rule matches: accept or drop.
	OutboundDefault string `yaml:"outbound_default"`
	// Let replies to allowed traffic through. Defaults to true.
	Stateful *bool `yaml:"stateful"`
	// Allow outbound SMTP (ports 25, 465, 587), i.e. turn Scaleway's
	// default SMTP block off (enable_default_security: false). The account
	// must be allowed to send mail.
	AllowSMTP bool `yaml:"allow_smtp"`
	// Rules, in order. Each rule applies to IPv4 and IPv6 unless ip_ranges
	// says otherwise.
	Rules []Rule `yaml:"rules"`
	// Keep rules added outside lghsctl (e.g. in the console) instead of
	// removing them.
	KeepUnknownRules bool `yaml:"keep_unknown_rules"`
}

// Rule is one security group rule.
type Rule struct {
	// inbound (default) or outbound.
	Direction string `yaml:"direction"`
	// accept (default) or drop.
	Action string `yaml:"action"`
	// TCP, UDP, ICMP or ANY. An ICMP rule also covers ICMPv6 for IPv6
	// ranges (the API has no separate ICMPv6 protocol).
	Protocol string `yaml:"protocol"`
	// Destination port or range, like 22 or 8000-8100. Only for TCP and
	// UDP; empty means all ports.
	Ports PortRange `yaml:"ports"`
	// Source (inbound) or destination (outbound) ranges in CIDR notation.
	// Defaults to 0.0.0.0/0 and ::/0.
	IPRanges []string `yaml:"ip_ranges"`
}

// Host is one server.
type Host struct {
	// Name of the server (and of its Scaleway instance). Lower-case letters,
	// digits and dashes.
	Name string `yaml:"name"`
	// Who provides the machine: scaleway (default: lghsctl creates it) or
	// none (an existing machine reached at ssh.address; only host setup runs).
	Provider string `yaml:"provider"`
	// Scaleway zone; defaults to scaleway.zone.
	Zone string `yaml:"zone"`
	// Commercial type, e.g. DEV1-M.
	Type string `yaml:"type"`
	// Marketplace image label, e.g. debian_trixie (default) or
	// debian_bookworm.
	Image string `yaml:"image"`
	// The root volume.
	RootVolume Volume `yaml:"root_volume"`
	// Attach a routed IPv4 flexible IP. Defaults to true.
	IPv4 *bool `yaml:"ipv4"`
	// Attach a routed IPv6 flexible IP (/64 prefix). Defaults to true.
	IPv6 *bool `yaml:"ipv6"`
	// Name of the security group (from security_groups).
	SecurityGroup string `yaml:"security_group"`
	// Extra tags on the instance (ownership tags are always added).
	Tags []string `yaml:"tags"`
	// DNS names pointing at this host (A and AAAA records).
	DNS []DNSName `yaml:"dns"`
	// How lghsctl logs in.
	SSH SSH `yaml:"ssh"`
	// root's SSH login: prohibit-password (default: keys only) or no (only
	// once a non-root admin has been verified to log in with a key).
	RootLogin string `yaml:"root_login"`
	// Extra Debian packages to install, in one transaction.
	Packages []string `yaml:"packages"`
	// Run apt-get dist-upgrade on each run.
	DistUpgrade bool `yaml:"dist_upgrade"`
	// Enable unattended security upgrades. Defaults to true.
	UnattendedUpgrades *bool `yaml:"unattended_upgrades"`
	// Docker Engine.
	Docker *Docker `yaml:"docker"`
	// Directories to create, with owner and mode.
	Directories []Directory `yaml:"directories"`
	// Web sites served by nginx on this host.
	Sites []Site `yaml:"sites"`
}

// Volume is a disk.
type Volume struct {
	// Volume name. Defaults to the host name.
	Name string `yaml:"name"`
	// Size, like 40GB. Defaults to the largest local volume the type allows.
	Size Size `yaml:"size"`
}

// DNSName is one name of a host.
type DNSName struct {
	// Fully qualified name, e.g. chat.lghs.be. Must sit in a zone of dns.zones.
	Name string `yaml:"name"`
	// Proxy through Cloudflare (orange cloud). Defaults to false: DNS only,
	// so SSH and DNS-01 keep working and clients see the host's addresses.
	Proxied bool `yaml:"proxied"`
	// TTL in seconds; defaults to dns.ttl.
	TTL int `yaml:"ttl"`
	// technical (the host's own name, used to reach it and kept by
	// clones) or public (the name users type; moved by migrate cutover).
	// Defaults to public.
	Role string `yaml:"role"`
}

// SSH says how to reach a host.
type SSH struct {
	// Address or name to connect to. Defaults to the host's IPv4 address
	// from the cloud (or, when the machine has only IPv6, its IPv6 address).
	Address string `yaml:"address"`
	// Login user. Defaults to root.
	User string `yaml:"user"`
	// Port. Defaults to 22.
	Port int `yaml:"port"`
	// Private key file. Without it, keys come from ssh-agent and the
	// ~/.ssh/config entry.
	IdentityFile string `yaml:"identity_file"`
	// A Host alias of ~/.ssh/config whose HostName, User, Port,
	// IdentityFile and ProxyJump apply (fields above override it).
	ConfigHost string `yaml:"config_host"`
	// Jump host(s), as in ssh -J: [user@]host[:port][,...].
	ProxyJump string `yaml:"proxy_jump"`
	// known_hosts file pinning host keys. Defaults to known_hosts next to
	// the inventory.
	KnownHosts string `yaml:"known_hosts"`
}

// Docker configures Docker Engine on a host.
type Docker struct {
	// Where Docker comes from: docker (Docker's official apt repository,
	// default) or debian (Debian's docker.io and docker-compose packages).
	Source string `yaml:"source"`
	// Maximum size of a container log file before rotation (default 10m).
	LogMaxSize string `yaml:"log_max_size"`
	// Number of rotated log files kept per container (default 3).
	LogMaxFiles int `yaml:"log_max_files"`
}

// Directory is a directory on a host.
type Directory struct {
	// Absolute path.
	Path string `yaml:"path"`
	// Owner (default root).
	Owner string `yaml:"owner"`
	// Group (default root).
	Group string `yaml:"group"`
	// Permissions in octal, like 0750 (default 0755).
	Mode Mode `yaml:"mode"`
}

// Site is a web site served by nginx as a reverse proxy.
type Site struct {
	// Primary name of the site; also the certificate name.
	Name string `yaml:"name"`
	// Other names served by the same site and certificate.
	Aliases []string `yaml:"aliases"`
	// Address of the application, like [::1]:3000 or 127.0.0.1:3000.
	Upstream string `yaml:"upstream"`
	// Pass websocket upgrades through. Defaults to true.
	Websockets *bool `yaml:"websockets"`
	// Largest request body accepted, like 200M (nginx client_max_body_size).
	// Defaults to 1M.
	ClientMaxBodySize string `yaml:"client_max_body_size"`
	// Send Strict-Transport-Security. Defaults to true.
	HSTS *bool `yaml:"hsts"`
	// Where the certificate comes from: acme (default) or self-signed.
	TLS string `yaml:"tls"`
	// The application behind the site, run as a Docker Compose project.
	App *App `yaml:"app"`
}

// App is a site's application: a Docker Compose project lghsctl renders,
// validates and applies. Published ports are always bound to loopback;
// nginx is the only way in.
type App struct {
	// Compose project directory on the host, e.g. /srv/chat.lghs.be;
	// relative volume paths are under it.
	Dir string `yaml:"dir"`
	// Compose project name. Defaults to the directory's name without dots
	// and dashes (chatlghsbe), as docker compose names it.
	Project string `yaml:"project"`
	// Preset fills in the usual services: rocketchat (MongoDB as a
	// one-node replica set, and Rocket.Chat with ROOT_URL, MONGO_URL and
	// MONGO_OPLOG_URL derived) or none.
	Preset string `yaml:"preset"`
	// MongoDB replica set name (rocketchat preset). Defaults to rs0.
	ReplicaSet string `yaml:"replica_set"`
	// Services. With a preset, an entry named like a preset service
	// changes that service (image, state, ...); other entries are added.
	Services []Service `yaml:"services"`
}

// Service is one container of an app.
type Service struct {
	// Service name (mongo and rocketchat in the rocketchat preset).
	Name string `yaml:"name"`
	// Image with its tag, e.g. mongo:4.2.22 or rocketchat/rocket.chat:6.5.4.
	Image string `yaml:"image"`
	// database (gets the replica set and is waited for), app (listens on
	// the site's upstream) or other.
	Role string `yaml:"role"`
	// running (default) or stopped: a data move holds the app stopped
	// while the database runs.
	State string `yaml:"state"`
	// Command and arguments, replacing the image's.
	Command []string `yaml:"command"`
	// Environment variables (not secrets).
	Environment map[string]string `yaml:"environment"`
	// Secret environment variables, by reference; their values go to a
	// mode-0600 env file next to compose.yaml, never into it.
	SecretEnvironment map[string]SecretRef `yaml:"secret_environment"`
	// Volumes as HOST:CONTAINER[:ro]; a relative HOST path is under the
	// app's directory.
	Volumes []string `yaml:"volumes"`
	// Published ports as ADDRESS:HOST:CONTAINER, where ADDRESS must be a
	// loopback address (127.0.0.1 or [::1]). The app's port defaults to
	// the site's upstream.
	Ports []string `yaml:"ports"`
	// Health check command run inside the container (exec form).
	Healthcheck []string `yaml:"healthcheck"`

	// origin is the entry's index in the file's services list, or -1 for a
	// preset service the file does not mention (for error positions).
	origin int
}

// Migrate describes the data move from the old server.
type Migrate struct {
	// The old server. Nothing is installed or changed on it.
	From MigrateSource `yaml:"from"`
	// Name of the host (from hosts) the data moves to.
	To string `yaml:"to"`
	// Name of the site (on that host) whose application receives the data.
	// Defaults to the host's only site with an app.
	Site string `yaml:"site"`
	// Who moves the data: builtin (default: lghsctl itself) or exec (the
	// command of exec, given a JSON description of both hosts on stdin).
	Engine string `yaml:"engine"`
	// The external engine (engine: exec).
	Exec *MigrateExec `yaml:"exec"`
	// How the old database is read: mongodump (default: the old host's own
	// mongodump, run over SSH, works with every MongoDB version) or driver
	// (lghsctl reads it through an SSH tunnel; MongoDB 4.2 and later).
	Source string `yaml:"source"`
	// How the new database is written: driver (default: parallel bulk
	// inserts through an SSH tunnel, indexes after the data) or
	// mongorestore (the stream piped into mongorestore in the database
	// container).
	Target string `yaml:"target"`
	// Compress the stream on the old host (mongodump --gzip): less to
	// carry over a slow link, more CPU on the old host.
	Compress bool `yaml:"compress"`
	// The app's database service on the target (its compose service name).
	// Defaults to the app's service with role database.
	DatabaseService string `yaml:"database_service"`
	// MongoDB URI of the new database as the target host sees it.
	// Defaults to mongodb://127.0.0.1:27017 (the app's published port).
	TargetMongoURI string `yaml:"target_mongo_uri"`
	// Where uploaded files go on the target (with from.uploads_dir).
	// Defaults to the app directory's data/uploads, which the rocketchat
	// preset mounts at /app/uploads.
	UploadsTo string `yaml:"uploads_to"`
	// Owner of the copied files on the target, as user[:group] or
	// uid[:gid] (the app container's user). Empty keeps the old owners.
	UploadsOwner string `yaml:"uploads_owner"`
	// Directory on the target where migrate keeps its state (resume, upload
	// manifest, ladder progress, the TTL before cutover). Defaults to
	// /var/lib/lghsctl/migrate.
	StateDir string `yaml:"state_dir"`
	// The upgrade ladder, run by lghsctl migrate upgrade: one rung per app
	// version, in order, each after a backup of the target.
	Ladder []Rung `yaml:"ladder"`
	// TTL in seconds of the public name during cutover (30–86400, default
	// 60); migrate cutover --prepare lowers it days before.
	CutoverTTL int `yaml:"cutover_ttl"`
}

// MigrateSource is the old server of a migration.
type MigrateSource struct {
	// A name for it in messages (e.g. escandalo).
	Name string `yaml:"name"`
	// How to reach it over SSH.
	SSH SSH `yaml:"ssh"`
	// MongoDB URI as seen from the old server itself (the database stays
	// bound to its loopback). Defaults to mongodb://127.0.0.1:27017.
	MongoURI string `yaml:"mongo_uri"`
	// Databases to move. Defaults to [rocketchat].
	Databases []string `yaml:"databases"`
	// Directory of uploaded files kept on disk (Rocket.Chat FileSystem
	// storage), copied too when set.
	UploadsDir string `yaml:"uploads_dir"`
	// Path of mongodump on the old server (default mongodump).
	Mongodump string `yaml:"mongodump"`
}

// MigrateExec is an external data-move engine.
type MigrateExec struct {
	// Command and arguments, run on the machine running lghsctl with the
	// JSON hand-off document on stdin (see docs/migrate.md).
	Command []string `yaml:"command"`
	// Secrets the engine needs, by reference: the document names them
	// (environment variable or file), never their values.
	Secrets map[string]SecretRef `yaml:"secrets"`
}

// Rung is one app version of the upgrade ladder.
type Rung struct {
	// App image of this rung, e.g. rocketchat/rocket.chat:3.18.2; its tag is
	// the version the app must report.
	App string `yaml:"app"`
	// Database image to switch to first, e.g. mongo:4.4.
	Database string `yaml:"database"`
	// Feature compatibility version to set after the database switch,
	// e.g. "4.4".
	FeatureCompatibility string `yaml:"feature_compatibility"`
	// Take a snapshot of the target before the rung. Defaults to true.
	Backup *bool `yaml:"backup"`
	// Workarounds run with the app stopped, before the new version starts.
	Before []LadderStep `yaml:"before"`
	// Steps run once the new version started. Without a wait step, the rung
	// first waits until the app reports its image's version.
	After []LadderStep `yaml:"after"`
	// How long each wait may take (default 15m).
	Timeout Duration `yaml:"timeout"`
}

// LadderStep is one workaround of a rung: exactly one field.
type LadderStep struct {
	// Set a Rocket.Chat setting (rocketchat_settings) to a value.
	SetSetting *SettingChange `yaml:"set_setting"`
	// Drop every index but _id_ of these collections (the app rebuilds
	// them).
	DropIndexes []string `yaml:"drop_indexes"`
	// Unlock the migrations control document after a failed migration.
	UnlockMigrations bool `yaml:"unlock_migrations"`
	// Reconfigure the replica set's member to this host:port, one the app
	// resolves (e.g. mongo:27017).
	ReplicaSetHost string `yaml:"replica_set_host"`
	// Wait for a line of the app's log containing this text (/regexp/ for
	// a regular expression).
	WaitLog string `yaml:"wait_log"`
	// Wait until the app's /api/info reports this version.
	WaitVersion string `yaml:"wait_version"`
}

// SettingChange sets one setting.
type SettingChange struct {
	// The setting's _id, e.g. Accounts_OAuth_Custom-Authlghsbe.
	ID string `yaml:"id"`
	// The value: true, false, a number or a string.
	Value ScalarValue `yaml:"value"`
}

// ScalarValue is a YAML scalar kept as written; Value types it.
type ScalarValue string

// UnmarshalText keeps the text.
func (v *ScalarValue) UnmarshalText(b []byte) error { *v = ScalarValue(b); return nil }

// Value is the scalar as a boolean (true/false), an integer, a float or
// else a string.
func (v ScalarValue) Value() any {
	s := string(v)
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		if i == int64(int32(i)) {
			return int32(i)
		}
		return i
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	return s
}
