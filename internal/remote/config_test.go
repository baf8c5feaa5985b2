package remote

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseJump(t *testing.T) {
	for _, tc := range []struct {
		in         string
		user, host string
		port       int
		err        bool
	}{
		{in: "bastion", host: "bastion"},
		{in: "admin@bastion", user: "admin", host: "bastion"},
		{in: "admin@bastion:2222", user: "admin", host: "bastion", port: 2222},
		{in: "ssh://admin@bastion:2222", user: "admin", host: "bastion", port: 2222},
		{in: "[2001:db8::1]:22", host: "2001:db8::1", port: 22},
		{in: "[2001:db8::1]", host: "2001:db8::1"},
		{in: "2001:db8::1", host: "2001:db8::1"},
		{in: "me@host@corp@bastion", user: "me@host@corp", host: "bastion"},
		{in: "bastion:http", err: true},
		{in: "bastion:0", err: true},
		{in: "admin@", err: true},
	} {
		user, host, port, err := parseJump(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("parseJump(%q) succeeded", tc.in)
			}
			continue
		}
		if err != nil || user != tc.user || host != tc.host || port != tc.port {
			t.Errorf("parseJump(%q) = %q, %q, %d, %v; want %q, %q, %d", tc.in, user, host, port, err, tc.user, tc.host, tc.port)
		}
	}
}

func TestResolveRoute(t *testing.T) {
	home := "/home/ada"
	file := filepath.Join(t.TempDir(), "config")
	os.WriteFile(file, []byte(`
Host chat
    HostName 10.0.0.5
    User admin
    Port 2200
    IdentityFile ~/.ssh/chat_%r
    IdentityFile none
    IdentitiesOnly yes
    ProxyJump gate,inner
Host gate
    HostName gate.example
    ProxyJump outer
Host outer
    User out
Host inner
    User in
    Port 2022
    IdentityFile %d/.ssh/inner
Host loop
    ProxyJump loop2
Host loop2
    ProxyJump loop
Host *
    IdentityFile ~/.ssh/everyone
`), 0o600)
	sc, err := loadSSHConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	ep := func(alias, host string, port int, user string, ids []string, explicit int, only bool) endpoint {
		return endpoint{alias: alias, host: host, port: port, user: user, identityFiles: ids, explicitIDs: explicit, identitiesOnly: only}
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want route
		err  string
	}{{
		name: "alias with a chain; the first hop's own ProxyJump is followed",
		cfg:  Config{ConfigHost: "chat", HomeDir: home, LocalUser: "ada"},
		want: route{
			hops: []endpoint{
				ep("outer", "outer", 22, "out", []string{"/home/ada/.ssh/everyone"}, 0, false),
				ep("gate", "gate.example", 22, "ada", []string{"/home/ada/.ssh/everyone"}, 0, false),
				ep("inner", "inner", 2022, "in", []string{"/home/ada/.ssh/inner", "/home/ada/.ssh/everyone"}, 0, false),
			},
			target: ep("chat", "10.0.0.5", 2200, "admin", []string{"/home/ada/.ssh/chat_admin", "/home/ada/.ssh/everyone"}, 0, true),
		},
	}, {
		name: "explicit fields override the alias",
		cfg:  Config{ConfigHost: "chat", Address: "192.0.2.1", Port: 22, User: "root", IdentityFiles: []string{"/k"}, ProxyJump: "none", HomeDir: home},
		want: route{target: ep("chat", "192.0.2.1", 22, "root", []string{"/k", "/home/ada/.ssh/chat_root", "/home/ada/.ssh/everyone"}, 1, true)},
	}, {
		name: "a bare address is not looked up; defaults are root and 22",
		cfg:  Config{Address: "chat", HomeDir: home},
		want: route{target: ep("chat", "chat", 22, "root", nil, 0, false)},
	}, {
		name: "jump hosts need a user",
		cfg:  Config{Address: "10.0.0.9", ProxyJump: "nobody.example"},
		err:  "jump host nobody.example: no user",
	}, {
		name: "ProxyJump loops are cut",
		cfg:  Config{Address: "10.0.0.9", ProxyJump: "loop", LocalUser: "ada"},
		err:  "deeper than",
	}, {
		name: "an address is needed",
		cfg:  Config{},
		err:  "no address",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveRoute(&tc.cfg, sc)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("route =\n%s\nwant\n%s", dump(got), dump(tc.want))
			}
		})
	}
}

func dump(r route) string {
	var b strings.Builder
	for _, h := range append(r.hops, r.target) {
		fmt.Fprintf(&b, "  %+v\n", h)
	}
	return b.String()
}
