package remote

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/crypto/ssh"
)

// Config says how to reach and trust one host. The zero value of every
// optional field is a sensible default; KnownHostsFile is required, and
// so is an address (Address, or ConfigHost).
type Config struct {
	// Name of the host in messages and logs (the inventory's host name).
	// Defaults to user@address:port.
	Name string

	// Address (DNS name or IP) to connect to. Overrides the HostName of
	// ConfigHost; defaults to it, then to ConfigHost itself.
	Address string
	// Port; 0 means ConfigHost's Port, then 22.
	Port int
	// User to log in as; empty means ConfigHost's User, then root.
	User string
	// IdentityFiles are private key files tried first, in order, before
	// ConfigHost's IdentityFile entries and the agent's keys. A missing or
	// unreadable file is an error. A passphrase-protected file is usable
	// only when its key is in the agent (its .pub file next to it says
	// which key that is): this package never prompts.
	IdentityFiles []string
	// AgentSocket is the path of the ssh-agent socket (the caller's
	// SSH_AUTH_SOCK); empty means no agent. An unreachable agent is not
	// an error by itself; it is reported if authentication then fails.
	AgentSocket string
	// HomeDir expands ~ and %d in ssh_config values and holds the default
	// identity files (~/.ssh/id_ed25519, id_ecdsa, id_rsa), tried after
	// the agent when neither IdentityFiles nor ssh_config names any.
	HomeDir string
	// LocalUser is the login for jump hosts that name no user (in
	// ProxyJump or ssh_config), as OpenSSH uses the local user name.
	LocalUser string

	// KnownHostsFile pins host keys, in OpenSSH's known_hosts format. New
	// keys are appended to it (plain host names, file mode 0600, directory
	// created if needed). Required.
	KnownHostsFile string
	// ExtraKnownHosts are more known_hosts files, only read (for instance
	// the user's ~/.ssh/known_hosts, for jump hosts). Missing files are
	// skipped. A key they pin is as binding as one in KnownHostsFile.
	ExtraKnownHosts []string
	// TrustNew accepts and pins the key of a host that no known_hosts file
	// knows (trust on first use). Set it only when provision has just
	// created the machine. It never applies to jump hosts, and never
	// overrides a pinned key.
	TrustNew bool
	// ExpectedKeys are host keys the caller already knows from a trusted
	// source (the cloud API, the lab). For a host no known_hosts file
	// knows, a key among them is accepted and pinned, and any other key is
	// refused with a *HostKeyChangedError, whatever TrustNew says.
	ExpectedKeys []ssh.PublicKey

	// SSHConfigFile is an OpenSSH client configuration file (the caller's
	// ~/.ssh/config). Empty means none. It is read for ConfigHost and for
	// every jump host.
	SSHConfigFile string
	// ConfigHost is a Host alias of SSHConfigFile whose HostName, User,
	// Port, IdentityFile, IdentitiesOnly and ProxyJump apply; the fields of
	// this struct override them.
	ConfigHost string
	// ProxyJump lists jump hosts as in ssh -J: [user@]host[:port][,...],
	// or "none". Each hop is resolved through SSHConfigFile like an alias
	// and its key checked against the known_hosts files. Overrides
	// ConfigHost's ProxyJump.
	ProxyJump string

	// ConnectTimeout bounds the TCP connection and SSH handshake of each
	// hop. Defaults to 30s.
	ConnectTimeout time.Duration
	// KeepAlive is the interval between keepalive requests; a connection
	// that answers none for KeepAliveMax intervals is closed and every
	// command on it fails with ErrConnectionLost. Defaults to 15s;
	// negative disables keepalives.
	KeepAlive time.Duration
	// KeepAliveMax defaults to 3.
	KeepAliveMax int

	// Sudo runs every command, read and write through `sudo -n` when the
	// login user is not root (so sudo must not ask for a password).
	Sudo bool

	// Log receives a debug record for every command (with its duration and
	// exit status, never its standard input) and connection event. Nil
	// discards.
	Log *slog.Logger
}

const (
	defaultConnectTimeout = 30 * time.Second
	defaultKeepAlive      = 15 * time.Second
	defaultKeepAliveMax   = 3
	maxJumpDepth          = 8
)

