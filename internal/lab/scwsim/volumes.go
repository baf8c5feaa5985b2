package scwsim

import (
	"net/http"
	"strings"
)

func (s *Sim) volumeByID(r *http.Request) (*volume, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	v := s.st.Volumes[id]
	if v == nil || v.Zone != zone {
		return nil, notFound("instance_volume", id)
	}
	return v, nil
}

func (s *Sim) getVolume(r *http.Request) (*reply, error) {
	v, err := s.volumeByID(r)
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"volume": s.renderVolume(v)})
}

// listVolumes lists Instance (l_ssd) volumes; sbs volumes only exist in the
// Block API.
func (s *Sim) listVolumes(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var out []volumeJSON
	for _, v := range ordered(s.st.Volumes) {
		switch {
		case v.Zone != zone,
			q.Get("volume_type") != "" && q.Get("volume_type") != volLSSD,
			q.Get("project") != "" && v.Project != q.Get("project"),
			q.Get("organization") != "" && v.Organization != q.Get("organization"),
			q.Get("name") != "" && !strings.Contains(v.Name, q.Get("name")),
			!hasAllTags(v.Tags, q.Get("tags")):
			continue
		}
		out = append(out, s.renderVolume(v))
	}
	page, h, err := instancePage(r, out)
	if err != nil {
		return nil, err
	}
	return &reply{status: http.StatusOK, body: map[string]any{"volumes": page}, header: h}, nil
}

type createVolumeRequest struct {
	Name         string   `json:"name"`
	Organization *string  `json:"organization"`
	Project      *string  `json:"project"`
	Tags         []string `json:"tags"`
	VolumeType   string   `json:"volume_type"`
	Size         *int64   `json:"size"`
	BaseSnapshot *string  `json:"base_snapshot"`
}

// createVolume makes a standalone l_ssd volume, empty or from a snapshot
// (its layer starts as a copy of the snapshot's).
func (s *Sim) createVolume(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	var req createVolumeRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	own, err := s.ownerFor(req.Project, req.Organization, "instance_volume")
	if err != nil {
		return nil, err
	}
	if req.VolumeType != volLSSD {
		return nil, invalidArguments(argDetail{"volume_type", "constraint",
			"scwsim creates l_ssd volumes only; use the Block API for sbs volumes"})
	}
	now := s.now()
	v := &volume{owner: own, ID: s.newID(), Name: req.Name, Zone: zone, State: "available",
		Tags: nonNil(req.Tags), Created: now, Modified: now}
	src := LayerSource{}
	switch {
	case req.BaseSnapshot != nil && *req.BaseSnapshot != "":
		sn := s.st.Snapshots[*req.BaseSnapshot]
		if sn == nil || sn.Zone != zone {
			return nil, notFound("instance_snapshot", *req.BaseSnapshot)
		}
		v.Size, v.Label, src = sn.Size, sn.Label, LayerSource{From: sn.ID}
		if req.Size != nil {
			v.Size = *req.Size
		}
	case req.Size != nil:
		v.Size = *req.Size
	default:
		return nil, invalidArguments(argDetail{"size", "required", "size or base_snapshot is required"})
	}
	if v.Name == "" {
		v.Name = "vol-" + v.ID[:8]
	}
	s.st.Volumes[v.ID] = v
	s.createLayer(v.ID, src, nil)
	return &reply{status: http.StatusCreated, body: map[string]any{"volume": s.renderVolume(v)},
		header: locationHeader(r, "/volumes/"+v.ID)}, nil
}

type updateVolumeRequest struct {
	Name *string   `json:"name"`
	Tags *[]string `json:"tags"`
	Size *int64    `json:"size"`
}

func (s *Sim) updateVolume(r *http.Request) (*reply, error) {
	v, err := s.volumeByID(r)
	if err != nil {
		return nil, err
	}
	var req updateVolumeRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Size != nil && *req.Size < v.Size {
		return nil, invalidArguments(argDetail{"size", "constraint", "a volume cannot shrink"})
	}
	if req.Name != nil {
		v.Name = *req.Name
	}
	if req.Tags != nil {
		v.Tags = nonNil(*req.Tags)
	}
	if req.Size != nil {
		v.Size = *req.Size
	}
	v.Modified = s.now()
	return ok(map[string]any{"volume": s.renderVolume(v)})
}

func (s *Sim) deleteVolume(r *http.Request) (*reply, error) {
	v, err := s.volumeByID(r)
	if err != nil {
		return nil, err
	}
	if v.Server != "" {
		return nil, legacyInvalid("a server is attached to this volume")
	}
	if v.State != "available" {
		return nil, transientState("instance_volume", v.ID, v.State)
	}
	delete(s.st.Volumes, v.ID)
	s.deleteLayer(v.ID)
	return noContent()
}
