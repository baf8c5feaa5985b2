// Package nginx renders lghsctl's nginx configuration from embedded
// templates: one reverse-proxy site per inventory site and one shared file.
// Rendering is pure (no I/O) and golden-tested; hostsetup writes the result,
// validates it with nginx -t and rolls back on failure.
package nginx

import (
	"bytes"
	"embed"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

//go:embed *.tmpl
var files embed.FS

var templates = template.Must(template.New("").Option("missingkey=error").ParseFS(files, "*.tmpl"))

// Site is what one reverse-proxied site needs.
type Site struct {
	// Inventory names the inventory in the "managed by" header.
	Inventory string
	// Name is the primary server name; Aliases are the others.
	Name    string
	Aliases []string
	// Upstream is the application's host:port, e.g. [::1]:3000.
	Upstream          string
	Websockets        bool
	ClientMaxBodySize string
	HSTS              bool
	// CertFile and KeyFile are the certificate (full chain) and key paths.
	CertFile, KeyFile string
	// OCSPStapling turns on stapling; only for CAs that still run OCSP
	// (Let's Encrypt ended its OCSP service in 2025).
	OCSPStapling bool
}

// Version is an nginx version like 1.22.1.
type Version struct{ Major, Minor, Patch int }

var versionRE = regexp.MustCompile(`(\d+)\.(\d+)\.(\d+)`)

// ParseVersion reads a version from text such as `nginx -v` output
// ("nginx version: nginx/1.22.1") or a Debian package version
// ("1.22.1-9+deb12u2").
func ParseVersion(s string) (Version, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("no nginx version in %q", s)
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	c, _ := strconv.Atoi(m[3])
	return Version{a, b, c}, nil
}

func (v Version) atLeast(o Version) bool {
	if v.Major != o.Major {
		return v.Major > o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor > o.Minor
	}
	return v.Patch >= o.Patch
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// http2Directive is the first version with "http2 on;"; before it, HTTP/2
// is a parameter of listen (deprecated since).
var http2Directive = Version{1, 25, 1}

// RenderSite renders the site's server blocks for the given nginx version.
func RenderSite(s Site, v Version) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	data := struct {
		Site
		ServerNames    string
		UpstreamName   string
		HTTP2Directive bool
	}{
		Site:           s,
		ServerNames:    strings.Join(append([]string{s.Name}, s.Aliases...), " "),
		UpstreamName:   "lghsctl_" + strings.NewReplacer(".", "_", "-", "_").Replace(s.Name),
		HTTP2Directive: v.atLeast(http2Directive),
	}
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, "site.conf.tmpl", data); err != nil {
		return nil, fmt.Errorf("render nginx site %s: %w", s.Name, err)
	}
	return b.Bytes(), nil
}

// RenderCommon renders the http-level configuration shared by all sites
// (the websocket map), installed once in conf.d.
func RenderCommon(inventory string) ([]byte, error) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, "common.conf.tmpl", struct{ Inventory string }{inventory}); err != nil {
		return nil, fmt.Errorf("render nginx common config: %w", err)
	}
	return b.Bytes(), nil
}

var (
	safeName = regexp.MustCompile(`^[a-z0-9.-]+$`)
	safeSize = regexp.MustCompile(`^[0-9]+[kKmMgG]?$`)
	safePath = regexp.MustCompile(`^/[A-Za-z0-9._/-]+$`)
	safeAddr = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$`)
)

// check refuses values that could inject nginx directives; the inventory
// validates them too, this is the last line of defence.
func (s Site) check() error {
	for _, n := range append([]string{s.Name}, s.Aliases...) {
		if !safeName.MatchString(n) {
			return fmt.Errorf("nginx site: unsafe server name %q", n)
		}
	}
	switch {
	case !safeAddr.MatchString(s.Upstream):
		return fmt.Errorf("nginx site %s: unsafe upstream %q", s.Name, s.Upstream)
	case !safeSize.MatchString(s.ClientMaxBodySize):
		return fmt.Errorf("nginx site %s: unsafe client_max_body_size %q", s.Name, s.ClientMaxBodySize)
	case !safePath.MatchString(s.CertFile) || !safePath.MatchString(s.KeyFile):
		return fmt.Errorf("nginx site %s: unsafe certificate paths %q, %q", s.Name, s.CertFile, s.KeyFile)
	}
	return nil
}
