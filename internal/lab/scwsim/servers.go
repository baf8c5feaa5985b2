package scwsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
)

type volumeTemplate struct {
	ID           *string `json:"id"`
	Boot         *bool   `json:"boot"`
	Name         *string `json:"name"`
	Size         *int64  `json:"size"`
	VolumeType   string  `json:"volume_type"`
	BaseSnapshot *string `json:"base_snapshot"`
	Organization *string `json:"organization"`
	Project      *string `json:"project"`
}

type createServerRequest struct {
	Name              string                     `json:"name"`
	DynamicIPRequired *bool                      `json:"dynamic_ip_required"`
	RoutedIPEnabled   *bool                      `json:"routed_ip_enabled"`
	CommercialType    string                     `json:"commercial_type"`
	Image             *string                    `json:"image"`
	Volumes           map[string]*volumeTemplate `json:"volumes"`
	EnableIPv6        *bool                      `json:"enable_ipv6"`
	PublicIP          *string                    `json:"public_ip"`
	PublicIPs         *[]string                  `json:"public_ips"`
	BootType          *string                    `json:"boot_type"`
	Organization      *string                    `json:"organization"`
	Project           *string                    `json:"project"`
	Tags              []string                   `json:"tags"`
	SecurityGroup     *string                    `json:"security_group"`
	PlacementGroup    *string                    `json:"placement_group"`
	AdminKeyID        *string                    `json:"admin_password_encryption_ssh_key_id"`
	Protected         bool                       `json:"protected"`
}

func (s *Sim) serverByID(r *http.Request) (*server, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	sv := s.st.Servers[id]
	if sv == nil || sv.Zone != zone {
		return nil, notFound("instance_server", id)
	}
	return sv, nil
}

func (s *Sim) getServer(r *http.Request) (*reply, error) {
	sv, err := s.serverByID(r)
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"server": s.renderServer(sv)})
}

func (s *Sim) listServers(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var ids []string
	if v := q.Get("servers"); v != "" {
		ids = strings.Split(v, ",")
	}
	var out []serverJSON
	for _, sv := range s.sortedServers() {
		switch {
		case sv.Zone != zone,
			q.Get("project") != "" && sv.Project != q.Get("project"),
			q.Get("organization") != "" && sv.Organization != q.Get("organization"),
			q.Get("name") != "" && !strings.Contains(sv.Name, q.Get("name")),
			q.Get("commercial_type") != "" && sv.CommercialType != q.Get("commercial_type"),
			q.Get("state") != "" && sv.State != q.Get("state"),
			!hasAllTags(sv.Tags, q.Get("tags")),
			ids != nil && !slices.Contains(ids, sv.ID),
			q.Get("with_ip") != "" && !s.serverHasAddress(sv, q.Get("with_ip")),
			q.Get("without_ip") == "true" && len(sv.IPs) > 0:
			continue
		}
		out = append(out, s.renderServer(sv))
	}
	if q.Get("order") != "creation_date_asc" {
		slices.Reverse(out) // creation_date_desc is the default order
	}
	page, h, err := instancePage(r, out)
	if err != nil {
		return nil, err
	}
	return &reply{status: http.StatusOK, body: map[string]any{"servers": page}, header: h}, nil
}

func (s *Sim) serverHasAddress(sv *server, addr string) bool {
	for _, ip := range s.serverIPs(sv) {
		if ip.Address == addr {
			return true
		}
	}
	return false
}

// resolveImage finds a public (catalogue) or private image of the zone.
func (s *Sim) resolveImage(zone, id string) (*image, error) {
	if im := s.cat.images[id]; im != nil && im.Zone == zone {
		return im, nil
	}
	if im := s.st.Images[id]; im != nil && im.Zone == zone {
		return im, nil
	}
	return nil, notFound("instance_image", id)
}