// endpoint is one SSH server on the way: a jump host or the target.
type endpoint struct {
	alias          string // what the user wrote (ssh_config alias or host)
	host           string
	port           int
	user           string
	identityFiles  []string // explicit first, then ssh_config's
	explicitIDs    int      // how many of identityFiles must exist
	identitiesOnly bool
}

func (e endpoint) addr() string { return net.JoinHostPort(e.host, strconv.Itoa(e.port)) }

func (e endpoint) String() string { return e.user + "@" + e.addr() }

// sshConfig is the parsed SSHConfigFile, or nil.
type sshConfig struct {
	path string
	cfg  *ssh_config.Config
}

func loadSSHConfig(path string) (*sshConfig, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &sshConfig{path: path}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ssh config %s: %w", path, err)
	}
	cfg, err := ssh_config.DecodeBytes(b)
	if err != nil {
		return nil, fmt.Errorf("parse ssh config %s: %w", path, err)
	}
	return &sshConfig{path: path, cfg: cfg}, nil
}

// get returns the first value of key for alias, like ssh does; "" when
// there is no file or no such entry.
func (s *sshConfig) get(alias, key string) (string, error) {
	if s == nil || s.cfg == nil {
		return "", nil
	}
	v, err := s.cfg.Get(alias, key)
	if err != nil {
		return "", fmt.Errorf("ssh config %s: %s for %s: %w", s.path, key, alias, err)
	}
	return v, nil
}

func (s *sshConfig) getAll(alias, key string) ([]string, error) {
	if s == nil || s.cfg == nil {
		return nil, nil
	}
	v, err := s.cfg.GetAll(alias, key)
	if err != nil {
		return nil, fmt.Errorf("ssh config %s: %s for %s: %w", s.path, key, alias, err)
	}
	return v, nil
}

// resolve fills an endpoint from ssh_config entries for alias. Explicit
// values (non-zero fields of over) win. It returns the alias's ProxyJump
// too.
func (s *sshConfig) resolve(alias string, over endpoint, home, localUser string) (endpoint, string, error) {
	e := over
	e.alias = alias
	e.identityFiles = slices.Clone(over.identityFiles)
	var err error
	get := func(key string) string {
		if err != nil {
			return ""
		}
		var v string
		v, err = s.get(alias, key)
		return v
	}
	if e.host == "" {
		if h := get("HostName"); h != "" {
			e.host = expandTokens(h, alias, "", home, localUser)
		} else {
			e.host = alias
		}
	}
	if e.port == 0 {
		if p := get("Port"); p != "" {
			n, perr := strconv.Atoi(p)
			if perr != nil || n <= 0 || n > 65535 {
				return e, "", fmt.Errorf("ssh config %s: Port %q for %s is not a port number", s.path, p, alias)
			}
			e.port = n
		} else {
			e.port = 22
		}
	}
	if e.user == "" {
		e.user = get("User")
	}
	if strings.EqualFold(get("IdentitiesOnly"), "yes") {
		e.identitiesOnly = true
	}
	jump := get("ProxyJump")
	if err != nil {
		return e, "", err
	}
	files, err := s.getAll(alias, "IdentityFile")
	if err != nil {
		return e, "", err
	}
	for _, f := range files {
		if strings.EqualFold(f, "none") {
			continue
		}
		e.identityFiles = append(e.identityFiles, expandPath(expandTokens(f, alias, e.host, home, e.user), home))
	}
	return e, jump, nil
}

