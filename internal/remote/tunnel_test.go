package remote_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/remote/remotetest"
)

// echoServer stands for a database bound to the server's loopback: it
// answers each line with "echo: " and the line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					io.WriteString(c, "echo: "+sc.Text()+"\n")
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, line string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(got)
}

func TestDialTCPReachesAnAddressSeenFromTheServer(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	db := echoServer(t)
	c := dial(t, l.config())
	conn, err := c.DialTCP(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := roundTrip(t, conn, "ping"); got != "echo: ping" {
		t.Errorf("got %q", got)
	}
	if !slices.Equal(l.srv.Forwards(), []string{db}) {
		t.Errorf("server forwarded to %q, want %s", l.srv.Forwards(), db)
	}

	// The net.Dialer shape, as drivers take it.
	conn2, err := c.DialContext(context.Background(), "tcp", db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if got := roundTrip(t, conn2, "pong"); got != "echo: pong" {
		t.Errorf("got %q", got)
	}
	if _, err := c.DialContext(context.Background(), "udp", db); err == nil {
		t.Error("DialContext accepted udp")
	}
}

func TestForwardExposesTheRemoteAddressOnLocalLoopbackUntilClosed(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	db := echoServer(t)
	c := dial(t, l.config())
	tun, err := remote.Forward(context.Background(), c, db)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tun.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %s, want a loopback address", tun.Addr())
	}
	for i := range 2 {
		conn, err := net.Dial("tcp", tun.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if got := roundTrip(t, conn, "n"+string(rune('0'+i))); got != "echo: n"+string(rune('0'+i)) {
			t.Errorf("connection %d got %q", i, got)
		}
		defer conn.Close()
	}
	open, _ := net.Dial("tcp", tun.Addr())
	roundTrip(t, open, "still open")
	tun.Close()
	// The connection in flight is closed and no new one is accepted.
	open.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := open.Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after Close")
	}
	if conn, err := net.DialTimeout("tcp", tun.Addr(), time.Second); err == nil {
		conn.Close()
		t.Error("tunnel still accepts after Close")
	}
}

func TestForwardReportsARefusedRemoteSide(t *testing.T) {
	h := remotetest.NewHost("fake")
	ctx, cancel := context.WithCancel(context.Background())
	tun, err := remote.Forward(ctx, h, "127.0.0.1:27017")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", tun.Addr())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("read succeeded through a refused tunnel")
	}
	conn.Close()
	if err := tun.Err(); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Err() = %v, want the refusal", err)
	}
	cancel() // ctx ends the tunnel too
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", tun.Addr(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("tunnel still accepts after its context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	tun.Close()
}
