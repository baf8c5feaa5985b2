package remotetest_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/remote/remotetest"
)

func TestRespondersLastMatchWinsAndUnmatchedCommandsFail(t *testing.T) {
	h := remotetest.NewHost("fake")
	ctx := context.Background()
	h.On(remotetest.Any(), remotetest.Reply(""))
	h.On(remotetest.Prefix("systemctl is-active"), remotetest.Reply("active\n"))
	h.On(remotetest.Exact("systemctl is-active docker"), remotetest.Fail(3, "inactive"))

	if out, err := h.Run(ctx, "systemctl is-active nginx", nil); err != nil || string(out) != "active\n" {
		t.Errorf("nginx: %q, %v", out, err)
	}
	_, err := h.Run(ctx, "systemctl is-active docker", nil)
	var ce *remote.CommandError
	if !errors.As(err, &ce) || ce.ExitCode != 3 || ce.Stderr != "inactive" || ce.Host != "fake" {
		t.Errorf("docker: %v, want a CommandError with status 3", err)
	}
	if out, err := h.Run(ctx, "anything", nil); err != nil || len(out) != 0 {
		t.Errorf("catch-all: %q, %v", out, err)
	}

	strict := remotetest.NewHost("strict")
	if _, err := strict.Run(ctx, "rm -rf /", nil); !errors.As(err, &ce) || ce.ExitCode != 127 {
		t.Errorf("unmatched: %v, want exit status 127", err)
	}
}

func TestRunRecordsStdinApartFromTheCommand(t *testing.T) {
	h := remotetest.NewHost("fake")
	h.On(remotetest.Regexp(`^tee /etc/lghsctl/[a-z]+\.token$`), func(_ context.Context, c remotetest.Call) remotetest.Response {
		return remotetest.Response{Stdout: strings.ToUpper(string(c.Stdin))}
	})
	out, err := h.Run(context.Background(), "tee /etc/lghsctl/cf.token", strings.NewReader("s3cret"))
	if err != nil || string(out) != "S3CRET" {
		t.Fatalf("Run = %q, %v", out, err)
	}
	calls := h.Calls()
	if len(calls) != 1 || calls[0].Cmd != "tee /etc/lghsctl/cf.token" || string(calls[0].Stdin) != "s3cret" {
		t.Errorf("Calls = %+v", calls)
	}
	if !slices.Equal(h.Commands(), []string{"tee /etc/lghsctl/cf.token"}) {
		t.Errorf("Commands = %q", h.Commands())
	}
}

func TestResponderSeesCancellation(t *testing.T) {
	h := remotetest.NewHost("fake")
	h.On(remotetest.Exact("sleep 100"), func(ctx context.Context, _ remotetest.Call) remotetest.Response {
		<-ctx.Done()
		return remotetest.Response{Exit: 143}
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Run(ctx, "sleep 100", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v, want context.Canceled", err)
	}
}

func TestFilesKeepModeAndOwnersAndWritesCanFail(t *testing.T) {
	h := remotetest.NewHost("fake")
	ctx := context.Background()
	if err := h.WriteFile(ctx, "/etc/nginx/nginx.conf", []byte("x"), 0o644, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile(ctx, "/etc/ssl/private/key.pem", []byte("k"), 0o600, "root", "ssl-cert"); err != nil {
		t.Fatal(err)
	}
	f, ok := h.File("/etc/ssl/private/key.pem")
	if !ok || f.Mode != 0o600 || f.Owner != "root" || f.Group != "ssl-cert" || string(f.Data) != "k" {
		t.Errorf("key file = %+v, %v", f, ok)
	}
	if f, _ := h.File("/etc/nginx/nginx.conf"); f.Owner != "root" || f.Group != "root" {
		t.Errorf("empty owner/group should be root, got %+v", f)
	}
	if b, err := h.ReadFile(ctx, "/etc/nginx/nginx.conf"); err != nil || string(b) != "x" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	if _, err := h.ReadFile(ctx, "/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(/nope): %v, want fs.ErrNotExist", err)
	}
	fi, err := h.Stat(ctx, "/etc/ssl/private/key.pem")
	if err != nil || fi.Mode != 0o600 || fi.Size != 1 || fi.SHA256 != "8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a" {
		t.Errorf("Stat = %+v, %v", fi, err)
	}

	h.FailWrite("/etc/nginx/nginx.conf", errors.New("no space left on device"))
	if err := h.WriteFile(ctx, "/etc/nginx/nginx.conf", []byte("new"), 0o644, "", ""); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("WriteFile: %v, want the injected failure", err)
	}
	if f, _ := h.File("/etc/nginx/nginx.conf"); string(f.Data) != "x" {
		t.Errorf("a failed write changed the file to %q", f.Data)
	}
	if err := h.WriteFile(ctx, "relative", nil, 0o644, "", ""); err == nil {
		t.Error("relative path accepted")
	}
	var ops []string
	for _, c := range h.Calls() {
		ops = append(ops, c.Op+" "+c.Path)
	}
	want := []string{"write /etc/nginx/nginx.conf", "write /etc/ssl/private/key.pem", "read /etc/nginx/nginx.conf", "read /nope", "stat /etc/ssl/private/key.pem", "write /etc/nginx/nginx.conf"}
	if !slices.Equal(ops, want) {
		t.Errorf("calls %q, want %q", ops, want)
	}
}

func TestDialTCPReachesHandlers(t *testing.T) {
	h := remotetest.NewHost("fake")
	h.HandleTCP("127.0.0.1:27017", func(c net.Conn) {
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "mongo says "+line)
	})
	c, err := h.DialTCP(context.Background(), "127.0.0.1:27017")
	if err != nil {
		t.Fatal(err)
	}
	go io.WriteString(c, "hello\n")
	got, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if got != "mongo says hello\n" {
		t.Errorf("got %q", got)
	}
	if _, err := h.DialTCP(context.Background(), "127.0.0.1:5432"); err == nil {
		t.Error("dial to an address nobody handles succeeded")
	}
}
