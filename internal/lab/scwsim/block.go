package scwsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

type referenceJSON struct {
	ID                  string `json:"id"`
	ProductResourceType string `json:"product_resource_type"`
	ProductResourceID   string `json:"product_resource_id"`
	CreatedAt           string `json:"created_at"`
	Type                string `json:"type"`
	Status              string `json:"status"`
}

type specsJSON struct {
	PerfIOPS int    `json:"perf_iops"`
	Class    string `json:"class"`
}

type blockVolumeJSON struct {
	ID               string          `json:"id"`
	Name             string          `json:"name"`
	Type             string          `json:"type"`
	Size             int64           `json:"size"`
	ProjectID        string          `json:"project_id"`
	CreatedAt        string          `json:"created_at"`
	UpdatedAt        string          `json:"updated_at"`
	References       []referenceJSON `json:"references"`
	ParentSnapshotID *string         `json:"parent_snapshot_id"`
	Status           string          `json:"status"`
	Tags             []string        `json:"tags"`
	Specs            specsJSON       `json:"specs"`
	LastDetachedAt   *string         `json:"last_detached_at"`
	Zone             string          `json:"zone"`
}

// blockV1 tells the API versions apart: v1 has kms_key_id (null), v1alpha1
// (still used by the SDK's instance helpers) does not.
func blockV1(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/block/v1/") }

// withKMS adds the null kms_key_id of Block v1 objects.
func withKMS(v any) any {
	b, _ := json.Marshal(v)
	m := map[string]any{}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	_ = d.Decode(&m)
	m["kms_key_id"] = nil
	return m
}

func renderBlockVolume(v *blockVolume) blockVolumeJSON {
	refs := []referenceJSON{}
	if v.Server != "" {
		refs = append(refs, referenceJSON{ID: v.RefID, ProductResourceType: "instance_server",
			ProductResourceID: v.Server, CreatedAt: blockTime(v.RefCreated), Type: "exclusive", Status: "attached"})
	}
	var parent, detached *string
	if v.ParentSnapshot != "" {
		p := v.ParentSnapshot
		parent = &p
	}
	if v.LastDetached != nil {
		d := blockTime(*v.LastDetached)
		detached = &d
	}
	return blockVolumeJSON{ID: v.ID, Name: v.Name, Type: "sbs_5k", Size: v.Size, ProjectID: v.Project,
		CreatedAt: blockTime(v.Created), UpdatedAt: blockTime(v.Updated), References: refs,
		ParentSnapshotID: parent, Status: v.Status, Tags: nonNil(v.Tags),
		Specs: specsJSON{PerfIOPS: 5000, Class: "sbs"}, LastDetachedAt: detached, Zone: v.Zone}
}

func (s *Sim) blockVolumeOut(r *http.Request, v *blockVolume) any {
	j := renderBlockVolume(v)
	if blockV1(r) {
		return withKMS(j)
	}
	return j
}

type parentVolumeJSON struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	Status string `json:"status"`
}

type blockSnapshotJSON struct {
	ID           string           `json:"id"`
	Name         string           `json:"name"`
	ParentVolume parentVolumeJSON `json:"parent_volume"`
	Size         int64            `json:"size"`
	ProjectID    string           `json:"project_id"`
	CreatedAt    string           `json:"created_at"`
	UpdatedAt    string           `json:"updated_at"`
	References   []referenceJSON  `json:"references"`
	Status       string           `json:"status"`
	Tags         []string         `json:"tags"`
	Class        string           `json:"class"`
	Zone         string           `json:"zone"`
	Public       bool             `json:"public"`
}

func (s *Sim) blockSnapshotOut(r *http.Request, b *blockSnapshot) any {
	status := "deleted"
	if v := s.st.BlockVolumes[b.Parent.ID]; v != nil {
		status = v.Status
	}
	j := blockSnapshotJSON{ID: b.ID, Name: b.Name,
		ParentVolume: parentVolumeJSON{ID: b.Parent.ID, Name: b.Parent.Name, Type: "sbs_5k", Status: status},
		Size:         b.Size, ProjectID: b.Project, CreatedAt: blockTime(b.Created), UpdatedAt: blockTime(b.Updated),
		References: []referenceJSON{}, Status: b.Status, Tags: nonNil(b.Tags), Class: "sbs", Zone: b.Zone}
	if blockV1(r) {
		return withKMS(j)
	}
	return j
}

