package scwsim

import (
	"net/http"
	"strings"
)

// ---- snapshots (Instance API, l_ssd) ----

func (s *Sim) snapshotByID(r *http.Request) (*snapshot, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	sn := s.st.Snapshots[id]
	if sn == nil || sn.Zone != zone {
		return nil, notFound("instance_snapshot", id)
	}
	return sn, nil
}

func (s *Sim) getSnapshot(r *http.Request) (*reply, error) {
	sn, err := s.snapshotByID(r)
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"snapshot": renderSnapshot(sn)})
}

func (s *Sim) listSnapshots(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var out []snapshotJSON
	for _, sn := range ordered(s.st.Snapshots) {
		switch {
		case sn.Zone != zone,
			q.Get("project") != "" && sn.Project != q.Get("project"),
			q.Get("organization") != "" && sn.Organization != q.Get("organization"),
			q.Get("name") != "" && !strings.Contains(sn.Name, q.Get("name")),
			q.Get("volume_type") != "" && sn.VolumeType != q.Get("volume_type"),
			q.Get("base_volume_id") != "" && (sn.BaseVolume == nil || sn.BaseVolume.ID != q.Get("base_volume_id")),
			!hasAllTags(sn.Tags, q.Get("tags")):
			continue
		}
		out = append(out, renderSnapshot(sn))
	}
	page, h, err := instancePage(r, out)
	if err != nil {
		return nil, err
	}
	return &reply{status: http.StatusOK, body: map[string]any{"snapshots": page}, header: h}, nil
}

type createSnapshotRequest struct {
	Name         string    `json:"name"`
	VolumeID     *string   `json:"volume_id"`
	Tags         *[]string `json:"tags"`
	Organization *string   `json:"organization"`
	Project      *string   `json:"project"`
	VolumeType   string    `json:"volume_type"`
	Bucket       *string   `json:"bucket"`
}

// createSnapshot snapshots an l_ssd volume (hot on types that allow it);
// the snapshot is "snapshotting" until its layer copy is done. The volume
// itself stays available (only the backup action flags it).
func (s *Sim) createSnapshot(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	var req createSnapshotRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	own, err := s.ownerFor(req.Project, req.Organization, "instance_snapshot")
	if err != nil {
		return nil, err
	}
	if req.Bucket != nil {
		return nil, invalidArguments(argDetail{"bucket", "constraint", "scwsim does not import snapshots"})
	}
	if req.VolumeID == nil || *req.VolumeID == "" {
		return nil, invalidArguments(argDetail{"volume_id", "required", "volume_id is required"})
	}
	v := s.st.Volumes[*req.VolumeID]
	if v == nil || v.Zone != zone {
		if bv := s.st.BlockVolumes[*req.VolumeID]; bv != nil && bv.Zone == zone {
			return nil, invalidArguments(argDetail{"volume_type", "constraint",
				"volume_type does not respect constraint, not a valid value"})
		}
		return nil, notFound("instance_volume", *req.VolumeID)
	}
	if sv := s.st.Servers[v.Server]; sv != nil && sv.State != stStopped {
		if st, _ := findServerType(sv.CommercialType); !st.HotSnapshots {
			return nil, legacyInvalid("server should be stopped to snapshot a local volume")
		}
	}
	now := s.now()
	sn := &snapshot{owner: own, ID: s.newID(), Name: req.Name, Zone: zone, VolumeType: volLSSD, Size: v.Size,
		State: "snapshotting", BaseVolume: &ref{ID: v.ID, Name: v.Name}, Tags: []string{},
		Created: now, Modified: now, Label: v.Label, Timer: newTimer(now)}
	if req.Tags != nil {
		sn.Tags = nonNil(*req.Tags)
	}
	if sn.Name == "" {
		sn.Name = "snp-" + sn.ID[:8]
	}
	s.st.Snapshots[sn.ID] = sn
	id := sn.ID
	s.copySnapshotLayer(id, v.ID, func(err error) { s.snapshotCopied(id, err) })
	return created(map[string]any{
		"snapshot": renderSnapshot(sn),
		"task":     s.newTask(zone, "/snapshots", "snapshots/"+sn.ID),
	})
}

type updateSnapshotRequest struct {
	Name *string   `json:"name"`
	Tags *[]string `json:"tags"`
}

func (s *Sim) updateSnapshot(r *http.Request) (*reply, error) {
	sn, err := s.snapshotByID(r)
	if err != nil {
		return nil, err
	}
	var req updateSnapshotRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Name != nil {
		sn.Name = *req.Name
	}
	if req.Tags != nil {
		sn.Tags = nonNil(*req.Tags)
	}
	sn.Modified = s.now()
	return ok(map[string]any{"snapshot": renderSnapshot(sn)})
}

// imagesUsing lists the private images referring to a snapshot.
func (s *Sim) imagesUsing(snapID string) []*image {
	var out []*image
	for _, im := range ordered(s.st.Images) {
		if im.Root.ID == snapID {
			out = append(out, im)
			continue
		}
		for _, e := range im.Extra {
			if e.ID == snapID {
				out = append(out, im)
				break
			}
		}
	}
	return out
}

func (s *Sim) deleteSnapshot(r *http.Request) (*reply, error) {
	sn, err := s.snapshotByID(r)
	if err != nil {
		return nil, err
	}
	if len(s.imagesUsing(sn.ID)) > 0 {
		return nil, legacyInvalid("one or more images are attached to this snapshot")
	}
	delete(s.st.Snapshots, sn.ID)
	if sn.Backup && sn.BaseVolume != nil {
		s.settleBackupVolume(sn.BaseVolume.ID, s.now())
	}
	s.deleteLayer(sn.ID)
	return noContent()
}

