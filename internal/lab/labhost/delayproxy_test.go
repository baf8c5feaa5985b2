package labhost_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labhost"
)

// TestDelayProxyAddsTheDelayEachWayWithoutLimitingThroughput runs on
// loopback (no lab needed).
func TestDelayProxyAddsTheDelayEachWayWithoutLimitingThroughput(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	const delay = 50 * time.Millisecond
	p, err := labhost.StartDelayProxy(context.Background(), "127.0.0.1:0", ln.Addr().String(), delay)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	var rtts []time.Duration
	for range 5 {
		t0 := time.Now()
		c.Write([]byte("ping\n"))
		if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("echo: %q %v", line, err)
		}
		rtts = append(rtts, time.Since(t0))
	}
	for _, rtt := range rtts[1:] {
		if rtt < 2*delay || rtt > 2*delay+60*time.Millisecond {
			t.Errorf("round trip %v through a %v proxy, want about %v", rtt, delay, 2*delay)
		}
	}
	// 16 MiB echoed: pipelined, so far faster than one chunk per delay.
	const size = 16 << 20
	t0 := time.Now()
	go func() { c.Write(make([]byte, size)) }()
	if _, err := io.CopyN(io.Discard, r, size); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 2*time.Second {
		t.Errorf("16 MiB through the proxy took %v", took)
	}
	// Half-close passes through after the data.
	c.(*net.TCPConn).CloseWrite()
	if _, err := r.ReadByte(); err != io.EOF {
		t.Errorf("after half-close: %v, want EOF", err)
	}
}
