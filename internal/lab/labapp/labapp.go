// Package labapp is the lab's stand-in for Rocket.Chat, so that migrate's
// upgrade ladder is exercised against a real process with a real
// database: one static binary (cmd/labapp), packaged as one image per
// version, that at start
//
//   - connects to MONGO_URL (a replicaSet parameter is ignored: FerretDB
//     has no replica sets),
//   - refuses to migrate while the migrations control document is locked
//     ("Not migrating, control is locked"), and exits, as Rocket.Chat does,
//   - otherwise locks it, runs its version's "migrations" one number at a
//     time up to the version's own number (see MigrationOf), and unlocks it,
//   - fails migration 231 like Rocket.Chat 3.18-4.x did after 2022-09-27
//     when a custom OAuth login is enabled ("Start date cannot be later
//     than expire date"), leaving the control document locked,
//   - then serves GET /api/info with {"version": ..., "success": true} and
//     logs "SERVER RUNNING".
//
// Its log lines mimic Rocket.Chat's, so migrate's wait-for-log steps and
// its failure reports (the app's last log lines) see what they would see
// in production.
package labapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Config of one app process.
type Config struct {
	// Version the app reports, e.g. 3.18.2.
	Version string
	// MongoURL as Rocket.Chat takes it: mongodb://host:port/db[?...].
	MongoURL string
	// Addr to listen on (host:port, e.g. :3000).
	Addr string
	// RootURL is the site's public URL (Rocket.Chat's ROOT_URL), shown
	// on its home page and in its start banner.
	RootURL string
	// StepDelay between migration numbers (default 20ms), so that
	// progress is visible and the lock is held for a while.
	StepDelay time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// MigrationOf maps a version to the migration number it brings the
// database to: increasing with the version, 230 for 3.0.x as in the LgHS
// database.
func MigrationOf(version string) (int, error) {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return 0, fmt.Errorf("version %q is not major.minor[.patch]", version)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || major < 3 || minor >= 30 {
		return 0, fmt.Errorf("version %q: the stand-in knows 3.x to 9.x with minors below 30", version)
	}
	return 230 + (major-3)*30 + minor, nil
}

var oauthSetting = regexp.MustCompile(`^Accounts_OAuth_(Custom-)?[^-_]+$`)

// ErrMigration is a failed migration (the process exits non-zero).
var ErrMigration = errors.New("migration failed")

// Run runs the app until ctx ends or a migration fails.
func Run(ctx context.Context, cfg Config, logw io.Writer) error {
	if cfg.StepDelay == 0 {
		cfg.StepDelay = 20 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logf := func(format string, args ...any) {
		line, _ := json.Marshal(map[string]any{"level": "info", "time": cfg.Now().UTC().Format(time.RFC3339Nano), "message": fmt.Sprintf(format, args...)})
		fmt.Fprintf(logw, "%s\n", line)
	}
	target, err := MigrationOf(cfg.Version)
	if err != nil {
		return err
	}
	u, err := url.Parse(cfg.MongoURL)
	if err != nil {
		return fmt.Errorf("MONGO_URL: %w", err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	if dbName == "" {
		dbName = "rocketchat"
	}
	q := u.Query()
	q.Del("replicaSet")
	q.Set("directConnection", "true")
	u.RawQuery = q.Encode()
	u.Path = "/"
	logf("Rocket.Chat stand-in %s starting (migration target %d)", cfg.Version, target)
	var c *mongo.Client
	for attempt := 0; ; attempt++ {
		c, err = mongo.Connect(options.Client().ApplyURI(u.String()).SetServerSelectionTimeout(5 * time.Second))
		if err == nil {
			err = c.Ping(ctx, nil)
		}
		if err == nil {
			break
		}
		if c != nil {
			c.Disconnect(context.Background())
		}
		logf("MongoNetworkError: %v", err)
		if attempt == 30 || ctx.Err() != nil {
			return fmt.Errorf("database: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	defer c.Disconnect(context.Background())
	db := c.Database(dbName)
	if err := migrate(ctx, db, cfg, target, logf); err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/info", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"version": cfg.Version, "success": true})
	})
	// The home page, as the real app serves its web client at /.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!DOCTYPE html>\n<title>Rocket.Chat</title>\n<p>Rocket.Chat %s (lghsctl lab stand-in) at %s</p>\n", html.EscapeString(cfg.Version), html.EscapeString(cfg.RootURL))
	})
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	logf("+--------------------------------------+")
	logf("|            SERVER RUNNING            |")
	logf("+--------------------------------------+")
	logf("|  Rocket.Chat Version: %-14s |", cfg.Version)
	site := cfg.RootURL
	if site == "" {
		site = "http://" + l.Addr().String()
	}
	logf("|       Site URL: %-20s |", site)
	logf("+--------------------------------------+")
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type control struct {
	Version int32 `bson:"version"`
	Locked  bool  `bson:"locked"`
}

func migrate(ctx context.Context, db *mongo.Database, cfg Config, target int, logf func(string, ...any)) error {
	migs := db.Collection("migrations")
	var ctl control
	err := migs.FindOne(ctx, bson.D{{Key: "_id", Value: "control"}}).Decode(&ctl)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		ctl = control{Version: int32(target)}
		_, err = migs.InsertOne(ctx, bson.D{{Key: "_id", Value: "control"}, {Key: "version", Value: int32(target)}, {Key: "locked", Value: false}})
		logf("Migrations: fresh database, control set to version %d", target)
		return err
	case err != nil:
		return err
	}
	if ctl.Locked {
		logf("Not migrating, control is locked.")
		return fmt.Errorf("%w: control is locked", ErrMigration)
	}
	if int(ctl.Version) > target {
		logf("Can't find migration version %d", ctl.Version)
		return fmt.Errorf("%w: database at migration %d, newer than this version (%d)", ErrMigration, ctl.Version, target)
	}
	if int(ctl.Version) == target {
		logf("Migrations: Not migrating, already at version %d", target)
		return nil
	}
	set := func(fields bson.D) error {
		_, err := migs.UpdateOne(ctx, bson.D{{Key: "_id", Value: "control"}}, bson.D{{Key: "$set", Value: fields}})
		return err
	}
	if err := set(bson.D{{Key: "locked", Value: true}, {Key: "lockedAt", Value: cfg.Now().UTC()}}); err != nil {
		return err
	}
	logf("Migrations: Migrating from version %d -> %d", ctl.Version, target)
	for v := int(ctl.Version) + 1; v <= target; v++ {
		logf("Migrations: Running up() on version %d", v)
		if v == 231 {
			if on, err := oauthEnabled(ctx, db); err != nil {
				return err
			} else if on != "" {
				// The banner v231 creates has expireAt 2022-09-27.
				logf("Your database migration failed: Start date cannot be later than expire date (setting %s is on)", on)
				logf("Please make sure you are running the latest version and try again.")
				return fmt.Errorf("%w: migration 231", ErrMigration)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(cfg.StepDelay):
		}
		if err := set(bson.D{{Key: "version", Value: int32(v)}}); err != nil {
			return err
		}
	}
	if err := set(bson.D{{Key: "locked", Value: false}}); err != nil {
		return err
	}
	logf("Migrations: Finished migrating.")
	return nil
}

func oauthEnabled(ctx context.Context, db *mongo.Database) (string, error) {
	cur, err := db.Collection("rocketchat_settings").Find(ctx, bson.D{{Key: "value", Value: true}})
	if err != nil {
		return "", err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		id, _ := cur.Current.Lookup("_id").StringValueOK()
		if oauthSetting.MatchString(id) || id == "Accounts_OAuth_GitHub_Enterprise" || id == "LDAP_Enable" || id == "SAML_Custom_Default" {
			return id, nil
		}
	}
	return "", cur.Err()
}