func (s *Sim) createServer(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	var req createServerRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	own, err := s.ownerFor(req.Project, req.Organization, "instance_server")
	if err != nil {
		return nil, err
	}
	if req.Name == "" {
		return nil, invalidArguments(argDetail{"name", "required", "name is required"})
	}
	st, found := findServerType(req.CommercialType)
	if !found {
		return nil, invalidArguments(argDetail{"commercial_type", "constraint", "unknown commercial type " + req.CommercialType})
	}
	if req.Image == nil || *req.Image == "" {
		return nil, invalidArguments(argDetail{"image", "required", "scwsim needs an image to create a server"})
	}
	if !uuidRE.MatchString(*req.Image) {
		return nil, invalidArguments(argDetail{"image", "format", "value must be a valid UUID"})
	}
	im, err := s.resolveImage(zone, *req.Image)
	if err != nil {
		return nil, err
	}
	if im.Arch != st.Arch {
		return nil, invalidArguments(argDetail{"image", "constraint",
			fmt.Sprintf("image arch %s does not match commercial type %s (%s)", im.Arch, st.Name, st.Arch)})
	}
	now := s.now()
	sv := &server{
		owner: own, ID: s.newID(), Name: req.Name, Zone: zone, CommercialType: st.Name, Arch: st.Arch,
		BootType: "local", Tags: nonNil(req.Tags), State: stStopped, Protected: req.Protected,
		DynamicIPRequired: req.DynamicIPRequired == nil || *req.DynamicIPRequired,
		EnableIPv6:        req.EnableIPv6 != nil && *req.EnableIPv6,
		Created:           now, Modified: now, Label: im.Label, AdminKeyID: req.AdminKeyID,
		UserData: map[string]string{},
	}
	if req.BootType != nil && *req.BootType != "" {
		if !slices.Contains([]string{"local", "rescue"}, *req.BootType) {
			return nil, invalidArguments(argDetail{"boot_type", "constraint", "unsupported boot type " + *req.BootType})
		}
		sv.BootType = *req.BootType
	}
	imCopy := *im
	sv.Image = &imCopy

	// Security group: the one asked for, or the project's default.
	if req.SecurityGroup != nil && *req.SecurityGroup != "" {
		g := s.st.SecurityGroups[*req.SecurityGroup]
		if g == nil || g.Zone != zone {
			return nil, notFound("instance_security_group", *req.SecurityGroup)
		}
		sv.SecurityGroup = g.ID
	} else {
		sv.SecurityGroup = s.defaultSG(Project{ID: own.Project, OrganizationID: own.Organization}, zone).ID
	}

	// IPs are checked before anything is created.
	var ipIDs []string
	if req.PublicIP != nil && *req.PublicIP != "" {
		ipIDs = append(ipIDs, *req.PublicIP)
	}
	if req.PublicIPs != nil {
		ipIDs = append(ipIDs, *req.PublicIPs...)
	}
	for _, id := range ipIDs {
		ip := s.st.IPs[id]
		if ip == nil || ip.Zone != zone {
			return nil, notFound("instance_ip", id)
		}
		if ip.Server != "" {
			return nil, legacyInvalid(fmt.Sprintf("IP %s is already attached to a server", id))
		}
	}

	vols, err := s.serverVolumes(sv, st, im, req.Volumes)
	if err != nil {
		return nil, err
	}
	sv.MAC = s.newMAC()
	for _, create := range vols {
		create()
	}
	for _, id := range ipIDs {
		ip := s.st.IPs[id]
		ip.Server, ip.State = sv.ID, "attached"
		sv.IPs = append(sv.IPs, id)
	}
	s.st.Servers[sv.ID] = sv
	return &reply{status: http.StatusCreated, body: map[string]any{"server": s.renderServer(sv)},
		header: locationHeader(r, "/servers/"+sv.ID)}, nil
}

// locationHeader is the Location header of a 201: the new resource's URL.
func locationHeader(r *http.Request, rel string) http.Header {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	p := r.URL.Path
	if i := strings.Index(p, "/zones/"); i >= 0 {
		rest := p[i+len("/zones/"):]
		if j := strings.Index(rest, "/"); j >= 0 {
			p = p[:i+len("/zones/")+j]
		}
	}
	h := http.Header{}
	h.Set("Location", scheme+"://"+r.Host+p+rel)
	return h
}