func (s *Sim) blockVolumeByID(r *http.Request) (*blockVolume, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	v := s.st.BlockVolumes[id]
	if v == nil || v.Zone != zone {
		return nil, notFound("volume", id)
	}
	return v, nil
}

func (s *Sim) getBlockVolume(r *http.Request) (*reply, error) {
	v, err := s.blockVolumeByID(r)
	if err != nil {
		return nil, err
	}
	return ok(s.blockVolumeOut(r, v))
}

func (s *Sim) listBlockVolumes(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var items []any
	for _, v := range ordered(s.st.BlockVolumes) {
		switch {
		case v.Zone != zone,
			q.Get("project_id") != "" && v.Project != q.Get("project_id"),
			q.Get("name") != "" && !strings.Contains(v.Name, q.Get("name")),
			q.Get("product_resource_id") != "" && v.Server != q.Get("product_resource_id"),
			!hasAllTags(v.Tags, strings.Join(q["tags"], ",")):
			continue
		}
		items = append(items, s.blockVolumeOut(r, v))
	}
	page, err := bodyPage(r, items)
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"volumes": page, "total_count": len(items)})
}

type createBlockVolumeRequest struct {
	Name      string  `json:"name"`
	PerfIOPS  *uint32 `json:"perf_iops"`
	ProjectID string  `json:"project_id"`
	FromEmpty *struct {
		Size int64 `json:"size"`
	} `json:"from_empty"`
	FromSnapshot *struct {
		Size       *int64 `json:"size"`
		SnapshotID string `json:"snapshot_id"`
	} `json:"from_snapshot"`
	Tags []string `json:"tags"`
}

func (s *Sim) createBlockVolume(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	var req createBlockVolumeRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	p, found := s.project(req.ProjectID)
	if !found {
		return nil, invalidArguments(argDetail{"project_id", "format", "value must be a valid UUID"})
	}
	now := s.now()
	v := &blockVolume{ID: s.newID(), Name: req.Name, Zone: zone, Project: p.ID, Status: "available",
		Tags: nonNil(req.Tags), Created: now, Updated: now}
	src := LayerSource{}
	switch {
	case req.FromSnapshot != nil:
		bs := s.st.BlockSnapshots[req.FromSnapshot.SnapshotID]
		if bs == nil || bs.Zone != zone {
			return nil, notFound("snapshot", req.FromSnapshot.SnapshotID)
		}
		v.Size, v.ParentSnapshot, v.Label, src = bs.Size, bs.ID, bs.Label, LayerSource{From: bs.ID}
		if req.FromSnapshot.Size != nil {
			v.Size = *req.FromSnapshot.Size
		}
	case req.FromEmpty != nil:
		v.Size = req.FromEmpty.Size
	default:
		return nil, invalidArguments(argDetail{"from_empty", "required", "one of from_empty or from_snapshot is required"})
	}
	s.st.BlockVolumes[v.ID] = v
	s.createLayer(v.ID, src, nil)
	return ok(s.blockVolumeOut(r, v))
}

type updateBlockRequest struct {
	Name *string   `json:"name"`
	Size *int64    `json:"size"`
	Tags *[]string `json:"tags"`
}

func (s *Sim) updateBlockVolume(r *http.Request) (*reply, error) {
	v, err := s.blockVolumeByID(r)
	if err != nil {
		return nil, err
	}
	var req updateBlockRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Name != nil {
		v.Name = *req.Name
	}
	if req.Tags != nil {
		v.Tags = nonNil(*req.Tags)
	}
	if req.Size != nil {
		if *req.Size < v.Size {
			return nil, invalidArguments(argDetail{"size", "constraint", "a volume cannot shrink"})
		}
		v.Size = *req.Size
	}
	v.Updated = s.now()
	return ok(s.blockVolumeOut(r, v))
}

