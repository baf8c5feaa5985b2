// Package labreg is the lab's container registry: no registry is reachable
// from this machine, so the lab builds its images itself, as `docker
// import` would, from local files (a static binary is an image), and
// serves them read-only over the Docker Registry HTTP API v2, the way
// hosts pull images in production. Hosts trust it through
// /etc/docker/certs.d/<registry>/ca.crt.
package labreg

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Media types of the Docker image manifest, schema 2.
const (
	ManifestType = "application/vnd.docker.distribution.manifest.v2+json"
	ConfigType   = "application/vnd.docker.container.image.v1+json"
	LayerType    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// File is one file of an image: a regular file, or a symbolic link when
// Link is set.
type File struct {
	Path string // absolute, e.g. /usr/local/bin/app
	Mode fs.FileMode
	Data []byte
	Link string // target of a symbolic link, e.g. mongotools
}

// Image describes an image to build: one layer holding Files.
type Image struct {
	Name       string // repository, e.g. lghs/rocketchat
	Tag        string
	Files      []File
	Entrypoint []string
	Cmd        []string
	Env        []string
	// ExposedPorts like "3000/tcp".
	ExposedPorts []string
	WorkingDir   string
}

type blob struct {
	data      []byte
	mediaType string
}

// Registry serves built images. It is safe for concurrent use.
type Registry struct {
	// Build, if set, builds an image asked for by a tag that was not
	// added (nil when the registry has no such image): an inventory
	// changed while the lab runs can name a new version.
	Build func(name, tag string) (*Image, error)

	mu        sync.RWMutex
	blobs     map[string]blob   // digest → content
	manifests map[string]string // "name:tag" and "name@digest" → manifest digest
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{blobs: map[string]blob{}, manifests: map[string]string{}}
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// Add builds an image and makes it available as name:tag. Building is
// deterministic: the same files give the same digests.
func (r *Registry) Add(img Image) (digest string, err error) {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	dirs := map[string]bool{}
	files := append([]File(nil), img.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	epoch := time.Unix(0, 0)
	for _, f := range files {
		if !strings.HasPrefix(f.Path, "/") {
			return "", fmt.Errorf("image %s:%s: file path %q must be absolute", img.Name, img.Tag, f.Path)
		}
		parts := strings.Split(strings.Trim(f.Path, "/"), "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/") + "/"
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
					return "", err
				}
			}
		}
		if f.Link != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(f.Path, "/"), Linkname: f.Link, Mode: 0o777, ModTime: epoch}); err != nil {
				return "", err
			}
			continue
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.Path, "/"), Mode: int64(f.Mode.Perm()), Size: int64(len(f.Data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return "", err
		}
	}
	// /tmp, which programs expect.
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: epoch}); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	diffID := digestOf(layer.Bytes())
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(layer.Bytes())
	zw.Close()
	layerBlob := gz.Bytes()

	ports := map[string]struct{}{}
	for _, p := range img.ExposedPorts {
		ports[p] = struct{}{}
	}
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch.UTC().Format(time.RFC3339),
		"config": map[string]any{
			"Entrypoint":   img.Entrypoint,
			"Cmd":          img.Cmd,
			"Env":          append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, img.Env...),
			"ExposedPorts": ports,
			"WorkingDir":   img.WorkingDir,
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history": []map[string]string{{"created": epoch.UTC().Format(time.RFC3339), "created_by": "lghsctl lab"}},
	})
	if err != nil {
		return "", err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ManifestType,
		"config":        map[string]any{"mediaType": ConfigType, "size": len(config), "digest": digestOf(config)},
		"layers":        []map[string]any{{"mediaType": LayerType, "size": len(layerBlob), "digest": digestOf(layerBlob)}},
	})
	if err != nil {
		return "", err
	}
	md := digestOf(manifest)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blobs[digestOf(layerBlob)] = blob{layerBlob, "application/octet-stream"}
	r.blobs[digestOf(config)] = blob{config, "application/octet-stream"}
	r.blobs[md] = blob{manifest, ManifestType}
	r.manifests[img.Name+":"+img.Tag] = md
	r.manifests[img.Name+"@"+md] = md
	return md, nil
}

// ServeHTTP answers the read-only part of the Docker Registry HTTP API v2
// that `docker pull` uses.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the lab registry is read-only")
		return
	}
	path := strings.TrimPrefix(req.URL.Path, "/v2/")
	if req.URL.Path == "/v2/" || req.URL.Path == "/v2" {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
		return
	}
	if !strings.HasPrefix(req.URL.Path, "/v2/") {
		http.NotFound(w, req)
		return
	}
	var name, kind, ref string
	if i := strings.LastIndex(path, "/manifests/"); i >= 0 {
		name, kind, ref = path[:i], "manifests", path[i+len("/manifests/"):]
	} else if i := strings.LastIndex(path, "/blobs/"); i >= 0 {
		name, kind, ref = path[:i], "blobs", path[i+len("/blobs/"):]
	} else {
		regError(w, http.StatusNotFound, "NAME_UNKNOWN", "unknown path")
		return
	}
	var d string
	switch kind {
	case "manifests":
		key := name + ":" + ref
		if strings.HasPrefix(ref, "sha256:") {
			key = name + "@" + ref
		}
		r.mu.RLock()
		md, ok := r.manifests[key]
		r.mu.RUnlock()
		if !ok && r.Build != nil && !strings.HasPrefix(ref, "sha256:") {
			img, err := r.Build(name, ref)
			if err != nil {
				regError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", fmt.Sprintf("manifest unknown: %s: %v", key, err))
				return
			}
			if img != nil {
				img.Name, img.Tag = name, ref
				if md, err = r.Add(*img); err != nil {
					regError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
					return
				}
				ok = true
			}
		}
		if !ok {
			regError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", fmt.Sprintf("manifest unknown: %s", key))
			return
		}
		d = md
	case "blobs":
		d = ref
	}
	r.mu.RLock()
	b, ok := r.blobs[d]
	r.mu.RUnlock()
	if !ok {
		regError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown: "+d)
		return
	}
	w.Header().Set("Content-Type", b.mediaType)
	w.Header().Set("Docker-Content-Digest", d)
	w.Header().Set("Content-Length", fmt.Sprint(len(b.data)))
	w.Header().Set("Etag", `"`+d+`"`)
	if req.Method == http.MethodHead {
		return
	}
	w.Write(b.data)
}

func regError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}