// serverVolumes validates the volume templates of a server creation and
// returns the functions creating the volumes (run only when everything is
// valid). The root volume comes from the image: l_ssd for instance_local
// images (sized to the type's maximum local storage unless told), an sbs
// volume in the Block API for instance_sbs images.
func (s *Sim) serverVolumes(sv *server, st serverType, im *image, tpl map[string]*volumeTemplate) ([]func(), error) {
	keys := make([]string, 0, len(tpl))
	for k := range tpl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if k != itoa(i) {
			return nil, invalidArguments(argDetail{"volumes", "constraint", "volume keys must be 0, 1, 2, ..."})
		}
	}
	root := tpl["0"]
	if root == nil {
		root = &volumeTemplate{}
	}
	rootType := volLSSD
	if im.Root.VolumeType == volSBSSnapshot {
		rootType = volSBSVolume
	}
	if root.VolumeType != "" && root.VolumeType != rootType {
		return nil, invalidArguments(argDetail{"volumes.0.volume_type", "constraint",
			fmt.Sprintf("image %s has a %s root, the root volume must be %s", im.ID, im.Root.VolumeType, rootType)})
	}
	var creates []func()
	var localTotal int64
	now := s.now()
	src := LayerSource{From: im.Root.ID}
	if im.Public {
		src = LayerSource{Image: im.Label}
	}
	switch rootType {
	case volLSSD:
		if !st.LocalVolumes {
			return nil, invalidArguments(argDetail{"volumes.0.volume_type", "constraint", st.Name + " has no local storage"})
		}
		size := st.MaxLocal
		if root.Size != nil {
			size = *root.Size
		}
		if size < im.Root.Size {
			return nil, invalidArguments(argDetail{"volumes.0.size", "constraint",
				fmt.Sprintf("the root volume must be at least %d bytes (image size)", im.Root.Size)})
		}
		localTotal += size
		name := im.Root.Name
		if root.Name != nil && *root.Name != "" {
			name = *root.Name
		}
		vol := &volume{owner: sv.owner, ID: s.newID(), Name: name, Zone: sv.Zone, Size: size,
			State: "available", Server: sv.ID, Tags: []string{}, Created: now, Modified: now, Label: im.Label}
		sv.Volumes = append(sv.Volumes, serverVolume{Type: volLSSD, ID: vol.ID})
		creates = append(creates, func() {
			s.st.Volumes[vol.ID] = vol
			s.createLayer(vol.ID, src, nil)
		})
	case volSBSVolume:
		if !st.SBSCompatible {
			return nil, invalidArguments(argDetail{"volumes.0.volume_type", "constraint", st.Name + " cannot boot on block storage"})
		}
		size := int64(10e9)
		if bs := s.st.BlockSnapshots[im.Root.ID]; bs != nil {
			size = bs.Size
		}
		if root.Size != nil {
			size = *root.Size
		}
		name := im.Name + "_sbs_volume_0"
		if root.Name != nil && *root.Name != "" {
			name = *root.Name
		}
		parent := im.Root.ID
		bv := &blockVolume{ID: s.newID(), Name: name, Zone: sv.Zone, Project: sv.Project, Size: size,
			ParentSnapshot: parent, Status: "in_use", Server: sv.ID, RefID: s.newID(), RefCreated: now,
			Tags: []string{}, Created: now, Updated: now, Label: im.Label}
		sv.Volumes = append(sv.Volumes, serverVolume{Type: volSBSVolume, ID: bv.ID})
		creates = append(creates, func() {
			s.st.BlockVolumes[bv.ID] = bv
			s.createLayer(bv.ID, src, nil)
		})
	}
	for _, k := range keys[min(1, len(keys)):] {
		t := tpl[k]
		switch {
		case t.ID != nil && *t.ID != "":
			if vol := s.st.Volumes[*t.ID]; vol != nil && vol.Zone == sv.Zone {
				if vol.Server != "" {
					return nil, legacyInvalid("volume " + vol.ID + " is already attached to a server")
				}
				localTotal += vol.Size
				sv.Volumes = append(sv.Volumes, serverVolume{Type: volLSSD, ID: vol.ID})
				creates = append(creates, func() { vol.Server = sv.ID })
				continue
			}
			if bv := s.st.BlockVolumes[*t.ID]; bv != nil && bv.Zone == sv.Zone {
				if bv.Server != "" {
					return nil, legacyInvalid("volume " + bv.ID + " is already attached to a server")
				}
				sv.Volumes = append(sv.Volumes, serverVolume{Type: volSBSVolume, ID: bv.ID})
				creates = append(creates, func() {
					bv.Server, bv.RefID, bv.RefCreated, bv.Status = sv.ID, s.newID(), now, "in_use"
				})
				continue
			}
			return nil, notFound("instance_volume", *t.ID)
		case t.VolumeType == volLSSD || t.VolumeType == "":
			if t.Size == nil {
				return nil, invalidArguments(argDetail{"volumes." + k + ".size", "required", "size is required"})
			}
			if !st.LocalVolumes {
				return nil, invalidArguments(argDetail{"volumes." + k + ".volume_type", "constraint", st.Name + " has no local storage"})
			}
			localTotal += *t.Size
			name := fmt.Sprintf("%s_volume_%s", sv.Name, k)
			if t.Name != nil && *t.Name != "" {
				name = *t.Name
			}
			vol := &volume{owner: sv.owner, ID: s.newID(), Name: name, Zone: sv.Zone, Size: *t.Size,
				State: "available", Server: sv.ID, Tags: []string{}, Created: now, Modified: now, Label: im.Label}
			sv.Volumes = append(sv.Volumes, serverVolume{Type: volLSSD, ID: vol.ID})
			creates = append(creates, func() {
				s.st.Volumes[vol.ID] = vol
				s.createLayer(vol.ID, LayerSource{}, nil)
			})
		default:
			return nil, invalidArguments(argDetail{"volumes." + k + ".volume_type", "constraint",
				"scwsim creates extra volumes of type l_ssd only"})
		}
	}
	if localTotal > st.MaxLocal {
		return nil, invalidArguments(argDetail{"volumes", "constraint",
			fmt.Sprintf("the total size of local volumes (%d) exceeds %d for %s", localTotal, st.MaxLocal, st.Name)})
	}
	return creates, nil
}