func (s *Sim) deleteBlockVolume(r *http.Request) (*reply, error) {
	v, err := s.blockVolumeByID(r)
	if err != nil {
		return nil, err
	}
	if v.Server != "" {
		return nil, &apiError{status: http.StatusPreconditionFailed, body: map[string]any{
			"help_message": "the volume is attached to a server", "message": "precondition is not respected",
			"precondition": "resource_still_in_use", "type": "precondition_failed"}}
	}
	delete(s.st.BlockVolumes, v.ID)
	s.deleteLayer(v.ID)
	return noContent()
}

// newBlockSnapshot starts a snapshot of bv (its layer copied in the
// background, "creating" until then).
func (s *Sim) newBlockSnapshot(bv *blockVolume, name, project string, tags []string) *blockSnapshot {
	now := s.now()
	bs := &blockSnapshot{ID: s.newID(), Name: name, Zone: bv.Zone, Project: project,
		Parent: ref{ID: bv.ID, Name: bv.Name}, Size: bv.Size, Status: "creating", Tags: nonNil(tags),
		Created: now, Updated: now, Label: bv.Label, Timer: newTimer(now)}
	s.st.BlockSnapshots[bs.ID] = bs
	id := bs.ID
	s.copySnapshotLayer(id, bv.ID, func(err error) { s.blockSnapshotCopied(id, err) })
	return bs
}

func (s *Sim) blockSnapshotByID(r *http.Request) (*blockSnapshot, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	b := s.st.BlockSnapshots[id]
	if b == nil || b.Zone != zone {
		return nil, notFound("snapshot", id)
	}
	return b, nil
}

func (s *Sim) getBlockSnapshot(r *http.Request) (*reply, error) {
	b, err := s.blockSnapshotByID(r)
	if err != nil {
		return nil, err
	}
	return ok(s.blockSnapshotOut(r, b))
}

func (s *Sim) listBlockSnapshots(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var items []any
	for _, b := range ordered(s.st.BlockSnapshots) {
		switch {
		case b.Zone != zone,
			q.Get("project_id") != "" && b.Project != q.Get("project_id"),
			q.Get("name") != "" && !strings.Contains(b.Name, q.Get("name")),
			q.Get("volume_id") != "" && b.Parent.ID != q.Get("volume_id"),
			!hasAllTags(b.Tags, strings.Join(q["tags"], ",")):
			continue
		}
		items = append(items, s.blockSnapshotOut(r, b))
	}
	page, err := bodyPage(r, items)
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"snapshots": page, "total_count": len(items)})
}

type createBlockSnapshotRequest struct {
	VolumeID  string   `json:"volume_id"`
	Name      string   `json:"name"`
	ProjectID string   `json:"project_id"`
	Tags      []string `json:"tags"`
	Public    bool     `json:"public"`
}

func (s *Sim) createBlockSnapshot(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	var req createBlockSnapshotRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	p, found := s.project(req.ProjectID)
	if !found {
		return nil, invalidArguments(argDetail{"project_id", "format", "value must be a valid UUID"})
	}
	bv := s.st.BlockVolumes[req.VolumeID]
	if bv == nil || bv.Zone != zone {
		return nil, notFound("volume", req.VolumeID)
	}
	return ok(s.blockSnapshotOut(r, s.newBlockSnapshot(bv, req.Name, p.ID, req.Tags)))
}

func (s *Sim) updateBlockSnapshot(r *http.Request) (*reply, error) {
	b, err := s.blockSnapshotByID(r)
	if err != nil {
		return nil, err
	}
	var req updateBlockRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Name != nil {
		b.Name = *req.Name
	}
	if req.Tags != nil {
		b.Tags = nonNil(*req.Tags)
	}
	b.Updated = s.now()
	return ok(s.blockSnapshotOut(r, b))
}

func (s *Sim) deleteBlockSnapshot(r *http.Request) (*reply, error) {
	b, err := s.blockSnapshotByID(r)
	if err != nil {
		return nil, err
	}
	if len(s.imagesUsing(b.ID)) > 0 {
		return nil, &apiError{status: http.StatusPreconditionFailed, body: map[string]any{
			"help_message": "the snapshot is used by an image", "message": "precondition is not respected",
			"precondition": "resource_still_in_use", "type": "precondition_failed"}}
	}
	delete(s.st.BlockSnapshots, b.ID)
	s.deleteLayer(b.ID)
	return noContent()
}
