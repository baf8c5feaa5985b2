package labreg

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestPullProtocol walks the requests docker pull makes: the API check,
// the manifest by tag (HEAD then GET), then the config and layer blobs by
// digest, each matching its digest.
func TestPullProtocol(t *testing.T) {
	r := New()
	md, err := r.Add(Image{Name: "lghs/app", Tag: "1.0", Files: []File{{Path: "/usr/local/bin/app", Mode: 0o755, Data: []byte("#!binary")}}, Entrypoint: []string{"/usr/local/bin/app"}})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := NewTLS([]string{"registry.lab.test"}, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(r)
	srv.TLS = tl.Config
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(tl.CAPEM)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	get := func(method, path string, want int) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s = %d, want %d: %s", method, path, resp.StatusCode, want, b)
		}
		return resp, b
	}
	get("GET", "/v2/", 200)
	resp, _ := get("HEAD", "/v2/lghs/app/manifests/1.0", 200)
	if resp.Header.Get("Docker-Content-Digest") != md || resp.Header.Get("Content-Type") != ManifestType {
		t.Errorf("headers = %v", resp.Header)
	}
	_, body := get("GET", "/v2/lghs/app/manifests/1.0", 200)
	var m struct {
		Config struct{ Digest string }   `json:"config"`
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{m.Config.Digest, m.Layers[0].Digest} {
		_, b := get("GET", "/v2/lghs/app/blobs/"+d, 200)
		s := sha256.Sum256(b)
		if "sha256:"+hex.EncodeToString(s[:]) != d {
			t.Errorf("blob %s has another digest", d)
		}
	}
	get("GET", "/v2/lghs/app/manifests/"+md, 200)
	get("GET", "/v2/lghs/app/manifests/2.0", 404)
	get("PUT", "/v2/lghs/app/manifests/2.0", 405)

	// Building again gives the same digest (deterministic layers).
	again, _ := New().Add(Image{Name: "lghs/app", Tag: "1.0", Files: []File{{Path: "/usr/local/bin/app", Mode: 0o755, Data: []byte("#!binary")}}, Entrypoint: []string{"/usr/local/bin/app"}})
	if again != md {
		t.Error("building the same image twice gave two digests")
	}
}

// TestBuildOnDemand: a tag that was never added is built by Build when the
// registry can, and stays unknown when it cannot.
func TestBuildOnDemand(t *testing.T) {
	r := New()
	r.Build = func(name, tag string) (*Image, error) {
		if name != "lghs/app" {
			return nil, nil
		}
		return &Image{Files: []File{{Path: "/app", Mode: 0o755, Data: []byte(tag)}, {Path: "/bin/app", Link: "/app"}}, Entrypoint: []string{"/app"}}, nil
	}
	srv := httptest.NewServer(r)
	defer srv.Close()
	for path, want := range map[string]int{
		"/v2/lghs/app/manifests/2.5":   200,
		"/v2/lghs/other/manifests/2.5": 404,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	if _, ok := r.manifests["lghs/app:2.5"]; !ok {
		t.Error("the built image was not kept")
	}
}
