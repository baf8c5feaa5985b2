package migrate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lghs/lghsctl/migrate/archive"
)

// Source produces a database's archive stream on the old server, which it
// never modifies.
//
// Contract: Dump streams db as a mongodump archive, leaving out the
// collections named in skip. The producer's failure (a cut link, a dump
// error) is returned by Read; Close stops the producer and waits for it.
// Collections lists db's collections with their counts and sizes, read
// only.
type Source interface {
	// ID identifies the source in the resume state (host and database
	// address); Name describes it in messages.
	ID() string
	Name() string
	Dump(ctx context.Context, db string, skip []string) (io.ReadCloser, error)
	Collections(ctx context.Context, db string) ([]CollInfo, error)
}

// CollInfo is one collection as the pre-flight sees it.
type CollInfo struct {
	Name  string `json:"name"`
	Count int64  `json:"count"`
	// Size is the collection's data size in bytes (BSON), without indexes.
	Size       int64  `json:"size"`
	AvgObjSize int64  `json:"avgObjSize"`
	Type       string `json:"type,omitempty"`
}

// skipNamespace reports whether a collection is never moved, and why:
// system collections belong to the server, views have no documents.
func skipNamespace(coll, typ string) string {
	switch {
	case strings.HasPrefix(coll, "system."):
		return "system collection"
	case typ == "view":
		return "view (re-create it on the target by hand)"
	case typ == "timeseries":
		return "time-series collection (not supported by MongoDB 4.2)"
	}
	return ""
}

// hostPort splits a mongodb:// URI's first host.
func hostPort(uri string) (string, string, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "mongodb" || u.Host == "" {
		return "", "", fmt.Errorf("database URI %q: want mongodb://host:port", uri)
	}
	h := strings.Split(u.Host, ",")[0]
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		return h, "27017", nil
	}
	return host, port, nil
}

// streamCmd runs a command whose stdout is returned as a stream.
func streamCmd(ctx context.Context, sh Shell, cmd string) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := sh.Stream(ctx, cmd, nil, pw)
		if err == nil {
			pw.Close()
		} else {
			pw.CloseWithError(err)
		}
	}()
	return &cmdStream{PipeReader: pr, cancel: cancel, done: done}
}

type cmdStream struct {
	*io.PipeReader
	cancel context.CancelFunc
	done   chan struct{}
}

func (c *cmdStream) Close() error {
	c.PipeReader.CloseWithError(errors.New("stream closed by reader"))
	c.cancel()
	<-c.done
	return nil
}

// MongodumpSource runs the old host's own mongodump over an SSH session,
// so the dump always speaks its server's wire version (3.2 and later
// write this archive format).
type MongodumpSource struct {
	Host Host
	// URI of the database as the old host sees it.
	URI string
	// Command is mongodump's path (default mongodump).
	Command string
	// Gzip asks mongodump to compress the stream (--gzip): less to carry
	// over a slow link, more CPU on the old host.
	Gzip bool
	Log  *slog.Logger
}

func (s *MongodumpSource) ID() string   { return s.Host.Name + " " + s.URI }
func (s *MongodumpSource) Name() string { return "mongodump on " + s.Host.Name }

// DumpCommand is the command run on the old host.
func (s *MongodumpSource) DumpCommand(db string, skip []string) (string, error) {
	host, port, err := hostPort(s.URI)
	if err != nil {
		return "", err
	}
	cmd := s.Command
	if cmd == "" {
		cmd = "mongodump"
	}
	// --host/--port rather than --uri: the old tools (3.x) predate it.
	args := []string{q(cmd), "--host", q(host), "--port", q(port), "--db", q(db), "--archive"}
	if s.Gzip {
		args = append(args, "--gzip")
	}
	sorted := append([]string(nil), skip...)
	sort.Strings(sorted)
	for _, c := range sorted {
		args = append(args, "--excludeCollection", q(c))
	}
	return strings.Join(args, " "), nil
}

func (s *MongodumpSource) Dump(ctx context.Context, db string, skip []string) (io.ReadCloser, error) {
	cmd, err := s.DumpCommand(db, skip)
	if err != nil {
		return nil, err
	}
	return streamCmd(ctx, s.Host.Shell, cmd), nil
}

// statsScript prints one JSON line per collection; it runs in the old
// host's legacy mongo shell (3.x) or mongosh alike.
const statsScript = `db.getCollectionInfos().forEach(function(i){var s={count:0,size:0,avgObjSize:0};if(i.type!=="view"){s=db.getCollection(i.name).stats();}print(JSON.stringify({name:i.name,type:i.type||"collection",count:Number(s.count||0),size:Number(s.size||0),avgObjSize:Number(s.avgObjSize||0)}))})`

// StatsCommand is the read-only command that lists collection sizes with
// the old host's own shell, for servers the driver cannot reach.
func (s *MongodumpSource) StatsCommand(db string) (string, error) {
	host, port, err := hostPort(s.URI)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("if command -v mongo >/dev/null 2>&1; then m=mongo; else m=mongosh; fi; \"$m\" --quiet --host %s --port %s %s --eval %s", q(host), q(port), q(db), q(statsScript)), nil
}