type updateServerRequest struct {
	Name              *string              `json:"name"`
	BootType          *string              `json:"boot_type"`
	Tags              *[]string            `json:"tags"`
	Volumes           json.RawMessage      `json:"volumes"`
	DynamicIPRequired *bool                `json:"dynamic_ip_required"`
	RoutedIPEnabled   *bool                `json:"routed_ip_enabled"`
	PublicIPs         *[]string            `json:"public_ips"`
	EnableIPv6        *bool                `json:"enable_ipv6"`
	Protected         *bool                `json:"protected"`
	SecurityGroup     *struct{ ID string } `json:"security_group"`
	CommercialType    *string              `json:"commercial_type"`
	AdminKeyID        *string              `json:"admin_password_encryption_ssh_key_id"`
}

func (s *Sim) updateServer(r *http.Request) (*reply, error) {
	sv, err := s.serverByID(r)
	if err != nil {
		return nil, err
	}
	var req updateServerRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if len(req.Volumes) > 0 && string(req.Volumes) != "null" {
		return nil, invalidArguments(argDetail{"volumes", "constraint", "scwsim does not change volumes through PATCH /servers"})
	}
	if req.CommercialType != nil && *req.CommercialType != sv.CommercialType {
		st, found := findServerType(*req.CommercialType)
		if !found {
			return nil, invalidArguments(argDetail{"commercial_type", "constraint", "unknown commercial type " + *req.CommercialType})
		}
		if sv.State != stStopped {
			return nil, legacyInvalid("server should be stopped")
		}
		sv.CommercialType, sv.Arch = st.Name, st.Arch
	}
	var sg *securityGroup
	if req.SecurityGroup != nil && req.SecurityGroup.ID != "" {
		if sg = s.st.SecurityGroups[req.SecurityGroup.ID]; sg == nil || sg.Zone != sv.Zone {
			return nil, notFound("instance_security_group", req.SecurityGroup.ID)
		}
	}
	if req.PublicIPs != nil {
		for _, id := range *req.PublicIPs {
			ip := s.st.IPs[id]
			if ip == nil || ip.Zone != sv.Zone {
				return nil, notFound("instance_ip", id)
			}
			if ip.Server != "" && ip.Server != sv.ID {
				return nil, legacyInvalid(fmt.Sprintf("IP %s is already attached to a server", id))
			}
		}
		for _, id := range slices.Clone(sv.IPs) {
			if !slices.Contains(*req.PublicIPs, id) {
				s.detachIP(s.st.IPs[id])
			}
		}
		for _, id := range *req.PublicIPs {
			if !slices.Contains(sv.IPs, id) {
				s.attachIP(s.st.IPs[id], sv)
			}
		}
	}
	if req.Name != nil {
		sv.Name = *req.Name
	}
	if req.BootType != nil {
		sv.BootType = *req.BootType
	}
	if req.Tags != nil {
		sv.Tags = nonNil(*req.Tags)
	}
	if req.DynamicIPRequired != nil {
		sv.DynamicIPRequired = *req.DynamicIPRequired
	}
	if req.EnableIPv6 != nil {
		sv.EnableIPv6 = *req.EnableIPv6
	}
	if req.Protected != nil {
		sv.Protected = *req.Protected
	}
	if req.AdminKeyID != nil {
		sv.AdminKeyID = req.AdminKeyID
	}
	if sg != nil && sg.ID != sv.SecurityGroup {
		sv.SecurityGroup = sg.ID
		if sv.MachineUp {
			fw, id := firewallOf(sg), sv.ID
			s.work.enqueue(serverLane(id), func() {
				ctx, cancel := s.opCtx()
				defer cancel()
				if err := s.machines.SetFirewall(ctx, id, fw); err != nil {
					s.cfg.Log.Error("scwsim set firewall failed", "server", id, "err", err)
				}
			})
		}
	}
	sv.Modified = s.now()
	return ok(map[string]any{"server": s.renderServer(sv)})
}

