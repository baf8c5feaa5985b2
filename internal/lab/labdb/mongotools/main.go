// Command mongotools is the lab's stand-in for MongoDB's database tools,
// which no package source of ours provides: installed as mongodump on an
// "old" lab host and as mongorestore inside the "new" host's database
// image (it dispatches on its name, or on its first argument).
//
// It accepts the subset of flags lghsctl sends (see migrate's
// MongodumpSource.DumpCommand and Target.RestoreCommand) and refuses
// anything else, so a change in what lghsctl sends shows up in the lab:
//
//	mongodump --host H --port P --db D --archive [--gzip] [--excludeCollection C]...
//	mongorestore --archive [--gzip] --drop --stopOnError --bypassDocumentValidation
//	             --numInsertionWorkersPerCollection=N --nsInclude 'D.*' [--nsExclude 'D.C']...
//	             [--host H --port P]
//
// mongodump writes the archive with lghsctl's archive writer reading
// through the driver (the real mongodump's byte format is covered by the
// fixture archives); mongorestore has its own small restore loop (drop
// and recreate each streamed collection, insert, then build its indexes
// without v/ns/background, which FerretDB refuses), independent of
// migrate's driver target.
package main

import (
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lghs/lghsctl/migrate"
	"github.com/lghs/lghsctl/migrate/archive"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if name != "mongodump" && name != "mongorestore" && len(args) > 0 {
		name, args = args[0], args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if len(args) == 1 && args[0] == "--version" {
		fmt.Printf("%s version: lab stand-in (lghsctl)\n", name)
		return
	}
	var err error
	switch name {
	case "mongodump":
		err = dump(ctx, args)
	case "mongorestore":
		err = restore(ctx, args)
	default:
		err = fmt.Errorf("usage: mongotools mongodump|mongorestore [flags]")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "Failed: %v\n", err)
		os.Exit(1)
	}
}

func dump(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("mongodump", flag.ContinueOnError)
	host := fs.String("host", "127.0.0.1", "")
	port := fs.String("port", "27017", "")
	db := fs.String("db", "", "")
	arch := fs.Bool("archive", false, "")
	gz := fs.Bool("gzip", false, "")
	var exclude list
	fs.Var(&exclude, "excludeCollection", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*arch || *db == "" || fs.NArg() > 0 {
		return errors.New("this stand-in only dumps one --db as an --archive to stdout")
	}
	src := &migrate.DriverSource{Host: migrate.Local("localhost"), URI: "mongodb://" + *host + ":" + *port, BlockSize: 16 << 20}
	rc, err := src.Dump(ctx, *db, exclude)
	if err != nil {
		return err
	}
	defer rc.Close()
	var w io.Writer = os.Stdout
	var zw *gzip.Writer
	if *gz {
		zw = gzip.NewWriter(os.Stdout)
		w = zw
	}
	if _, err := io.Copy(w, rc); err != nil {
		return err
	}
	if zw != nil {
		return zw.Close()
	}
	return nil
}

func restore(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("mongorestore", flag.ContinueOnError)
	host := fs.String("host", "127.0.0.1", "")
	port := fs.String("port", "27017", "")
	arch := fs.Bool("archive", false, "")
	fs.Bool("gzip", false, "") // the archive reader detects gzip itself
	drop := fs.Bool("drop", false, "")
	fs.Bool("stopOnError", false, "")
	fs.Bool("bypassDocumentValidation", false, "")
	fs.Int("numInsertionWorkersPerCollection", 1, "")
	var include, exclude list
	fs.Var(&include, "nsInclude", "")
	fs.Var(&exclude, "nsExclude", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*arch || fs.NArg() > 0 {
		return errors.New("this stand-in only restores an --archive from stdin")
	}
	match := func(pats []string, ns string) bool {
		for _, p := range pats {
			if ok, _ := path.Match(p, ns); ok {
				return true
			}
		}
		return false
	}
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + *host + ":" + *port).SetDirect(true))
	if err != nil {
		return err
	}
	defer c.Disconnect(context.Background())
	ar, err := archive.NewReader(os.Stdin)
	if err != nil {
		return err
	}
	nss := ar.Namespaces()
	keep := make([]bool, len(nss))
	batches := make([][]any, len(nss))
	var restored int64
	flush := func(i int) error {
		if len(batches[i]) == 0 {
			return nil
		}
		_, err := c.Database(nss[i].DB).Collection(nss[i].Collection).InsertMany(ctx, batches[i], options.InsertMany().SetOrdered(false).SetBypassDocumentValidation(true))
		restored += int64(len(batches[i]))
		batches[i] = nil
		return err
	}
	for i, ns := range nss {
		keep[i] = (len(include) == 0 || match(include, ns.Name())) && !match(exclude, ns.Name()) && ns.Type != "view"
		if !keep[i] {
			continue
		}
		d := c.Database(ns.DB)
		if *drop {
			if err := d.Collection(ns.Collection).Drop(ctx); err != nil {
				return err
			}
		}
		if err := d.CreateCollection(ctx, ns.Collection); err != nil && !*drop {
			return err
		}
	}
	for {
		ev, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if !keep[ev.NS] {
			continue
		}
		switch ev.Kind {
		case archive.Document:
			batches[ev.NS] = append(batches[ev.NS], bson.Raw(append([]byte(nil), ev.Doc...)))
			if len(batches[ev.NS]) >= 500 {
				if err := flush(ev.NS); err != nil {
					return err
				}
			}
		case archive.End:
			if err := flush(ev.NS); err != nil {
				return err
			}
			md, err := archive.ParseMetadata(nss[ev.NS].Metadata)
			if err != nil {
				return err
			}
			var specs bson.A
			for _, sp := range md.Indexes {
				var d bson.D
				elems, _ := sp.Elements()
				for _, e := range elems {
					switch e.Key() {
					case "v", "ns", "background":
					default:
						d = append(d, bson.E{Key: e.Key(), Value: e.Value()})
					}
				}
				if n, _ := sp.Lookup("name").StringValueOK(); n != "_id_" {
					specs = append(specs, d)
				}
			}
			if len(specs) > 0 {
				cmd := bson.D{{Key: "createIndexes", Value: nss[ev.NS].Collection}, {Key: "indexes", Value: specs}}
				if err := c.Database(nss[ev.NS].DB).RunCommand(ctx, cmd).Err(); err != nil {
					return fmt.Errorf("%s: create indexes: %w", nss[ev.NS].Name(), err)
				}
			}
		}
	}
	fmt.Fprintf(os.Stderr, "%d document(s) restored successfully. 0 document(s) failed to restore.\n", restored)
	return nil
}
