package labdb

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ImageRef is the lab's database image on the new host, imported with
// `docker import` (no registry is reachable).
const ImageRef = "lghs-lab/ferretdb:1.24.2"

// ImageChanges are the Dockerfile instructions docker import applies.
var ImageChanges = []string{
	`ENTRYPOINT ["/labdb-ferretdb"]`,
	`CMD ["--listen", "0.0.0.0:27017", "--dir", "/data/db"]`,
	`ENV PATH=/usr/local/bin:/usr/bin:/bin`,
	`EXPOSE 27017`,
}

// RootFS is a root file system tarball holding files (path → content,
// mode 0755) and symbolic links (path → target), with /tmp and the
// directories they need.
func RootFS(files map[string][]byte, links map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{"tmp": true, "data": true, "data/db": true}
	var names []string
	for p := range files {
		names = append(names, p)
	}
	for p := range links {
		names = append(names, p)
	}
	for _, p := range names {
		for d := filepath.Dir(strings.TrimPrefix(p, "/")); d != "." && d != "/"; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	var ds []string
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	for _, d := range ds {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Mode: mode, Typeflag: tar.TypeDir}); err != nil {
			return nil, err
		}
	}
	sort.Strings(names)
	for _, p := range names {
		name := strings.TrimPrefix(p, "/")
		if target, ok := links[p]; ok {
			if err := tw.WriteHeader(&tar.Header{Name: name, Linkname: target, Mode: 0o777, Typeflag: tar.TypeSymlink}); err != nil {
				return nil, err
			}
			continue
		}
		data := files[p]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Image is the rootfs of the database image: labdb-ferretdb as the entry
// point, and the stand-in mongorestore/mongodump (so that `docker exec -i
// <container> mongorestore --archive` works as in the real mongo image).
func Image(ctx context.Context, workDir string) ([]byte, error) {
	db, err := Binary(ctx)
	if err != nil {
		return nil, err
	}
	tools := filepath.Join(workDir, "mongotools")
	if err := BuildStatic(ctx, ToolsPackage, tools); err != nil {
		return nil, err
	}
	dbBin, err := os.ReadFile(db)
	if err != nil {
		return nil, err
	}
	toolsBin, err := os.ReadFile(tools)
	if err != nil {
		return nil, err
	}
	return RootFS(map[string][]byte{"/labdb-ferretdb": dbBin, "/usr/local/bin/mongotools": toolsBin},
		map[string]string{"/usr/local/bin/mongorestore": "mongotools", "/usr/local/bin/mongodump": "mongotools"})
}

// ServiceUnit runs labdb-ferretdb as a systemd service on an "old" lab
// host, bound to its loopback like the LgHS server's mongod.
const ServiceUnit = `[Unit]
Description=Lab MongoDB stand-in (FerretDB, SQLite)
After=network.target

[Service]
ExecStart=/usr/local/bin/labdb-ferretdb --listen 127.0.0.1:27017 --dir /var/lib/labdb
Restart=on-failure

[Install]
WantedBy=multi-user.target
`
