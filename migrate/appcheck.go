package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// AppCheck looks at the Rocket.Chat settings that decide whether the app
// comes up on the new server as the same workspace, rather than as a
// fresh install with its setup wizard or with broken attachments.
type AppCheck struct {
	// DB is the app's database (rocketchat).
	DB string
	// SiteURL is the URL users will reach the app at (https://<site>);
	// empty skips the comparison.
	SiteURL string
	// UploadsPath is where the app's container sees the uploaded files
	// (FileSystem storage), e.g. /app/uploads; empty skips the check.
	UploadsPath string
}

func settingValue(ctx context.Context, c *mongo.Collection, id string) (bson.RawValue, bool, error) {
	raw, err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return bson.RawValue{}, false, nil
	}
	if err != nil {
		return bson.RawValue{}, false, err
	}
	v, err := raw.LookupErr("value")
	if err != nil {
		return bson.RawValue{}, false, nil
	}
	return v, true, nil
}

// Check returns the settings that would make the app misbehave.
// uploadsCopied says whether files kept on disk were copied.
func (a *AppCheck) Check(ctx context.Context, client *mongo.Client, uploadsCopied bool) ([]Mismatch, []string, error) {
	settings := client.Database(a.DB).Collection("rocketchat_settings")
	var ms []Mismatch
	var warns []string
	coll := a.DB + ".rocketchat_settings"
	bad := func(id, what string) {
		ms = append(ms, Mismatch{Collection: coll, What: id + " " + what})
	}
	str := func(id string) (string, bool, error) {
		v, ok, err := settingValue(ctx, settings, id)
		if err != nil || !ok {
			return "", ok, err
		}
		s, isStr := v.StringValueOK()
		if !isStr {
			s = v.String()
		}
		return s, true, nil
	}

	wiz, ok, err := str("Show_Setup_Wizard")
	if err != nil {
		return nil, nil, fmt.Errorf("read settings on the target: %w", err)
	}
	switch {
	case !ok:
		bad("Show_Setup_Wizard", "is missing: the app would start as a fresh install (setup wizard)")
	case wiz != "completed":
		bad("Show_Setup_Wizard", fmt.Sprintf("is %q, not \"completed\": the app would show its setup wizard", wiz))
	}

	site, ok, err := str("Site_Url")
	if err != nil {
		return nil, nil, err
	}
	switch {
	case !ok || site == "":
		bad("Site_Url", "is missing: the app would ask for its URL again")
	case a.SiteURL != "" && strings.TrimSuffix(site, "/") != strings.TrimSuffix(a.SiteURL, "/"):
		bad("Site_Url", fmt.Sprintf("is %q but the site is %q: links, OAuth callbacks and uploads would point at the old address", site, a.SiteURL))
	}

	storage, ok, err := str("FileUpload_Storage_Type")
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		storage = "GridFS" // Rocket.Chat's default
	}
	switch storage {
	case "GridFS":
		// The files are documents of rocketchat_uploads: counted, hashed
		// and GridFS-totalled with the collections.
	case "FileSystem":
		path, _, err := str("FileUpload_FileSystemPath")
		if err != nil {
			return nil, nil, err
		}
		if !uploadsCopied {
			bad("FileUpload_Storage_Type", fmt.Sprintf("is FileSystem (files on disk at %q) but no uploads directory was copied: set migrate.from.uploads_dir, or attachments would be lost", path))
		} else if a.UploadsPath != "" && strings.TrimSuffix(path, "/") != strings.TrimSuffix(a.UploadsPath, "/") {
			bad("FileUpload_FileSystemPath", fmt.Sprintf("is %q but the app's container mounts the uploads at %q", path, a.UploadsPath))
		}
	default:
		warns = append(warns, fmt.Sprintf("%s: FileUpload_Storage_Type is %s: the files live outside this server and were not copied", coll, storage))
	}
	return ms, warns, nil
}
