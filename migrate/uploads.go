package migrate

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Uploads copies the files Rocket.Chat keeps on disk (FileSystem
// storage) from the old host to the new one, as a tar stream over the two
// SSH sessions (no copy on any disk in between), and keeps their manifest
// (path, size, SHA-256) in the target's migrate state. Only files missing
// or different on the target are sent, so a re-run after a cut resumes.
type Uploads struct {
	From    Host
	FromDir string
	To      Host
	ToDir   string
	// Owner, when set (uid:gid or user:group), owns the copied files on
	// the target (the app's container user).
	Owner    string
	StateDir string
	Progress *Progress
}

// FileEntry is one file of the manifest.
type FileEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// manifestCommand lists every regular file under dir with its size and
// SHA-256, read-only, with tools every Debian-like host has. Output:
// "<size> <path>\0" lines first, then sha256sum's lines.
func manifestCommand(dir string) string {
	return fmt.Sprintf(`set -e; cd %s; find . -type f -printf '%%s %%p\0'; echo; echo '--'; find . -type f -print0 | xargs -0 -r sha256sum`, q(dir))
}

// parseManifest reads manifestCommand's output. sha256sum escapes file
// names holding a backslash or a newline with a leading backslash.
func parseManifest(out []byte) ([]FileEntry, error) {
	sizes, sums, ok := bytes.Cut(out, []byte("\n--\n"))
	if !ok {
		return nil, errors.New("upload manifest: unexpected output")
	}
	bySize := map[string]int64{}
	for _, rec := range bytes.Split(bytes.TrimSuffix(sizes, []byte("\n")), []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		sz, p, ok := strings.Cut(string(rec), " ")
		n, err := strconv.ParseInt(sz, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("upload manifest: bad line %q", rec)
		}
		bySize[strings.TrimPrefix(p, "./")] = n
	}
	var files []FileEntry
	sc := bufio.NewScanner(bytes.NewReader(sums))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		esc := strings.HasPrefix(line, `\`)
		line = strings.TrimPrefix(line, `\`)
		if len(line) < 67 || line[64:66] != "  " {
			return nil, fmt.Errorf("upload manifest: bad line %q", line)
		}
		p := line[66:]
		if esc {
			p = strings.NewReplacer(`\\`, `\`, `\n`, "\n").Replace(p)
		}
		p = strings.TrimPrefix(p, "./")
		size, ok := bySize[p]
		if !ok {
			return nil, fmt.Errorf("upload manifest: %q has a checksum but no size", p)
		}
		files = append(files, FileEntry{Path: p, Size: size, SHA256: line[:64]})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// manifestDigest sums a manifest into one hash.
func manifestDigest(files []FileEntry) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00%s\n", f.Path, f.Size, f.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (u *Uploads) listing(ctx context.Context, h Host, dir string) ([]FileEntry, error) {
	out, err := h.run(ctx, "if [ -d "+q(dir)+" ]; then "+manifestCommand(dir)+"; else echo; echo '--'; fi", nil)
	if err != nil {
		return nil, fmt.Errorf("list uploads in %s on %s: %w", dir, h.Name, err)
	}
	return parseManifest(out)
}

// UploadsResult says what a copy did.
type UploadsResult struct {
	Files, Sent int
	Bytes       int64
	SentBytes   int64
}

// Copy sends the files missing or different on the target, checks every
// received file's SHA-256 against the source's listing on the way, and
// records the manifest.
func (u *Uploads) Copy(ctx context.Context) (*UploadsResult, error) {
	src, err := u.listing(ctx, u.From, u.FromDir)
	if err != nil {
		return nil, err
	}
	dst, err := u.listing(ctx, u.To, u.ToDir)
	if err != nil {
		return nil, err
	}
	have := map[string]string{}
	for _, f := range dst {
		have[f.Path] = f.SHA256
	}
	want := map[string]FileEntry{}
	var send []string
	res := &UploadsResult{Files: len(src)}
	for _, f := range src {
		res.Bytes += f.Size
		if have[f.Path] != f.SHA256 {
			send = append(send, f.Path)
			want[f.Path] = f
			res.SentBytes += f.Size
		}
	}
	res.Sent = len(send)
	if u.Progress != nil {
		u.Progress.Expect("uploads", int64(len(send)), res.SentBytes)
	}
	if len(send) > 0 {
		if err := u.send(ctx, send, want); err != nil {
			return res, err
		}
	}
	if u.Owner != "" {
		if _, err := u.To.run(ctx, "chown -R "+q(u.Owner)+" "+q(u.ToDir), nil); err != nil {
			return res, fmt.Errorf("chown uploads on %s: %w", u.To.Name, err)
		}
	}
	if u.Progress != nil {
		u.Progress.Done("uploads")
	}
	store := newStateStore(u.To, u.StateDir)
	if err := u.To.writeJSON(ctx, store.path("uploads-manifest.json"), src); err != nil {
		return res, err
	}
	st, err := store.loadData(ctx)
	if err != nil {
		return res, err
	}
	err = store.update(ctx, st, func(st *DataState) {
		st.Uploads = &UploadsState{From: u.From.Name + ":" + u.FromDir, To: u.ToDir, Manifest: store.path("uploads-manifest.json"),
			Files: len(src), Bytes: res.Bytes, Digest: manifestDigest(src), Status: StatusCopied, Updated: time.Now().UTC()}
	})
	return res, err
}

func (u *Uploads) send(ctx context.Context, paths []string, want map[string]FileEntry) error {
	var list bytes.Buffer
	for _, p := range paths {
		list.WriteString("./" + p)
		list.WriteByte(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srcOut, srcW := io.Pipe()
	srcErr := make(chan error, 1)
	go func() {
		err := u.From.Shell.Stream(ctx, "cd "+q(u.FromDir)+" && tar --null -T - -cf -", &list, srcW)
		srcW.CloseWithError(err)
		srcErr <- err
	}()
	dstIn, dstW := io.Pipe()
	dstErr := make(chan error, 1)
	go func() {
		err := u.To.Shell.Stream(ctx, "mkdir -p "+q(u.ToDir)+" && cd "+q(u.ToDir)+" && tar -xf -", dstIn, nil)
		dstIn.CloseWithError(errors.New("tar on the target exited"))
		dstErr <- err
	}()
	tr := tar.NewReader(io.TeeReader(srcOut, dstW))
	checkErr := func() error {
		for {
			h, err := tr.Next()
			if err == io.EOF {
				// Let the target's tar see the end-of-archive padding.
				_, err := io.Copy(io.Discard, io.TeeReader(srcOut, dstW))
				return err
			}
			if err != nil {
				return fmt.Errorf("uploads stream from %s: %w", u.From.Name, err)
			}
			if h.Typeflag != tar.TypeReg {
				continue
			}
			p := path.Clean(strings.TrimPrefix(h.Name, "./"))
			hs := sha256.New()
			n, err := io.Copy(hs, tr)
			if err != nil {
				return fmt.Errorf("uploads stream from %s: %w", u.From.Name, err)
			}
			if u.Progress != nil {
				u.Progress.Doc("uploads", int(n))
			}
			w, ok := want[p]
			if !ok {
				return fmt.Errorf("uploads stream from %s holds %q, which was not asked for", u.From.Name, p)
			}
			if got := hex.EncodeToString(hs.Sum(nil)); got != w.SHA256 || n != w.Size {
				return fmt.Errorf("upload %s changed on the way or on %s: %d bytes sha256 %s, listed as %d bytes %s", p, u.From.Name, n, got, w.Size, w.SHA256)
			}
			delete(want, p)
		}
	}()
	dstW.CloseWithError(checkErr)
	if checkErr != nil {
		srcOut.CloseWithError(checkErr) // unblocks the source's output copy
		cancel()
		<-srcErr
		<-dstErr
		return checkErr
	}
	if err := <-srcErr; err != nil {
		return fmt.Errorf("tar on %s: %w", u.From.Name, err)
	}
	if err := <-dstErr; err != nil {
		return fmt.Errorf("tar on %s: %w", u.To.Name, err)
	}
	if len(want) > 0 {
		var missing []string
		for p := range want {
			missing = append(missing, p)
		}
		sort.Strings(missing)
		return fmt.Errorf("uploads: %d files never arrived: %s", len(missing), strings.Join(missing[:min(5, len(missing))], ", "))
	}
	return nil
}

// Verify compares the target's files with the recorded manifest: every
// file present with the same size and SHA-256.
func (u *Uploads) Verify(ctx context.Context, st *DataState) ([]Mismatch, []string, error) {
	store := newStateStore(u.To, u.StateDir)
	var recorded []FileEntry
	ok, err := u.To.readJSON(ctx, store.path("uploads-manifest.json"), &recorded)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return []Mismatch{{Collection: "uploads", What: "never copied (no manifest on the target): run migrate data"}}, nil, nil
	}
	got, err := u.listing(ctx, u.To, u.ToDir)
	if err != nil {
		return nil, nil, err
	}
	have := map[string]FileEntry{}
	for _, f := range got {
		have[f.Path] = f
	}
	var ms []Mismatch
	for _, f := range recorded {
		g, ok := have[f.Path]
		switch {
		case !ok:
			ms = append(ms, Mismatch{Collection: "uploads/" + f.Path, What: "missing on the target"})
		case g.SHA256 != f.SHA256 || g.Size != f.Size:
			ms = append(ms, Mismatch{Collection: "uploads/" + f.Path, What: "content differs", Source: shortHash(f.SHA256), Target: shortHash(g.SHA256)})
		}
		delete(have, f.Path)
	}
	var warns []string
	if len(have) > 0 {
		warns = append(warns, fmt.Sprintf("uploads: %d files on the target are not in the manifest", len(have)))
	}
	if len(ms) == 0 && len(recorded) != len(got)-len(have) {
		ms = append(ms, Mismatch{Collection: "uploads", What: "file count differs", Source: fmt.Sprint(len(recorded)), Target: fmt.Sprint(len(got))})
	}
	return ms, warns, nil
}