// ---- images ----

func (s *Sim) getImage(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	im, err := s.resolveImage(zone, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"image": renderImage(im)})
}

// listImages lists private images and, unless public=false, the zone's
// public ones; name is a substring filter.
func (s *Sim) listImages(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var all []*image
	if q.Get("public") != "false" {
		for _, li := range s.cat.localImages {
			if im := s.cat.images[li.ID]; im.Zone == zone {
				all = append(all, im)
			}
		}
	}
	if q.Get("public") != "true" {
		all = append(all, ordered(s.st.Images)...)
	}
	var out []imageJSON
	for _, im := range all {
		switch {
		case im.Zone != zone,
			q.Get("project") != "" && im.Project != q.Get("project"),
			q.Get("organization") != "" && im.Organization != q.Get("organization"),
			q.Get("name") != "" && !strings.Contains(im.Name, q.Get("name")),
			q.Get("arch") != "" && im.Arch != q.Get("arch"),
			!hasAllTags(im.Tags, q.Get("tags")):
			continue
		}
		out = append(out, renderImage(im))
	}
	page, h, err := instancePage(r, out)
	if err != nil {
		return nil, err
	}
	return &reply{status: http.StatusOK, body: map[string]any{"images": page}, header: h}, nil
}

type createImageRequest struct {
	Name         string                          `json:"name"`
	RootVolume   string                          `json:"root_volume"`
	Arch         string                          `json:"arch"`
	ExtraVolumes map[string]*struct{ ID string } `json:"extra_volumes"`
	Organization *string                         `json:"organization"`
	Project      *string                         `json:"project"`
	Tags         []string                        `json:"tags"`
	Public       *bool                           `json:"public"`
}

// snapshotVolume describes snapshot id (Instance or Block) as an image
// volume, with the label its layer descends from.
func (s *Sim) snapshotVolume(zone, id string) (imageVolume, string, error) {
	if sn := s.st.Snapshots[id]; sn != nil && sn.Zone == zone {
		return imageVolume{ID: sn.ID, Name: sn.Name, VolumeType: volLSSD, Size: sn.Size}, sn.Label, nil
	}
	if bs := s.st.BlockSnapshots[id]; bs != nil && bs.Zone == zone {
		return imageVolume{ID: bs.ID, VolumeType: volSBSSnapshot}, bs.Label, nil
	}
	return imageVolume{}, "", notFound("instance_snapshot", id)
}

func (s *Sim) createImage(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	var req createImageRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	own, err := s.ownerFor(req.Project, req.Organization, "instance_image")
	if err != nil {
		return nil, err
	}
	if req.Name == "" {
		return nil, invalidArguments(argDetail{"name", "required", "name is required"})
	}
	if req.Public != nil && *req.Public {
		return nil, invalidArguments(argDetail{"public", "constraint", "scwsim does not publish images"})
	}
	root, label, err := s.snapshotVolume(zone, req.RootVolume)
	if err != nil {
		return nil, err
	}
	arch := req.Arch
	if arch == "" || arch == "unknown_arch" {
		arch = "x86_64" // whether the real API rejects a missing arch is unverified
	}
	now := s.now()
	im := &image{owner: own, ID: s.newID(), Name: req.Name, Zone: zone, Arch: arch, Root: root,
		Extra: map[string]imageVolume{}, Tags: nonNil(req.Tags), Created: now, Modified: now, Label: label}
	for k, e := range req.ExtraVolumes {
		if e == nil {
			continue
		}
		v, _, err := s.snapshotVolume(zone, e.ID)
		if err != nil {
			return nil, err
		}
		im.Extra[k] = v
	}
	s.st.Images[im.ID] = im
	return &reply{status: http.StatusCreated, body: map[string]any{"image": renderImage(im)},
		header: locationHeader(r, "/images/"+im.ID)}, nil
}

type updateImageRequest struct {
	Name   *string   `json:"name"`
	Arch   string    `json:"arch"`
	Tags   *[]string `json:"tags"`
	Public *bool     `json:"public"`
}

func (s *Sim) privateImage(r *http.Request) (*image, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	im := s.st.Images[id]
	if im == nil || im.Zone != zone {
		if s.cat.images[id] != nil {
			return nil, permissionsDenied("write", "instance_image")
		}
		return nil, notFound("instance_image", id)
	}
	return im, nil
}

func (s *Sim) updateImage(r *http.Request) (*reply, error) {
	im, err := s.privateImage(r)
	if err != nil {
		return nil, err
	}
	var req updateImageRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Name != nil {
		im.Name = *req.Name
	}
	if req.Arch != "" && req.Arch != "unknown_arch" {
		im.Arch = req.Arch
	}
	if req.Tags != nil {
		im.Tags = nonNil(*req.Tags)
	}
	if req.Public != nil && *req.Public {
		return nil, invalidArguments(argDetail{"public", "constraint", "scwsim does not publish images"})
	}
	im.Modified = s.now()
	return ok(map[string]any{"image": renderImage(im)})
}

// deleteImage deletes the image only: its snapshots stay (delete them
// afterwards, as the docs say).
func (s *Sim) deleteImage(r *http.Request) (*reply, error) {
	im, err := s.privateImage(r)
	if err != nil {
		return nil, err
	}
	delete(s.st.Images, im.ID)
	return noContent()
}