// expandTokens expands the ssh_config tokens that make sense here (%h host
// name, %n original alias, %r remote user, %d home, %u local user, %%);
// others are left alone.
func expandTokens(s, alias, host, home, user string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	if host == "" {
		host = alias
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'h':
			b.WriteString(host)
		case 'n':
			b.WriteString(alias)
		case 'r', 'u':
			b.WriteString(user)
		case 'd':
			b.WriteString(home)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func expandPath(p, home string) string {
	if home != "" && (p == "~" || strings.HasPrefix(p, "~/")) {
		return filepath.Join(home, p[1:])
	}
	return p
}

// parseJump parses one hop of a ProxyJump list: [user@]host[:port], with
// an optional ssh:// prefix and IPv6 addresses in brackets.
func parseJump(s string) (user, host string, port int, err error) {
	spec := strings.TrimPrefix(strings.TrimSpace(s), "ssh://")
	if i := strings.LastIndex(spec, "@"); i >= 0 {
		user, spec = spec[:i], spec[i+1:]
	}
	host = spec
	if strings.HasPrefix(spec, "[") || strings.Count(spec, ":") == 1 {
		h, p, serr := net.SplitHostPort(spec)
		if serr != nil {
			if !strings.HasPrefix(spec, "[") || !strings.HasSuffix(spec, "]") {
				return "", "", 0, fmt.Errorf("jump host %q: %w", s, serr)
			}
			h = strings.Trim(spec, "[]")
		} else if port, err = strconv.Atoi(p); err != nil || port <= 0 || port > 65535 {
			return "", "", 0, fmt.Errorf("jump host %q: bad port %q", s, p)
		}
		host = h
	}
	if host == "" {
		return "", "", 0, fmt.Errorf("jump host %q: no host", s)
	}
	return user, host, port, nil
}

// route is the resolved way to the target: hops in connection order, then
// the target.
type route struct {
	hops   []endpoint
	target endpoint
}

// resolveRoute applies ssh_config and the ProxyJump chain to cfg.
func resolveRoute(cfg *Config, sc *sshConfig) (route, error) {
	var r route
	alias := cfg.ConfigHost
	if alias == "" {
		alias = cfg.Address
	}
	if alias == "" {
		return r, errors.New("no address: set Address or ConfigHost")
	}
	if cfg.ConfigHost != "" && (sc == nil || sc.cfg == nil) {
		if sc == nil {
			return r, fmt.Errorf("config host %q given but no ssh config file", cfg.ConfigHost)
		}
		return r, fmt.Errorf("config host %q: ssh config file %s does not exist", cfg.ConfigHost, sc.path)
	}
	over := endpoint{host: cfg.Address, port: cfg.Port, user: cfg.User, identityFiles: cfg.IdentityFiles, explicitIDs: len(cfg.IdentityFiles)}
	var target endpoint
	var jump string
	var err error
	if cfg.ConfigHost != "" {
		target, jump, err = sc.resolve(cfg.ConfigHost, over, cfg.HomeDir, cfg.LocalUser)
		if err != nil {
			return r, err
		}
	} else {
		// A bare address is not looked up in ssh_config: only the hosts the
		// inventory points at (ConfigHost, jump hosts) are.
		target = over
		target.alias = cfg.Address
		if target.port == 0 {
			target.port = 22
		}
	}
	if target.user == "" {
		target.user = "root"
	}
	if cfg.ProxyJump != "" {
		jump = cfg.ProxyJump
	}
	r.target = target
	r.hops, err = resolveJumps(jump, sc, cfg, 0)
	return r, err
}

// resolveJumps resolves a ProxyJump list. As with OpenSSH, the first hop's
// own ProxyJump (from ssh_config) is followed recursively; the others'
// are ignored, the list itself says how to reach them.
func resolveJumps(list string, sc *sshConfig, cfg *Config, depth int) ([]endpoint, error) {
	if list == "" || strings.EqualFold(list, "none") {
		return nil, nil
	}
	if depth > maxJumpDepth {
		return nil, fmt.Errorf("ProxyJump chain deeper than %d hops (a loop?)", maxJumpDepth)
	}
	var hops []endpoint
	for i, spec := range strings.Split(list, ",") {
		user, host, port, err := parseJump(spec)
		if err != nil {
			return nil, err
		}
		// The inventory's identity files are tried on jump hosts too: admins
		// commonly use one key for the bastion and the servers behind it.
		over := endpoint{user: user, port: port, identityFiles: cfg.IdentityFiles, explicitIDs: len(cfg.IdentityFiles)}
		e, jump, err := sc.resolve(host, over, cfg.HomeDir, cfg.LocalUser)
		if err != nil {
			return nil, err
		}
		if e.user == "" {
			e.user = cfg.LocalUser
		}
		if e.user == "" {
			return nil, fmt.Errorf("jump host %s: no user (give user@ in ProxyJump, User in ssh config, or LocalUser)", host)
		}
		if i == 0 && jump != "" {
			before, err := resolveJumps(jump, sc, cfg, depth+1)
			if err != nil {
				return nil, err
			}
			hops = append(hops, before...)
		}
		hops = append(hops, e)
	}
	return hops, nil
}