// Collections reads the sizes through the driver when the server is
// recent enough, else with the old host's mongo shell.
func (s *MongodumpSource) Collections(ctx context.Context, db string) ([]CollInfo, error) {
	if s.Host.Dial != nil {
		infos, err := driverCollections(ctx, s.Host, s.URI, db, logOrDiscard(s.Log))
		var we *WireVersionError
		if err == nil || !errors.As(err, &we) {
			return infos, err
		}
	}
	cmd, err := s.StatsCommand(db)
	if err != nil {
		return nil, err
	}
	out, err := s.Host.run(ctx, cmd, nil)
	if err != nil {
		return nil, fmt.Errorf("collection sizes on %s: %w", s.Host.Name, err)
	}
	return parseStats(out)
}

func parseStats(out []byte) ([]CollInfo, error) {
	var infos []CollInfo
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue // shell banners and warnings
		}
		var ci CollInfo
		if err := json.Unmarshal([]byte(line), &ci); err != nil {
			return nil, fmt.Errorf("collection sizes: %q: %w", line, err)
		}
		infos = append(infos, ci)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	return infos, nil
}

func logOrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// driverCollections lists collections with collStats through the driver.
func driverCollections(ctx context.Context, h Host, uri, db string, log *slog.Logger) ([]CollInfo, error) {
	c, err := connect(ctx, h, uri, log, connectOptions{})
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	return listCollections(ctx, c.client.Database(db))
}

type collSpec struct {
	Name    string   `bson:"name"`
	Type    string   `bson:"type"`
	Options bson.Raw `bson:"options"`
	Info    struct {
		UUID bson.Binary `bson:"uuid"`
	} `bson:"info"`
}

