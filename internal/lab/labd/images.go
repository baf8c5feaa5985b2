package labd

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/lghs/lghsctl/internal/lab/labreg"
)

// Registry is the prefix of image references the lab registry serves.
var Registry = fmt.Sprintf("%s:%d/", RegistryHost, RegistryPort)

// ImageBinaries are the static programs the lab's images are made of.
type ImageBinaries struct {
	// Database is labdb-ferretdb, the MongoDB stand-in.
	Database string
	// Tools is the mongodump/mongorestore stand-in (mongotools).
	Tools string
	// App is labapp, the Rocket.Chat stand-in.
	App string
}

// Kind of a lab image, from its repository's last element: one starting
// with "mongo" is the database stand-in, one starting with "rocket" the
// app stand-in. Anything else cannot be served by the lab.
func imageKind(repo string) string {
	base := path.Base(repo)
	switch {
	case strings.HasPrefix(base, "mongo"):
		return "database"
	case strings.HasPrefix(base, "rocket"):
		return "app"
	}
	return ""
}

// LabRefs returns the references among refs the lab registry must serve
// (those under Registry), each once, in order.
func LabRefs(refs []string) []string {
	var out []string
	for _, r := range refs {
		if strings.HasPrefix(r, Registry) && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// ImagesFor builds the images refs name (references under Registry, see
// LabRefs; the others are ignored): a MongoDB stand-in for a repository
// named mongo*, with mongodump and mongorestore in its PATH as in the real
// image, and a Rocket.Chat stand-in for one named rocket*, reporting the
// tag as its version. The database listens on 27017 and keeps its files
// in /data/db; the app listens on $PORT (3000) and reads MONGO_URL.
func ImagesFor(refs []string, b ImageBinaries) ([]labreg.Image, error) {
	read := func(what, p string) ([]byte, error) {
		if p == "" {
			return nil, fmt.Errorf("lab images: no %s binary (scripts/setup.sh installs it)", what)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("lab images: %w", err)
		}
		return data, nil
	}
	var imgs []labreg.Image
	var db, tools, app []byte
	for _, ref := range LabRefs(refs) {
		name, tag, ok := strings.Cut(strings.TrimPrefix(ref, Registry), ":")
		if !ok || tag == "" || strings.Contains(tag, "@") {
			return nil, fmt.Errorf("lab image %s: give a tag (the app stand-in reports it as its version)", ref)
		}
		img := labreg.Image{Name: name, Tag: tag}
		var err error
		switch imageKind(name) {
		case "database":
			if db == nil {
				if db, err = read("labdb-ferretdb", b.Database); err != nil {
					return nil, err
				}
				if tools, err = read("mongotools", b.Tools); err != nil {
					return nil, err
				}
			}
			img.Files = []labreg.File{
				{Path: "/usr/local/bin/labdb-ferretdb", Mode: 0o755, Data: db},
				{Path: "/usr/local/bin/mongotools", Mode: 0o755, Data: tools},
				{Path: "/usr/local/bin/mongodump", Link: "mongotools"},
				{Path: "/usr/local/bin/mongorestore", Link: "mongotools"},
				{Path: "/data/db/.keep", Mode: 0o644},
			}
			img.Entrypoint = []string{"/usr/local/bin/labdb-ferretdb"}
			img.Cmd = []string{"--listen", "0.0.0.0:27017", "--dir", "/data/db"}
			img.ExposedPorts = []string{"27017/tcp"}
		case "app":
			if app == nil {
				if app, err = read("labapp", b.App); err != nil {
					return nil, err
				}
			}
			img.Files = []labreg.File{{Path: "/app/labapp", Mode: 0o755, Data: app}, {Path: "/app/uploads/.keep", Mode: 0o644}}
			img.Entrypoint = []string{"/app/labapp"}
			img.Env = []string{"LABAPP_VERSION=" + tag, "PORT=3000"}
			img.ExposedPorts = []string{"3000/tcp"}
			img.WorkingDir = "/app"
		default:
			return nil, fmt.Errorf("lab image %s: the lab registry serves only MongoDB (mongo*) and Rocket.Chat (rocket*) stand-ins", ref)
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}
