package hostsetup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/report"
)

// nginxInventory is a host with one site and nothing else; {{upstream}}
// is the site's upstream.
const nginxInventory = `
version: 1
name: lab
dns:
  zones: [{name: example.test}]
acme: {email: admin@example.test, directory: "https://acme.example.test/dir"}
hosts:
  - name: h1
    provider: none
    ssh: {address: {{address}}}
    unattended_upgrades: false
    sites:
      - name: chat.example.test
        upstream: "{{upstream}}"
        client_max_body_size: 200M
`

func (r *labRig) nginxConfig(upstream string) Config {
	return r.config(r.inventory(strings.ReplaceAll(nginxInventory, "{{upstream}}", upstream)))
}

// labAppScript is the app behind nginx in these tests: on [::1]:3000, a
// plain GET is answered with what the app saw; a websocket upgrade gets
// its 101 (with the RFC 6455 accept key), then one text frame is echoed
// back, so the test sees data cross nginx in both directions after the
// upgrade.
const labAppScript = `import base64, hashlib, http.server, socket, socketserver

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            key = self.headers["Sec-WebSocket-Key"]
            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            head = self.rfile.read(2)
            mask = self.rfile.read(4)
            data = bytes(c ^ mask[i % 4] for i, c in enumerate(self.rfile.read(head[1] & 0x7F)))
            self.wfile.write(bytes([0x81, len(data)]) + data)
            self.wfile.flush()
            self.close_connection = True
            return
        body = ("app: %s %s host=%s proto=%s\n" % (self.command, self.path, self.headers.get("Host"), self.headers.get("X-Forwarded-Proto"))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

S(("::1", 3000), H).serve_forever()
`