func (s *Sim) deleteServer(r *http.Request) (*reply, error) {
	sv, err := s.serverByID(r)
	if err != nil {
		return nil, err
	}
	if sv.State != stStopped {
		return nil, legacyInvalid("server should be stopped")
	}
	now := s.now()
	for _, v := range sv.Volumes {
		switch v.Type {
		case volLSSD:
			if vol := s.st.Volumes[v.ID]; vol != nil {
				vol.Server, vol.Modified = "", now
			}
		case volSBSVolume:
			s.detachBlockVolume(v.ID, now)
		}
	}
	s.detachServer(sv)
	s.dropDynamicIP(sv)
	delete(s.st.Servers, sv.ID)
	id := sv.ID
	s.work.enqueue(serverLane(id), func() {
		ctx, cancel := s.opCtx()
		defer cancel()
		if err := s.machines.Remove(ctx, id); err != nil {
			s.cfg.Log.Error("scwsim remove machine failed", "server", id, "err", err)
		}
	})
	return noContent()
}

func (s *Sim) listServerActions(r *http.Request) (*reply, error) {
	sv, err := s.serverByID(r)
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"actions": s.allowedActions(sv)})
}

type serverActionRequest struct {
	Action  string  `json:"action"`
	Name    *string `json:"name"`
	Volumes map[string]*struct {
		VolumeType string `json:"volume_type"`
	} `json:"volumes"`
}

func (s *Sim) serverAction(r *http.Request) (*reply, error) {
	sv, err := s.serverByID(r)
	if err != nil {
		return nil, err
	}
	var req serverActionRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Action == "" {
		req.Action = actPoweron
	}
	result := "/servers/" + sv.ID
	switch req.Action {
	case actBackup:
		imageID, err := s.backup(sv, req.Name, req.Volumes)
		if err != nil {
			return nil, err
		}
		result = "/images/" + imageID
	case actPoweron, actPoweroff, actStopInPlace, actReboot, actTerminate:
		if err := s.beginAction(sv, req.Action); err != nil {
			return nil, err
		}
	default:
		return nil, invalidArguments(argDetail{"action", "constraint", "unknown action " + req.Action})
	}
	return &reply{status: http.StatusAccepted,
		body: map[string]any{"task": s.newTask(sv.Zone, "/servers/"+sv.ID+"/action", result)}}, nil
}

