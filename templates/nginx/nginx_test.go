package nginx

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the rendering:\n%s", path, got)
	}
}

var lghs = Site{
	Inventory:         "lghs",
	Name:              "chat.lghs.be",
	Upstream:          "[::1]:3000",
	Websockets:        true,
	ClientMaxBodySize: "200M",
	HSTS:              true,
	CertFile:          "/etc/letsencrypt/live/chat.lghs.be/fullchain.pem",
	KeyFile:           "/etc/letsencrypt/live/chat.lghs.be/privkey.pem",
}

// TestSiteGoldenPerNginxVersion renders the LgHS site for Debian 12's nginx
// (1.22: "listen ... http2") and Debian 13's (1.26: "http2 on;").
func TestSiteGoldenPerNginxVersion(t *testing.T) {
	for _, tc := range []struct{ file, version string }{
		{"chat.lghs.be-nginx-1.22.conf", "nginx version: nginx/1.22.1"},
		{"chat.lghs.be-nginx-1.26.conf", "1.26.3-3+deb13u1"},
	} {
		v, err := ParseVersion(tc.version)
		if err != nil {
			t.Fatal(err)
		}
		got, err := RenderSite(lghs, v)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, tc.file, got)
	}
}

func TestCommonGolden(t *testing.T) {
	got, err := RenderCommon("lghs")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "lghsctl-common.conf", got)
}

func TestHTTP2SyntaxFollowsTheVersion(t *testing.T) {
	for v, want := range map[Version]string{
		{1, 22, 1}: "listen 443 ssl http2;",
		{1, 25, 0}: "listen 443 ssl http2;",
		{1, 25, 1}: "http2 on;",
		{1, 26, 3}: "http2 on;",
		{2, 0, 0}:  "http2 on;",
	} {
		got, _ := RenderSite(lghs, v)
		if !strings.Contains(string(got), want) {
			t.Errorf("nginx %s: rendering lacks %q", v, want)
		}
	}
}

// TestNoOCSPStaplingByDefault: Let's Encrypt ended OCSP in 2025, and
// stapling with a certificate without an OCSP URL only logs warnings.
func TestNoOCSPStaplingByDefault(t *testing.T) {
	got, _ := RenderSite(lghs, Version{1, 26, 3})
	if strings.Contains(string(got), "ssl_stapling") {
		t.Error("OCSP stapling rendered without being asked for")
	}
	s := lghs
	s.OCSPStapling = true
	got, _ = RenderSite(s, Version{1, 26, 3})
	if !strings.Contains(string(got), "ssl_stapling on;") {
		t.Error("OCSP stapling not rendered when asked for")
	}
}

func TestWebsocketsOff(t *testing.T) {
	s := lghs
	s.Websockets = false
	got, _ := RenderSite(s, Version{1, 22, 1})
	if strings.Contains(string(got), "$connection_upgrade") {
		t.Error("websocket headers rendered with websockets off")
	}
}

func TestUnsafeValuesAreRefused(t *testing.T) {
	for name, mut := range map[string]func(*Site){
		"name":     func(s *Site) { s.Name = "a; include /etc/passwd" },
		"upstream": func(s *Site) { s.Upstream = "x:1; }" },
		"size":     func(s *Site) { s.ClientMaxBodySize = "1M;" },
		"cert":     func(s *Site) { s.CertFile = "/x;y" },
	} {
		s := lghs
		mut(&s)
		if _, err := RenderSite(s, Version{1, 22, 1}); err == nil {
			t.Errorf("%s: unsafe value rendered", name)
		}
	}
}
