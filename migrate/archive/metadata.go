package archive

import (
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Metadata is a collection's metadata.json: what mongorestore needs to
// recreate the collection before its documents and its indexes after.
type Metadata struct {
	// Options are the collection's create options (capped, validator,
	// collation...); empty for a plain collection.
	Options bson.Raw `bson:"options,omitempty"`
	// Indexes are the index specifications as listIndexes returned them
	// (v, key, name, and options such as unique; ns in 3.x dumps).
	Indexes []bson.Raw `bson:"indexes"`
	// UUID is the collection's UUID (hex) when the dump recorded it.
	UUID string `bson:"uuid,omitempty"`
	// CollectionName is only written by current tools.
	CollectionName string `bson:"collectionName,omitempty"`
	// Type is "collection", "view" or "timeseries" (current tools only).
	Type string `bson:"type,omitempty"`
}

// ParseMetadata reads a namespace's metadata string: canonical or relaxed
// Extended JSON v2 (tools 100.x) or legacy JSON (tools up to 4.0, no type,
// uuid or collectionName; index specs with ns and v:1). An empty string
// gives empty metadata.
func ParseMetadata(s string) (Metadata, error) {
	var m Metadata
	if s == "" {
		return m, nil
	}
	if err := bson.UnmarshalExtJSON([]byte(s), false, &m); err != nil {
		return m, fmt.Errorf("collection metadata: %w", err)
	}
	return m, nil
}

// MarshalMetadata writes metadata as canonical Extended JSON v2, the way
// current mongodump writes it.
func MarshalMetadata(m Metadata) (string, error) {
	d := bson.D{}
	if len(m.Options) > 0 {
		d = append(d, bson.E{Key: "options", Value: m.Options})
	}
	idx := bson.A{}
	for _, i := range m.Indexes {
		idx = append(idx, i)
	}
	d = append(d, bson.E{Key: "indexes", Value: idx})
	if m.UUID != "" {
		d = append(d, bson.E{Key: "uuid", Value: m.UUID})
	}
	if m.CollectionName != "" {
		d = append(d, bson.E{Key: "collectionName", Value: m.CollectionName})
	}
	if m.Type != "" {
		d = append(d, bson.E{Key: "type", Value: m.Type})
	}
	b, err := bson.MarshalExtJSON(d, true, false)
	if err != nil {
		return "", fmt.Errorf("collection metadata: %w", err)
	}
	return string(b), nil
}