// backup is the backup action: an image made of one snapshot per volume
// (instance snapshots for l_ssd, Block snapshots for sbs), reported
// available at once while the snapshots are still being taken.
func (s *Sim) backup(sv *server, name *string, only map[string]*struct {
	VolumeType string `json:"volume_type"`
}) (string, error) {
	if !slices.Contains(s.allowedActions(sv), actBackup) {
		return "", refuse(sv)
	}
	now := s.now()
	imgName := "image_" + sv.Name + "_" + now.UTC().Format("2006-01-02_15-04")
	if name != nil && *name != "" {
		imgName = *name
	}
	img := &image{owner: sv.owner, ID: s.newID(), Name: imgName, Zone: sv.Zone, Arch: sv.Arch,
		Extra: map[string]imageVolume{}, FromServer: sv.ID, Tags: []string{}, Created: now, Modified: now, Label: sv.Label}
	n := 0
	for _, v := range sv.Volumes {
		if only != nil {
			if _, listed := only[v.ID]; !listed {
				continue
			}
		}
		snapName := fmt.Sprintf("%s_snap_%d", imgName, n)
		var iv imageVolume
		switch v.Type {
		case volLSSD:
			vol := s.st.Volumes[v.ID]
			if vol == nil {
				continue
			}
			sn := &snapshot{owner: sv.owner, ID: s.newID(), Name: snapName, Zone: sv.Zone, VolumeType: volLSSD,
				Size: vol.Size, State: "snapshotting", BaseVolume: &ref{ID: vol.ID, Name: vol.Name},
				Tags: []string{}, Created: now, Modified: now, Label: vol.Label, Backup: true, Timer: newTimer(now)}
			s.st.Snapshots[sn.ID] = sn
			vol.State, vol.Modified = "snapshotting", now
			id := sn.ID
			s.copySnapshotLayer(id, vol.ID, func(err error) { s.snapshotCopied(id, err) })
			iv = imageVolume{ID: sn.ID, Name: snapName, VolumeType: volLSSD, Size: vol.Size}
		case volSBSVolume:
			bv := s.st.BlockVolumes[v.ID]
			if bv == nil {
				continue
			}
			bs := s.newBlockSnapshot(bv, snapName, sv.Project, nil)
			iv = imageVolume{ID: bs.ID, VolumeType: volSBSSnapshot}
		}
		if n == 0 {
			img.Root = iv
		} else {
			img.Extra[itoa(n)] = iv
		}
		n++
	}
	if n == 0 {
		return "", invalidArguments(argDetail{"volumes", "constraint", "no volume to back up"})
	}
	s.st.Images[img.ID] = img
	return img.ID, nil
}

func (s *Sim) listUserData(r *http.Request) (*reply, error) {
	sv, err := s.serverByID(r)
	if err != nil {
		return nil, err
	}
	keys := []string{}
	for k := range sv.UserData {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return ok(map[string]any{"user_data": keys})
}

func (s *Sim) getUserData(r *http.Request) (*reply, error) {
	sv, err := s.serverByID(r)
	if err != nil {
		return nil, err
	}
	v, found := sv.UserData[r.PathValue("key")]
	if !found {
		return nil, notFound("instance_user_data", r.PathValue("key"))
	}
	h := http.Header{}
	h.Set("Content-Type", "text/plain")
	return &reply{status: http.StatusOK, body: rawBody(v), header: h}, nil
}

func (s *Sim) setUserData(r *http.Request) (*reply, error) {
	sv, err := s.serverByID(r)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	if _, err := readAll(r, &b); err != nil {
		return nil, legacyInvalid("cannot read request body")
	}
	if sv.UserData == nil {
		sv.UserData = map[string]string{}
	}
	sv.UserData[r.PathValue("key")] = b.String()
	return noContent()
}

func (s *Sim) deleteUserData(r *http.Request) (*reply, error) {
	sv, err := s.serverByID(r)
	if err != nil {
		return nil, err
	}
	delete(sv.UserData, r.PathValue("key"))
	return noContent()
}

func (s *Sim) listPrivateNICs(r *http.Request) (*reply, error) {
	if _, err := s.serverByID(r); err != nil {
		return nil, err
	}
	page, h, err := instancePage(r, []any{})
	if err != nil {
		return nil, err
	}
	return &reply{status: http.StatusOK, body: map[string]any{"private_nics": page}, header: h}, nil
}

func (s *Sim) listPrivateNetworkInterfaces(r *http.Request) (*reply, error) {
	if _, err := s.zone(r); err != nil {
		return nil, err
	}
	return ok(map[string]any{"private_network_interfaces": []any{}, "total_count": 0})
}