func listCollectionSpecs(ctx context.Context, d *mongo.Database) ([]collSpec, error) {
	cur, err := d.ListCollections(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("list collections of %s: %w", d.Name(), err)
	}
	var specs []collSpec
	if err := cur.All(ctx, &specs); err != nil {
		return nil, fmt.Errorf("list collections of %s: %w", d.Name(), err)
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	return specs, nil
}

func collStats(ctx context.Context, d *mongo.Database, coll string) (count, size, avg int64, err error) {
	raw, err := d.RunCommand(ctx, bson.D{{Key: "collStats", Value: coll}}).Raw()
	if err != nil {
		return 0, 0, 0, err
	}
	num := func(k string) int64 { v, _ := raw.Lookup(k).AsInt64OK(); return v }
	return num("count"), num("size"), num("avgObjSize"), nil
}

func listCollections(ctx context.Context, d *mongo.Database) ([]CollInfo, error) {
	specs, err := listCollectionSpecs(ctx, d)
	if err != nil {
		return nil, err
	}
	var infos []CollInfo
	for _, s := range specs {
		ci := CollInfo{Name: s.Name, Type: s.Type}
		if s.Type != "view" {
			ci.Count, ci.Size, ci.AvgObjSize, err = collStats(ctx, d, s.Name)
			if err != nil {
				return nil, fmt.Errorf("collStats %s.%s: %w", d.Name(), s.Name, err)
			}
		}
		infos = append(infos, ci)
	}
	return infos, nil
}

// DriverSource reads the old database with the Go driver through an SSH
// tunnel (MongoDB 4.2 and later, see WireVersionError) and produces the
// same archive stream mongodump would: collections in parallel, each
// find sized to about ReplyBytes per reply from the collection's average
// document size (FerretDB does not cap replies at 16 MiB itself).
type DriverSource struct {
	Host Host
	URI  string
	// Parallel collections read at once (default 4, like mongodump).
	Parallel int
	// ReplyBytes sizes find batches (default 8 MiB).
	ReplyBytes int64
	// BlockSize of the archive (default archive.DefaultBlockSize).
	BlockSize int
	Log       *slog.Logger
}

func (s *DriverSource) ID() string   { return s.Host.Name + " " + s.URI }
func (s *DriverSource) Name() string { return "driver reading " + s.Host.Name }

func (s *DriverSource) Collections(ctx context.Context, db string) ([]CollInfo, error) {
	return driverCollections(ctx, s.Host, s.URI, db, logOrDiscard(s.Log))
}

func (s *DriverSource) Dump(ctx context.Context, db string, skip []string) (io.ReadCloser, error) {
	log := logOrDiscard(s.Log)
	c, err := connect(ctx, s.Host, s.URI, log, connectOptions{})
	if err != nil {
		return nil, err
	}
	d := c.client.Database(db)
	specs, err := listCollectionSpecs(ctx, d)
	if err != nil {
		c.Close(ctx)
		return nil, err
	}
	var version string
	if raw, err := c.client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Raw(); err == nil {
		version, _ = raw.Lookup("version").StringValueOK()
	}
	if version == "" {
		version = "0.0.0"
	}
	skipSet := map[string]bool{}
	for _, n := range skip {
		skipSet[n] = true
	}
	var nss []archive.Namespace
	var colls []collSpec
	for _, sp := range specs {
		if skipSet[sp.Name] || strings.HasPrefix(sp.Name, "system.") {
			continue
		}
		md := archive.Metadata{Options: sp.Options, CollectionName: sp.Name, Type: sp.Type}
		if md.Type == "" {
			md.Type = "collection"
		}
		if len(sp.Info.UUID.Data) == 16 {
			md.UUID = hex.EncodeToString(sp.Info.UUID.Data)
		}
		if sp.Type != "view" {
			specs, err := indexSpecs(ctx, d.Collection(sp.Name))
			if err != nil {
				c.Close(ctx)
				return nil, err
			}
			md.Indexes = specs
		}
		mj, err := archive.MarshalMetadata(md)
		if err != nil {
			c.Close(ctx)
			return nil, err
		}
		nss = append(nss, archive.Namespace{DB: db, Collection: sp.Name, Metadata: mj, Type: md.Type})
		colls = append(colls, sp)
	}
	parallel := s.Parallel
	if parallel <= 0 {
		parallel = 4
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer c.Close(ctx)
		err := s.produce(ctx, d, pw, version, nss, colls, parallel)
		if err != nil {
			pw.CloseWithError(err)
		} else {
			pw.Close()
		}
	}()
	return &cmdStream{PipeReader: pr, cancel: cancel, done: done}, nil
}

func indexSpecs(ctx context.Context, c *mongo.Collection) ([]bson.Raw, error) {
	cur, err := c.Indexes().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", c.Name(), err)
	}
	var out []bson.Raw
	for cur.Next(ctx) {
		out = append(out, append(bson.Raw(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", c.Name(), err)
	}
	return out, nil
}

func (s *DriverSource) produce(ctx context.Context, d *mongo.Database, w io.Writer, version string, nss []archive.Namespace, colls []collSpec, parallel int) error {
	aw, err := archive.NewWriter(w, archive.Header{ConcurrentCollections: int32(parallel), ServerVersion: version, ToolVersion: "lghsctl"}, nss, s.BlockSize)
	if err != nil {
		return err
	}
	reply := s.ReplyBytes
	if reply <= 0 {
		reply = 8 << 20
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	for i, sp := range colls {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			fail(ctx.Err())
		}
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if sp.Type != "view" {
				if err := copyCollection(ctx, d.Collection(sp.Name), aw, i, reply); err != nil {
					fail(fmt.Errorf("read %s.%s: %w", d.Name(), sp.Name, err))
					return
				}
			}
			if err := aw.End(i); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return aw.Close()
}

// batchSize is how many documents of avg bytes fit in about reply bytes.
func batchSize(reply, avg int64) int32 {
	if avg <= 0 {
		avg = 1024
	}
	n := reply / avg
	switch {
	case n < 1:
		n = 1
	case n > 100000:
		n = 100000
	}
	return int32(n)
}

func copyCollection(ctx context.Context, c *mongo.Collection, aw *archive.Writer, ns int, reply int64) error {
	_, _, avg, err := collStats(ctx, c.Database(), c.Name())
	if err != nil {
		avg = 0
	}
	cur, err := c.Find(ctx, bson.D{}, options.Find().SetBatchSize(batchSize(reply, avg)))
	if err != nil {
		return err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	for cur.Next(ctx) {
		if err := aw.Write(ns, cur.Current); err != nil {
			return err
		}
	}
	return cur.Err()
}

// ArchiveSource reads a local archive file, plain or gzip: one written by
// lghsctl migrate data --archive, or by mongodump --archive. It restores a
// database again without touching the old server. Namespaces of other
// databases in the file are left out.
type ArchiveSource struct {
	Path string
}

func (s *ArchiveSource) ID() string   { return "archive " + s.Path }
func (s *ArchiveSource) Name() string { return "archive " + s.Path }

// Dump opens the file; the mover leaves out the collections in skip.
func (s *ArchiveSource) Dump(ctx context.Context, db string, skip []string) (io.ReadCloser, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Collections reads the whole file (the archive does not record sizes).
func (s *ArchiveSource) Collections(ctx context.Context, db string) ([]CollInfo, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ar, err := archive.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Path, err)
	}
	for {
		if _, err := ar.Next(); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Path, err)
		}
	}
	var infos []CollInfo
	for i, ns := range ar.Namespaces() {
		if ns.DB != db {
			continue
		}
		st := ar.Stats(i)
		ci := CollInfo{Name: ns.Collection, Count: st.Documents, Size: st.Bytes, Type: ns.Type}
		if st.Documents > 0 {
			ci.AvgObjSize = st.Bytes / st.Documents
		}
		infos = append(infos, ci)
	}
	return infos, nil
}
