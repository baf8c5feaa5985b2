package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/lghs/lghsctl/certs"
	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
)

// TestCertsStatusReadsEachHostOverSSH runs `lghsctl certs status` from the
// operator's side against a lab host holding a deployed certificate and a
// renewal state, with the host key pinned in the inventory's known_hosts.
func TestCertsStatusReadsEachHostOverSSH(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "id_ed25519"), pem.EncodeToMemory(blk), 0o600)
	authKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	h := labtest.Host(t, lb, labhost.Spec{Name: "chat", AuthorizedKeys: []string{authKey}})
	os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(strings.Join(h.KnownHosts(), "\n")+"\n"), 0o600)

	chain := selfSignedPEM(t, "chat.lghs-be.test")
	info, _, _ := certs.Inspect(chain)
	c := labtest.Dial(t, h, signer)
	labtest.SSH(t, c, "mkdir -p /etc/letsencrypt/live/chat.lghs-be.test "+certs.HostStateDir+" && cat > /etc/letsencrypt/live/chat.lghs-be.test/fullchain.pem <<'EOF'\n"+string(chain)+"EOF\n"+
		"cat > "+certs.HostStateFile+" <<'EOF'\n"+`{"finished":"2026-11-22T04:12:00Z","ok":true,"certificates":[{"name":"chat.lghs-be.test","cert":{},"result":"valid","detail":"not due"}]}`+"\nEOF\n")

	inv := fmt.Sprintf(`version: 1
name: lghs-lab
dns: {zones: [{name: lghs-be.test}]}
acme: {email: infra@lghs-be.test}
hosts:
  - name: lghs-chat
    provider: none
    ssh: {address: %s, identity_file: id_ed25519}
    sites:
      - {name: chat.lghs-be.test, upstream: "[::1]:3000"}
`, h.Addr4())
	os.WriteFile(filepath.Join(dir, "inventory.yaml"), []byte(inv), 0o644)
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"certs", "status", "-i", filepath.Join(dir, "inventory.yaml")},
		IO{In: strings.NewReader(""), Out: &out, Err: &errb, Getenv: func(k string) string {
			if k == "HOME" {
				return dir
			}
			return ""
		}})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"lghs-chat: chat.lghs-be.test\n", "  serial   " + info.Serial + "\n", "  renewal  valid at 2026-11-22T04:12:00Z: not due\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}

	// A host whose key is not the pinned one is refused, and said so.
	os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(h.Addr4().String()+" "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))+"\n"), 0o600)
	out.Reset()
	errb.Reset()
	code = Main(context.Background(), []string{"certs", "status", "-i", filepath.Join(dir, "inventory.yaml")},
		IO{In: strings.NewReader(""), Out: &out, Err: &errb, Getenv: func(k string) string { return map[string]string{"HOME": dir}[k] }})
	if code != ExitFailure || !strings.Contains(errb.String(), "lghsctl: lghs-chat: ") {
		t.Errorf("changed host key: exit %d, stderr %s", code, errb.String())
	}
	t.Logf("changed host key: %s", errb.String())
}
