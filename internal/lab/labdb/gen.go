package labdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Shape sizes a generated Rocket.Chat-like database (the LgHS one had
// 513,657 documents and 2.4 GB of GridFS chunks).
type Shape struct {
	Users, Rooms, Messages int
	// Files in the GridFS bucket rocketchat_uploads, of up to FileSize
	// bytes each (chunks of 255 KiB).
	Files    int
	FileSize int
	// Seed makes the content deterministic.
	Seed uint64
	// SiteURL is the Site_Url setting (default https://chat.lghs.be).
	SiteURL string
	// Storage is FileUpload_Storage_Type: GridFS (default) or FileSystem.
	Storage string
}

// SmallShape is a few seconds of FerretDB work.
var SmallShape = Shape{Users: 60, Rooms: 12, Messages: 1500, Files: 6, FileSize: 600 << 10, Seed: 20220927}

// BenchShape is at least 200 MB in the LgHS database's proportions
// (513,657 documents for 2.6 GB, 2.4 GB of them GridFS chunks: about
// 5 KB per document on average): 25k messages, 16k subscriptions, 800
// users, 80 rooms, and 240 GridFS files of up to 1 MiB.
var BenchShape = Shape{Users: 800, Rooms: 80, Messages: 25000, Files: 240, FileSize: 1 << 20, Seed: 20220927}

// DocHeavyShape has six times more small documents per megabyte than the
// LgHS database (100k messages, 200k subscriptions, 160 files): it stresses
// the database stand-in's per-document cost.
var DocHeavyShape = Shape{Users: 3000, Rooms: 300, Messages: 100000, Files: 160, FileSize: 1 << 20, Seed: 20220927}

const chunkSize = 261120

func randID(r *rand.Rand, n int) string {
	const alphabet = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func randOID(r *rand.Rand) bson.ObjectID {
	var oid bson.ObjectID
	for i := range oid {
		oid[i] = byte(r.Uint32())
	}
	return oid
}

var words = []string{"salut", "le", "hackerspace", "ouvert", "ce", "soir", "imprimante", "3D", "🚀", "Liège", "soudure", "arduino", "réunion", "merci", "ça", "marche", "Ελληνικά", "привет", "中文", "مرحبا", "שלום", "café", "👍🏽", "le wifi", "est", "lent", "apéro", "vendredi"}

func sentence(r *rand.Rand, n int) string {
	s := ""
	for i := 0; i < n; i++ {
		if i > 0 {
			s += " "
		}
		s += words[r.IntN(len(words))]
	}
	return s
}

// Generate fills database db through c with a Rocket.Chat-shaped data
// set: users, rooms, subscriptions, messages (threads, reactions, file
// messages), settings (a custom OAuth login on, the site URL, the setup
// wizard completed, the file storage type), the migrations control
// document (version 230, locked), GridFS uploads, an empty collection,
// and the indexes Rocket.Chat has (those FerretDB accepts).
func Generate(ctx context.Context, c *mongo.Client, db string, s Shape) error {
	r := rand.New(rand.NewPCG(s.Seed, s.Seed^0x9e3779b97f4a7c15))
	d := c.Database(db)
	base := time.Date(2017, 3, 1, 8, 0, 0, 0, time.UTC)
	if s.SiteURL == "" {
		s.SiteURL = "https://chat.lghs.be"
	}
	if s.Storage == "" {
		s.Storage = "GridFS"
	}
	indexes := map[string][]mongo.IndexModel{
		"users":                       {{Keys: bson.D{{Key: "username", Value: 1}}, Options: options.Index().SetUnique(true)}, {Keys: bson.D{{Key: "active", Value: 1}, {Key: "lastLogin", Value: -1}}}, {Keys: bson.D{{Key: "roles", Value: 1}}}},
		"rocketchat_room":             {{Keys: bson.D{{Key: "name", Value: 1}}}, {Keys: bson.D{{Key: "t", Value: 1}, {Key: "name", Value: 1}}}, {Keys: bson.D{{Key: "u._id", Value: 1}}}},
		"rocketchat_subscription":     {{Keys: bson.D{{Key: "rid", Value: 1}, {Key: "u._id", Value: 1}}, Options: options.Index().SetUnique(true)}, {Keys: bson.D{{Key: "open", Value: 1}}}},
		"rocketchat_message":          {{Keys: bson.D{{Key: "rid", Value: 1}, {Key: "ts", Value: 1}}}, {Keys: bson.D{{Key: "ts", Value: 1}}}, {Keys: bson.D{{Key: "u._id", Value: 1}}}, {Keys: bson.D{{Key: "tmid", Value: 1}}}},
		"rocketchat_settings":         {{Keys: bson.D{{Key: "_updatedAt", Value: 1}}}},
		"rocketchat_uploads.files":    {{Keys: bson.D{{Key: "filename", Value: 1}, {Key: "uploadDate", Value: 1}}}},
		"rocketchat_uploads.chunks":   {{Keys: bson.D{{Key: "files_id", Value: 1}, {Key: "n", Value: 1}}, Options: options.Index().SetUnique(true)}},
		"rocketchat_livechat_visitor": {{Keys: bson.D{{Key: "token", Value: 1}}}},
		"migrations":                  {},
	}
	for coll, models := range indexes {
		if err := d.CreateCollection(ctx, coll); err != nil {
			return fmt.Errorf("create %s: %w", coll, err)
		}
		if len(models) > 0 {
			if _, err := d.Collection(coll).Indexes().CreateMany(ctx, models); err != nil {
				return fmt.Errorf("indexes of %s: %w", coll, err)
			}
		}
	}
	insert := func(coll string, docs []any) error {
		for len(docs) > 0 {
			n := min(len(docs), 1000)
			if _, err := d.Collection(coll).InsertMany(ctx, docs[:n], options.InsertMany().SetOrdered(false)); err != nil {
				return fmt.Errorf("insert into %s: %w", coll, err)
			}
			docs = docs[n:]
		}
		return nil
	}

	users := make([]string, s.Users)
	var docs []any
	for i := range users {
		users[i] = randID(r, 17)
		if i == 0 {
			users[i] = "rocket.cat"
		}
		docs = append(docs, bson.D{
			{Key: "_id", Value: users[i]}, {Key: "createdAt", Value: base.Add(time.Duration(i) * time.Hour)},
			{Key: "username", Value: fmt.Sprintf("user%d", i)}, {Key: "name", Value: sentence(r, 2)},
			{Key: "active", Value: r.IntN(10) > 0}, {Key: "roles", Value: bson.A{"user"}},
			{Key: "lastLogin", Value: base.Add(time.Duration(r.IntN(40000)) * time.Hour)},
			{Key: "services", Value: bson.D{{Key: "password", Value: bson.D{{Key: "bcrypt", Value: "$2b$10$" + randID(r, 53)}}}, {Key: "authlghsbe", Value: bson.D{{Key: "id", Value: randID(r, 12)}}}}},
		})
	}
	if err := insert("users", docs); err != nil {
		return err
	}
	rooms := make([]string, s.Rooms)
	docs = docs[:0]
	for i := range rooms {
		rooms[i] = randID(r, 17)
		if i == 0 {
			rooms[i] = "GENERAL"
		}
		docs = append(docs, bson.D{{Key: "_id", Value: rooms[i]}, {Key: "t", Value: []string{"c", "p", "d"}[i%3]}, {Key: "name", Value: fmt.Sprintf("room-%d", i)}, {Key: "fname", Value: sentence(r, 2)}, {Key: "u", Value: bson.D{{Key: "_id", Value: users[r.IntN(len(users))]}}}, {Key: "msgs", Value: int32(0)}, {Key: "ts", Value: base}})
	}
	if err := insert("rocketchat_room", docs); err != nil {
		return err
	}
	docs = docs[:0]
	seen := map[string]bool{}
	for i := 0; i < s.Rooms*s.Users/4+1; i++ {
		rid, uid := rooms[r.IntN(len(rooms))], users[r.IntN(len(users))]
		if seen[rid+uid] {
			continue
		}
		seen[rid+uid] = true
		docs = append(docs, bson.D{{Key: "_id", Value: randID(r, 17)}, {Key: "rid", Value: rid}, {Key: "u", Value: bson.D{{Key: "_id", Value: uid}}}, {Key: "open", Value: true}, {Key: "unread", Value: int32(r.IntN(50))}, {Key: "ls", Value: base}})
	}
	if err := insert("rocketchat_subscription", docs); err != nil {
		return err
	}
	docs = docs[:0]
	for i := 0; i < s.Messages; i++ {
		m := bson.D{{Key: "_id", Value: randID(r, 17)}, {Key: "rid", Value: rooms[r.IntN(len(rooms))]},
			{Key: "msg", Value: sentence(r, 4+r.IntN(40))}, {Key: "ts", Value: base.Add(time.Duration(i) * time.Minute)},
			{Key: "u", Value: bson.D{{Key: "_id", Value: users[r.IntN(len(users))]}, {Key: "username", Value: "user"}}},
			{Key: "_updatedAt", Value: base.Add(time.Duration(i) * time.Minute)},
			{Key: "mentions", Value: bson.A{}}, {Key: "channels", Value: bson.A{}},
			{Key: "md", Value: bson.A{bson.D{{Key: "type", Value: "PARAGRAPH"}, {Key: "value", Value: bson.A{bson.D{{Key: "type", Value: "PLAIN_TEXT"}, {Key: "value", Value: sentence(r, 3)}}}}}}}}
		switch r.IntN(10) {
		case 0:
			m = append(m, bson.E{Key: "reactions", Value: bson.D{{Key: ":thumbsup:", Value: bson.D{{Key: "usernames", Value: bson.A{"user1", "user2"}}}}}})
		case 1:
			m = append(m, bson.E{Key: "tmid", Value: randID(r, 17)})
		case 2:
			m = append(m, bson.E{Key: "customFields", Value: bson.D{{Key: "n", Value: int64(r.Int64())}, {Key: "f", Value: r.Float64()}, {Key: "old", Value: time.Date(1901, 1, 1, 0, 0, 0, 0, time.UTC)}, {Key: "none", Value: nil}, {Key: "oid", Value: randOID(r)}}})
		}
		docs = append(docs, m)
		if len(docs) == 5000 {
			if err := insert("rocketchat_message", docs); err != nil {
				return err
			}
			docs = docs[:0]
		}
	}
	if err := insert("rocketchat_message", docs); err != nil {
		return err
	}
	settings := []any{
		bson.D{{Key: "_id", Value: "Accounts_OAuth_Custom-Authlghsbe"}, {Key: "value", Value: true}, {Key: "type", Value: "boolean"}, {Key: "group", Value: "OAuth"}, {Key: "_updatedAt", Value: base}},
		bson.D{{Key: "_id", Value: "Site_Url"}, {Key: "value", Value: s.SiteURL}, {Key: "type", Value: "string"}, {Key: "_updatedAt", Value: base}},
		bson.D{{Key: "_id", Value: "Show_Setup_Wizard"}, {Key: "value", Value: "completed"}, {Key: "type", Value: "select"}, {Key: "_updatedAt", Value: base}},
		bson.D{{Key: "_id", Value: "FileUpload_Storage_Type"}, {Key: "value", Value: s.Storage}, {Key: "type", Value: "select"}, {Key: "_updatedAt", Value: base}},
		bson.D{{Key: "_id", Value: "FileUpload_FileSystemPath"}, {Key: "value", Value: "/app/uploads"}, {Key: "type", Value: "string"}, {Key: "_updatedAt", Value: base}},
		bson.D{{Key: "_id", Value: "LDAP_Enable"}, {Key: "value", Value: false}, {Key: "type", Value: "boolean"}, {Key: "_updatedAt", Value: base}},
	}
	for i := 0; i < 40; i++ {
		settings = append(settings, bson.D{{Key: "_id", Value: fmt.Sprintf("Lab_Setting_%02d", i)}, {Key: "value", Value: sentence(r, 3)}, {Key: "_updatedAt", Value: base}})
	}
	if err := insert("rocketchat_settings", settings); err != nil {
		return err
	}
	if err := insert("migrations", []any{bson.D{{Key: "_id", Value: "control"}, {Key: "version", Value: int32(230)}, {Key: "locked", Value: false}, {Key: "buildAt", Value: base}}}); err != nil {
		return err
	}
	for i := 0; i < s.Files; i++ {
		size := s.FileSize
		if i%5 == 0 {
			size = r.IntN(s.FileSize + 1)
		}
		fid := randID(r, 17)
		n := 0
		var chunks []any
		for off := 0; off < size; off += chunkSize {
			data := make([]byte, min(chunkSize, size-off))
			for j := range data {
				data[j] = byte(r.Uint32())
			}
			chunks = append(chunks, bson.D{{Key: "_id", Value: randOID(r)}, {Key: "files_id", Value: fid}, {Key: "n", Value: int32(n)}, {Key: "data", Value: bson.Binary{Data: data}}})
			n++
			if len(chunks) == 8 {
				if err := insert("rocketchat_uploads.chunks", chunks); err != nil {
					return err
				}
				chunks = chunks[:0]
			}
		}
		if err := insert("rocketchat_uploads.chunks", chunks); err != nil {
			return err
		}
		if err := insert("rocketchat_uploads.files", []any{bson.D{{Key: "_id", Value: fid}, {Key: "length", Value: int64(size)}, {Key: "chunkSize", Value: int32(chunkSize)}, {Key: "uploadDate", Value: base.Add(time.Duration(i) * time.Hour)}, {Key: "filename", Value: fmt.Sprintf("photo-%d.jpg", i)}}}); err != nil {
			return err
		}
	}
	return nil
}

// GenerateUploads writes n files (FileSystem storage) of up to size
// bytes under dir, in Rocket.Chat's layout (one directory per upload).
func GenerateUploads(dir string, n, size int, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, seed^1))
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, randID(r, 17), fmt.Sprintf("file %d.bin", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		data := make([]byte, r.IntN(size+1))
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