// startApp runs labAppScript as a service in the host and waits until it
// answers on [::1]:3000.
func (r *labRig) startApp(ctx context.Context) {
	r.t.Helper()
	r.put(ctx, "/usr/local/lib/labapp.py", 0o644, []byte(labAppScript))
	r.sh(ctx, "systemd-run --quiet --unit=labapp --property=Restart=always python3 /usr/local/lib/labapp.py")
	for range 50 {
		if out, err := r.shErr(ctx, "curl -s http://[::1]:3000/ready"); err == nil && strings.HasPrefix(out, "app: GET /ready") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatal("the lab app does not answer on [::1]:3000")
}

// throughNginx is a GET of path on the site, from inside the host, over
// HTTPS to nginx on loopback (curl, certificate not checked: it is the
// temporary self-signed one).
func (r *labRig) throughNginx(ctx context.Context, path string) (string, error) {
	return r.shErr(ctx, "curl -sk --fail-with-body --max-time 5 --resolve chat.example.test:443:127.0.0.1 https://chat.example.test"+path)
}

// servedCertificate is the certificate nginx presents for the site, seen
// from inside the host through an SSH tunnel.
func servedCertificate(ctx context.Context, c *remote.Client) (*x509.Certificate, error) {
	conn, err := c.DialTCP(ctx, "127.0.0.1:443")
	if err != nil {
		return nil, err
	}
	tc := tls.Client(conn, &tls.Config{ServerName: "chat.example.test", InsecureSkipVerify: true})
	defer tc.Close()
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return tc.ConnectionState().PeerCertificates[0], nil
}

// TestLabNginxConfigThatNginxTRejectsLeavesThePreviousSiteServing: once a
// site serves, a run whose rendered configuration nginx -t refuses fails
// the step, puts every file back as it was, does not reload nginx, and
// the site keeps serving the app with the previous configuration. Two
// ways a real inventory or host gets there: an upstream nginx cannot
// resolve (the inventory's validation allows any host:port), and
// certificate files in certbot's layout that nginx cannot load (a broken
// deployment: host setup switches the site to them).
func TestLabNginxConfigThatNginxTRejectsLeavesThePreviousSiteServing(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	ctx := labCtx(t, 10*time.Minute)
	rig := newLabRig(t, lb, "nginx-rollback", "")
	rig.startApp(ctx)
	good := rig.nginxConfig("[::1]:3000")
	rig.mustRun(ctx, "site served", good, false)
	if out, err := rig.throughNginx(ctx, "/before"); err != nil || !strings.HasPrefix(out, "app: GET /before host=chat.example.test proto=https") {
		t.Fatalf("the site does not reach the app: %q %v", out, err)
	}
	files := []string{nginxCommon, siteAvailable("chat.example.test")}
	type snapshot struct {
		digests map[string]string
		link    string
		mainPID string
	}
	snap := func() snapshot {
		s := snapshot{digests: map[string]string{}}
		for _, f := range files {
			s.digests[f] = rig.fileDigest(ctx, f)
		}
		s.link = strings.TrimSpace(rig.sh(ctx, "readlink "+siteEnabled("chat.example.test")))
		s.mainPID = strings.TrimSpace(rig.sh(ctx, "systemctl show -p MainPID --value nginx"))
		return s
	}
	before := snap()

	refused := func(t *testing.T, what string, cfg Config, wantErr string) {
		t.Helper()
		lr := rig.run(ctx, what, cfg, false)
		x, _ := lr.task("nginx: sites")
		if lr.err == nil || x.Status != report.Failed ||
			!strings.Contains(x.Message, "nginx -t rejected the new configuration; the previous one was restored and nginx was not reloaded") ||
			!strings.Contains(x.Message, wantErr) {
			t.Fatalf("nginx: sites %s %q, want failed with %q", x.Status, x.Message, wantErr)
		}
		if _, ok := lr.task("reload nginx"); ok {
			t.Error("nginx was reloaded")
		}
		after := snap()
		for _, f := range files {
			if after.digests[f] != before.digests[f] {
				t.Errorf("%s not restored", f)
			}
		}
		if after.link != before.link || after.mainPID != before.mainPID {
			t.Errorf("site link or nginx process changed: %+v → %+v", before, after)
		}
		if _, err := rig.shErr(ctx, "nginx -t -q"); err != nil {
			t.Errorf("the configuration left on disk does not pass nginx -t: %v", err)
		}
		if out, err := rig.throughNginx(ctx, "/after"); err != nil || !strings.HasPrefix(out, "app: GET /after host=chat.example.test proto=https") {
			t.Errorf("the site stopped serving the app: %q %v", out, err)
		}
	}

	t.Run("an upstream nginx cannot resolve", func(t *testing.T) {
		refused(t, "upstream app.invalid:3000", rig.nginxConfig("app.invalid:3000"), `host not found in upstream "app.invalid:3000"`)
		if lr := rig.mustRun(ctx, "back to the good inventory", good, false); lr.recap.Changed != 0 {
			t.Errorf("the restored files are not the converged ones: %v", lr.res.changed())
		}
	})

	t.Run("certificate files nginx cannot load", func(t *testing.T) {
		live := LiveDir("chat.example.test")
		rig.put(ctx, live+"/fullchain.pem", 0o644, []byte("not a certificate\n"))
		rig.put(ctx, live+"/privkey.pem", 0o600, []byte("not a key\n"))
		refused(t, "broken certificate deployment", good, "fullchain.pem")
		c, err := rig.dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cert, err := servedCertificate(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if o := cert.Subject.Organization; len(o) != 1 || o[0] != "lghsctl temporary certificate" {
			t.Errorf("nginx serves %v, want the temporary certificate it had", cert.Subject)
		}
		rig.sh(ctx, "rm -r /etc/letsencrypt")
		if lr := rig.mustRun(ctx, "certificate files gone", good, false); lr.recap.Changed != 0 {
			t.Errorf("the restored files are not the converged ones: %v", lr.res.changed())
		}
	})
}

// TestLabNginxProxiesHTTPAndWebsocketUpgradesToTheApp: through the site
// host setup renders, from inside the host, plain HTTP is redirected to
// HTTPS, an HTTPS request reaches the app on [::1]:3000 with the proxy
// headers, and a websocket upgrade gets the app's 101 with a valid accept
// key, after which a frame crosses nginx to the app and back.
func TestLabNginxProxiesHTTPAndWebsocketUpgradesToTheApp(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	ctx := labCtx(t, 10*time.Minute)
	rig := newLabRig(t, lb, "nginx-ws", "")
	rig.startApp(ctx)
	rig.mustRun(ctx, "site", rig.nginxConfig("[::1]:3000"), false)

	if out := rig.sh(ctx, "curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: chat.example.test' http://127.0.0.1/x"); out != "301 https://chat.example.test/x" {
		t.Errorf("plain HTTP: %q, want the redirect to HTTPS", out)
	}
	for _, addr := range []string{"127.0.0.1", "[::1]"} {
		out, err := rig.shErr(ctx, "curl -sk --fail-with-body --max-time 5 --resolve chat.example.test:443:"+addr+" https://chat.example.test/hello")
		if want := "app: GET /hello host=chat.example.test proto=https\n"; err != nil || out != want {
			t.Errorf("HTTPS over %s: %q %v, want %q", addr, out, err, want)
		}
	}

	c, err := rig.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, err := c.DialTCP(ctx, "127.0.0.1:443")
	if err != nil {
		t.Fatal(err)
	}
	// HTTP/1.1 only: a websocket upgrade is an HTTP/1.1 mechanism.
	tc := tls.Client(conn, &tls.Config{ServerName: "chat.example.test", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	keyBytes := make([]byte, 16)
	rand.Read(keyBytes)
	key := base64.StdEncoding.EncodeToString(keyBytes)
	fmt.Fprintf(tc, "GET /websocket HTTP/1.1\r\nHost: chat.example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") ||
		resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("websocket upgrade through nginx: %s %v", resp.Status, resp.Header)
	}
	// One masked text frame (client to server), echoed unmasked.
	payload := []byte("ping through nginx")
	mask := []byte{1, 2, 3, 4}
	frame := append([]byte{0x81, 0x80 | byte(len(payload))}, mask...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	if _, err := tc.Write(frame); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 2)
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatalf("no frame back through nginx: %v", err)
	}
	echo := make([]byte, head[1]&0x7f)
	if _, err := io.ReadFull(br, echo); err != nil {
		t.Fatal(err)
	}
	if head[0] != 0x81 || !bytes.Equal(echo, payload) {
		t.Errorf("frame back: %x %q, want text %q", head[0], echo, payload)
	}
}

// TestLabNginxFirstRunThatNginxTRejectsLeavesDebiansDefaultSite: on a
// fresh host, a first run whose site nginx -t refuses removes what it
// wrote, puts Debian's default site back, and nginx keeps serving it (the
// reload the new temporary certificate asked for reloads that); the fixed
// inventory then converges.
func TestLabNginxFirstRunThatNginxTRejectsLeavesDebiansDefaultSite(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	ctx := labCtx(t, 10*time.Minute)
	rig := newLabRig(t, lb, "nginx-first", "")
	lr := rig.run(ctx, "first run, upstream app.invalid:3000", rig.nginxConfig("app.invalid:3000"), false)
	if x, _ := lr.task("nginx: sites"); lr.err == nil || x.Status != report.Failed || !strings.Contains(x.Message, "the previous one was restored") {
		t.Fatalf("nginx: sites %s %q", x.Status, x.Message)
	}
	got := rig.sh(ctx, "find /etc/nginx/conf.d /etc/nginx/sites-available /etc/nginx/sites-enabled -mindepth 1 | sort; readlink /etc/nginx/sites-enabled/*")
	if want := "/etc/nginx/sites-available/default\n/etc/nginx/sites-enabled/default\n/etc/nginx/sites-available/default\n"; got != want {
		t.Errorf("nginx's configuration directories: %q, want Debian's default site alone %q", got, want)
	}
	if out := rig.sh(ctx, "systemctl is-active nginx; curl -s http://127.0.0.1/ | grep -c '<title>Welcome to nginx'"); out != "active\n1\n" {
		t.Errorf("nginx does not serve its default site: %q", out)
	}
	if lr := rig.mustRun(ctx, "fixed upstream", rig.nginxConfig("[::1]:3000"), false); lr.recap.Failed != 0 {
		t.Fatal("the fixed inventory does not converge")
	}
}
