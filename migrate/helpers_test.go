package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lghs/lghsctl/internal/lab/labdb"
)

// fixtures is shared/fixtures/mongo next to the repository (read in
// place, never copied into it).
const fixtures = "../../shared/fixtures/mongo"

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// client connects the test itself to a lab database.
func client(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetDirect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

// manifest is the part of shared/fixtures/mongo/rocketchat.manifest.json
// a restore must reproduce.
type manifest struct {
	Database    string            `json:"database"`
	Collections []manifestColl    `json:"collections"`
	Totals      map[string]int64  `json:"totals"`
	GridFS      []json.RawMessage `json:"gridfs"`
	SpotChecks  []struct {
		Collection string `json:"collection"`
		ID         string `json:"_id"`
		Field      string `json:"field"`
		Value      any    `json:"value"`
	} `json:"spot_checks"`
}

type manifestColl struct {
	Name    string          `json:"name"`
	Count   int64           `json:"count"`
	Bytes   int64           `json:"bytes"`
	IDType  string          `json:"id_type"`
	SHA256  string          `json:"sha256"`
	Indexes []manifestIndex `json:"indexes"`
}

type manifestIndex struct {
	Name   string  `json:"name"`
	Key    [][]any `json:"key"`
	Unique bool    `json:"unique"`
}

func loadManifest(t *testing.T) manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, "rocketchat.manifest.json"))
	if err != nil {
		t.Fatalf("fixtures missing (../shared/fixtures/mongo): %v", err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// manifestOf computes, from a live database, exactly what the fixture
// manifest records (its hash_definition and index_definition).
func manifestOf(t *testing.T, c *mongo.Client, dbName string, want manifest) manifest {
	t.Helper()
	ctx := testCtx(t)
	d := c.Database(dbName)
	names, err := d.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	got := manifest{Database: dbName, Totals: map[string]int64{}}
	type bucket struct{ files, totalLength, chunks, chunkBytes, chunkSize, empty int64 }
	buckets := map[string]*bucket{}
	for _, n := range names {
		cur, err := d.Collection(n).Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		mc := manifestColl{Name: n, IDType: "none"}
		var docs [][]byte
		for cur.Next(ctx) {
			doc := bytes.Clone(cur.Current)
			docs = append(docs, doc)
			mc.Count++
			mc.Bytes += int64(len(doc))
			switch cur.Current.Lookup("_id").Type {
			case bson.TypeString:
				mc.IDType = "string"
			case bson.TypeObjectID:
				mc.IDType = "objectId"
			}
			if b, ok := bytes.CutSuffix([]byte(n), []byte(".files")); ok {
				bk := buckets[string(b)]
				if bk == nil {
					bk = &bucket{}
					buckets[string(b)] = bk
				}
				bk.files++
				l, _ := cur.Current.Lookup("length").AsInt64OK()
				bk.totalLength += l
				if l == 0 {
					bk.empty++
				}
				cs, _ := cur.Current.Lookup("chunkSize").AsInt64OK()
				bk.chunkSize = cs
			}
			if b, ok := bytes.CutSuffix([]byte(n), []byte(".chunks")); ok {
				bk := buckets[string(b)]
				if bk == nil {
					bk = &bucket{}
					buckets[string(b)] = bk
				}
				bk.chunks++
				_, data := cur.Current.Lookup("data").Binary()
				bk.chunkBytes += int64(len(data))
			}
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
		cur.Close(ctx)
		mc.SHA256, err = ManifestHash(docs)
		if err != nil {
			t.Fatal(err)
		}
		icur, err := d.Collection(n).Indexes().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for icur.Next(ctx) {
			var mi manifestIndex
			mi.Name = icur.Current.Lookup("name").StringValue()
			mi.Unique, _ = icur.Current.Lookup("unique").BooleanOK()
			elems, _ := icur.Current.Lookup("key").Document().Elements()
			for _, e := range elems {
				dir := 1
				if f, ok := e.Value().AsFloat64OK(); ok && f < 0 {
					dir = -1
				}
				mi.Key = append(mi.Key, []any{e.Key(), float64(dir)})
			}
			mc.Indexes = append(mc.Indexes, mi)
		}
		sort.Slice(mc.Indexes, func(i, j int) bool { return mc.Indexes[i].Name < mc.Indexes[j].Name })
		got.Collections = append(got.Collections, mc)
		got.Totals["collections"]++
		got.Totals["documents"] += mc.Count
		got.Totals["bytes"] += mc.Bytes
	}
	var bnames []string
	for n := range buckets {
		bnames = append(bnames, n)
	}
	sort.Strings(bnames)
	for _, n := range bnames {
		bk := buckets[n]
		raw, _ := json.Marshal(map[string]any{"bucket": n, "files": bk.files, "total_length": bk.totalLength, "chunks": bk.chunks, "chunk_data_bytes": bk.chunkBytes, "chunk_size": bk.chunkSize, "empty_files": bk.empty})
		got.GridFS = append(got.GridFS, raw)
	}
	for _, sc := range want.SpotChecks {
		raw, err := d.Collection(sc.Collection).FindOne(ctx, bson.D{{Key: "_id", Value: sc.ID}}).Raw()
		if err != nil {
			t.Errorf("spot check %s/%s: %v", sc.Collection, sc.ID, err)
			continue
		}
		v := raw.Lookup(sc.Field)
		var val any
		switch v.Type {
		case bson.TypeString:
			val = v.StringValue()
		case bson.TypeBoolean:
			val = v.Boolean()
		case bson.TypeInt32:
			val = float64(v.Int32())
		default:
			val = v.String()
		}
		sc.Value = val
		got.SpotChecks = append(got.SpotChecks, sc)
	}
	return got
}

// sameJSON compares two values by their JSON form.
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	var gv, wv any
	json.Unmarshal(g, &gv)
	json.Unmarshal(w, &wv)
	g2, _ := json.Marshal(gv)
	w2, _ := json.Marshal(wv)
	if !bytes.Equal(g2, w2) {
		t.Errorf("%s differs:\n got %s\nwant %s", what, g2, w2)
	}
}

// startDB starts a lab database for the test.
func startDB(t *testing.T) *labdb.Server { return labdb.StartT(t) }
