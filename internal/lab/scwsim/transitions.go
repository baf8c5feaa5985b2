package scwsim

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// machineTimeout bounds one machine operation (a Debian boot takes seconds,
// a layer copy of a used disk can take a minute).
const machineTimeout = 15 * time.Minute

func (s *Sim) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, machineTimeout)
}

// allowedActions are the actions the real API lists per state (2026
// recordings): none at all while a backup snapshots an l_ssd volume or
// terminate deletes it.
func (s *Sim) allowedActions(sv *server) []string {
	busy := false
	for _, v := range sv.Volumes {
		if vol := s.st.Volumes[v.ID]; v.Type == volLSSD && vol != nil && vol.State != "available" {
			busy = true
		}
	}
	if busy && (sv.State == stRunning || sv.State == stStopping) {
		return []string{}
	}
	switch sv.State {
	case stStopped:
		return []string{actPoweron, actBackup}
	case stStarting, stStopping:
		return []string{actStopInPlace, actBackup}
	case stRunning:
		return []string{actPoweroff, actTerminate, actReboot, actStopInPlace, actBackup}
	case stStoppedInPlace:
		return []string{actPoweron, actPoweroff, actTerminate, actReboot, actBackup}
	}
	return []string{}
}

// refuse explains why action is not allowed now, in the legacy wording.
func refuse(sv *server) error {
	switch sv.State {
	case stStopped:
		return legacyInvalid("server should be running")
	case stRunning:
		return legacyInvalid("server should be stopped")
	}
	return legacyInvalid("server is being stopped or rebooted")
}

// beginAction flips the server to its transient state synchronously (the
// SDK's waiters poll right after the 202) and queues the machine work.
func (s *Sim) beginAction(sv *server, action string) error {
	if action == actBackup {
		return fmt.Errorf("begin action %s on %s: backup is not a state transition", action, sv.ID)
	}
	if !slices.Contains(s.allowedActions(sv), action) {
		return refuse(sv)
	}
	now := s.now()
	op := &serverOp{Action: action, Timer: newTimer(now)}
	sv.Op, sv.Modified = op, now
	switch action {
	case actPoweron:
		sv.State, sv.StateDetail = stStarting, "allocating node"
		if err := s.ensureDynamicIP(sv); err != nil {
			sv.State, sv.StateDetail, sv.Op = stStopped, "", nil
			return err
		}
		spec := s.machineSpec(sv)
		sv.MachineUp = true
		layers := s.work.barrier(layersLane)
		s.work.enqueue(serverLane(sv.ID), func() {
			<-layers
			ctx, cancel := s.opCtx()
			defer cancel()
			err := s.machines.Start(ctx, spec)
			s.finishOp(op, err)
		})
	case actPoweroff, actStopInPlace:
		sv.State, sv.StateDetail = stStopping, "stopping"
		if action == actStopInPlace {
			sv.StateDetail = "stopping in place"
		}
		sv.MachineUp = false
		s.work.enqueue(serverLane(sv.ID), func() {
			ctx, cancel := s.opCtx()
			defer cancel()
			s.finishOp(op, s.machines.Stop(ctx, sv.ID))
		})
	case actReboot:
		sv.State, sv.StateDetail = stStopping, "rebooting"
		spec := s.machineSpec(sv)
		s.work.enqueue(serverLane(sv.ID), func() {
			ctx, cancel := s.opCtx()
			defer cancel()
			err := s.machines.Stop(ctx, sv.ID)
			if err == nil {
				err = s.machines.Start(ctx, spec)
			}
			s.finishOp(op, err)
		})
	case actTerminate:
		sv.State, sv.StateDetail = stStopping, "terminating"
		sv.MachineUp = false
		var layers []string
		for _, v := range sv.Volumes {
			if vol := s.st.Volumes[v.ID]; v.Type == volLSSD && vol != nil {
				vol.State, vol.Modified = "deleting", now
				layers = append(layers, v.ID)
			}
		}
		id := sv.ID
		s.work.enqueue(serverLane(id), func() {
			ctx, cancel := s.opCtx()
			defer cancel()
			err := s.machines.Remove(ctx, id)
			if err == nil {
				err = s.deleteLayersAndWait(ctx, layers)
			}
			s.finishOp(op, err)
		})
	default:
		return invalidArguments(argDetail{"action", "constraint", "unknown action " + action})
	}
	return nil
}

// finishOp records the end of the machine work of op.
func (s *Sim) finishOp(op *serverOp, err error) {
	s.locked(func() {
		op.Done = true
		if err != nil {
			op.Err = err.Error()
			s.cfg.Log.Error("scwsim machine operation failed", "action", op.Action, "err", err)
		}
	})
}

// deleteLayersAndWait deletes layers on the layers lane and waits for it.
func (s *Sim) deleteLayersAndWait(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	errc := make(chan error, 1)
	s.work.enqueue(layersLane, func() {
		var first error
		for _, id := range ids {
			if err := s.machines.DeleteLayer(ctx, id); err != nil && first == nil {
				first = err
			}
		}
		errc <- first
	})
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// createLayer queues the creation of a layer; later layer jobs and server
// starts (through a barrier) see it done.
func (s *Sim) createLayer(id string, src LayerSource, done func(error)) {
	s.work.enqueue(layersLane, func() {
		ctx, cancel := s.opCtx()
		defer cancel()
		err := s.machines.CreateLayer(ctx, id, src)
		if err != nil {
			s.cfg.Log.Error("scwsim create layer failed", "layer", id, "err", err)
		}
		if done != nil {
			done(err)
		}
	})
}

func (s *Sim) deleteLayer(id string) {
	s.work.enqueue(layersLane, func() {
		ctx, cancel := s.opCtx()
		defer cancel()
		if err := s.machines.DeleteLayer(ctx, id); err != nil {
			s.cfg.Log.Error("scwsim delete layer failed", "layer", id, "err", err)
		}
	})
}

func (s *Sim) releaseAddress(p netip.Prefix) {
	s.work.enqueue(layersLane, func() {
		ctx, cancel := s.opCtx()
		defer cancel()
		if err := s.machines.ReleaseAddress(ctx, p); err != nil {
			s.cfg.Log.Error("scwsim release address failed", "prefix", p, "err", err)
		}
	})
}

// ensureDynamicIP gives a server that requires a dynamic IPv4 and has no
// flexible one its dynamic address (allocated at power-on, as Scaleway does).
func (s *Sim) ensureDynamicIP(sv *server) error {
	if !sv.DynamicIPRequired || sv.DynamicIP.IsValid() {
		return nil
	}
	for _, id := range sv.IPs {
		if ip := s.st.IPs[id]; ip != nil && ip.Type == ipTypeV4 {
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	a, err := s.machines.AllocateIPv4(ctx)
	if err != nil {
		return fmt.Errorf("allocate dynamic ipv4 for server %s: %w", sv.ID, err)
	}
	sv.DynamicIP, sv.DynamicIPSince = a, s.now()
	return nil
}

func (s *Sim) dropDynamicIP(sv *server) {
	if sv.DynamicIP.IsValid() {
		s.releaseAddress(netip.PrefixFrom(sv.DynamicIP, 32))
		sv.DynamicIP = netip.Addr{}
	}
}

// machineSpec describes the host a server boots as now.
func (s *Sim) machineSpec(sv *server) MachineSpec {
	spec := MachineSpec{ID: sv.ID, Hostname: hostname(sv.Name), Image: sv.Label, MAC: sv.MAC}
	for _, v := range sv.Volumes {
		spec.Layers = append(spec.Layers, v.ID)
	}
	for _, id := range sv.IPs {
		ip := s.st.IPs[id]
		switch {
		case ip == nil:
		case ip.Type == ipTypeV4 && !spec.IPv4.IsValid():
			spec.IPv4 = ip.Address
		case ip.Type == ipTypeV6 && !spec.IPv6Prefix.IsValid():
			spec.IPv6Prefix = ip.Prefix
			spec.IPv6 = slaacAddress(ip.Prefix, sv.MAC)
		}
	}
	if !spec.IPv4.IsValid() {
		spec.IPv4 = sv.DynamicIP
	}
	keys := s.projectKeys(sv.Project)
	for _, k := range keys {
		spec.AuthorizedKeys = append(spec.AuthorizedKeys, k.PublicKey+" "+k.Name)
	}
	if g := s.st.SecurityGroups[sv.SecurityGroup]; g != nil {
		spec.Firewall = firewallOf(g)
	}
	return spec
}

func (s *Sim) projectKeys(project string) []*sshKey {
	var keys []*sshKey
	for _, k := range s.st.SSHKeys {
		if k.Project == project && !k.Disabled {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b *sshKey) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return keys
}

// firewallOf turns a security group into the policy its servers enforce.
func firewallOf(g *securityGroup) Firewall {
	fw := Firewall{InboundDefault: Action(g.Inbound), OutboundDefault: Action(g.Outbound), Stateful: g.Stateful}
	var rules []sgRule
	if g.EnableDefaultSecurity {
		rules = smtpRules()
	}
	rules = append(rules, g.Rules...)
	for _, r := range rules {
		p, err := parsePrefix(r.IPRange)
		if err != nil {
			continue
		}
		fr := FirewallRule{Direction: r.Direction, Action: Action(r.Action), Protocol: r.Protocol, IPRange: p}
		if r.PortFrom != nil {
			fr.PortFrom = uint16(*r.PortFrom)
			fr.PortTo = fr.PortFrom
			if r.PortTo != nil {
				fr.PortTo = uint16(*r.PortTo)
			}
		}
		fw.Rules = append(fw.Rules, fr)
	}
	return fw
}

// parsePrefix accepts a CIDR or a bare address (a host prefix).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// pushFirewall sends the group's current policy to every started machine
// using it.
func (s *Sim) pushFirewall(g *securityGroup) {
	fw := firewallOf(g)
	for _, sv := range s.sortedServers() {
		if sv.SecurityGroup != g.ID || !sv.MachineUp {
			continue
		}
		id := sv.ID
		s.work.enqueue(serverLane(id), func() {
			ctx, cancel := s.opCtx()
			defer cancel()
			if err := s.machines.SetFirewall(ctx, id, fw); err != nil {
				s.cfg.Log.Error("scwsim set firewall failed", "server", id, "err", err)
			}
		})
	}
}

// advanceLocked applies every transition whose time has come.
func (s *Sim) advanceLocked() {
	now := s.now()
	for _, sv := range s.sortedServers() {
		if sv.Op != nil {
			s.advanceServer(sv, now)
		}
	}
	for _, sn := range ordered(s.st.Snapshots) {
		if sn.State != "snapshotting" {
			continue
		}
		names := []string{sn.ID, sn.Name}
		if sn.BaseVolume != nil {
			names = append(names, sn.BaseVolume.ID)
		}
		if el := sn.Timer.tick(now, s.stuck("snapshot", names, sn.State)); el < s.cfg.Timings.Snapshot || !sn.CopyDone {
			continue
		}
		sn.State, sn.Modified = "available", now
		if sn.Err != "" {
			sn.State = "error"
		}
		if sn.Backup && sn.BaseVolume != nil {
			s.settleBackupVolume(sn.BaseVolume.ID, now)
		}
	}
	for _, bs := range ordered(s.st.BlockSnapshots) {
		if bs.Status != "creating" {
			continue
		}
		frozen := s.stuck("snapshot", []string{bs.ID, bs.Name, bs.Parent.ID}, bs.Status)
		if el := bs.Timer.tick(now, frozen); el < s.cfg.Timings.BlockSnapshot || !bs.CopyDone {
			continue
		}
		bs.Status, bs.Updated = "available", now
		if bs.Err != "" {
			bs.Status = "error"
		}
	}
	for _, g := range ordered(s.st.SecurityGroups) {
		if g.SyncUntil.IsZero() {
			continue
		}
		if s.stuck("security_group", []string{g.ID, g.Name}, "syncing") {
			g.SyncUntil = g.SyncUntil.Add(now.Sub(g.SyncSeen))
		}
		g.SyncSeen = now
		if !now.Before(g.SyncUntil) {
			g.SyncUntil = time.Time{}
		}
	}
	for _, ip := range s.st.IPs {
		if ip.State == "pending" && !now.Before(ip.PendingUntil) {
			ip.State = "attached"
		}
	}
}

// settleBackupVolume makes a volume available again once no backup
// snapshot of it is still being taken.
func (s *Sim) settleBackupVolume(volID string, now time.Time) {
	for _, o := range s.st.Snapshots {
		if o.Backup && o.State == "snapshotting" && o.BaseVolume != nil && o.BaseVolume.ID == volID {
			return
		}
	}
	if vol := s.st.Volumes[volID]; vol != nil && vol.State == "snapshotting" {
		vol.State, vol.Modified = "available", now
	}
}

func (s *Sim) advanceServer(sv *server, now time.Time) {
	op, t := sv.Op, s.cfg.Timings
	el := op.Timer.tick(now, s.stuck("server", s.serverNames(sv), sv.State))
	settled := func(min time.Duration, _ string) bool { return el >= min && op.Done }
	switch op.Action {
	case actPoweron:
		if el >= t.ServerStart/3 {
			// The node is chosen: the location appears with this detail.
			sv.StateDetail = "provisioning node"
			s.placeServer(sv)
		}
		if !settled(t.ServerStart, stStarting) {
			return
		}
		if op.Err != "" {
			sv.State, sv.StateDetail, sv.Op, sv.MachineUp = stStopped, "machine start failed: "+op.Err, nil, false
			return
		}
		s.toRunning(sv, now)
	case actReboot:
		if el >= t.ServerReboot/2 {
			sv.State = stStarting
		}
		if !settled(t.ServerReboot, stStarting) {
			return
		}
		if op.Err != "" {
			sv.State, sv.StateDetail, sv.Op, sv.MachineUp = stStopped, "machine reboot failed: "+op.Err, nil, false
			return
		}
		s.toRunning(sv, now)
	case actPoweroff, actStopInPlace:
		if op.Action == actPoweroff && el >= t.ServerStop/2 {
			sv.StateDetail = "booted"
		}
		if !settled(t.ServerStop, stStopping) {
			return
		}
		sv.State, sv.StateDetail = stStopped, ""
		if op.Action == actStopInPlace {
			sv.State, sv.StateDetail = stStoppedInPlace, "stopped in place"
		}
		sv.Op, sv.Location, sv.Modified = nil, nil, now
		if op.Action == actPoweroff {
			s.dropDynamicIP(sv)
		}
	case actTerminate:
		if settled(t.ServerTerminate, stStopping) {
			s.finishTerminate(sv, now)
		}
	}
}

// serverNames are what a StuckFault may name a server by: id, name and
// volume ids.
func (s *Sim) serverNames(sv *server) []string {
	names := []string{sv.ID, sv.Name}
	for _, v := range sv.Volumes {
		names = append(names, v.ID)
	}
	return names
}

func (s *Sim) toRunning(sv *server, now time.Time) {
	sv.State, sv.StateDetail, sv.Op, sv.Modified = stRunning, "booting kernel", nil, now
	s.placeServer(sv)
}

// placeServer gives a starting server its (made-up) hypervisor location.
func (s *Sim) placeServer(sv *server) {
	if sv.Location == nil {
		n := s.rng.IntN(900)
		sv.Location = &location{ZoneID: sv.Zone, PlatformID: "14", ClusterID: itoa(30 + n%30),
			HypervisorID: itoa(100 + n), NodeID: itoa(1 + n%64)}
	}
}

// finishTerminate removes a terminated server: its l_ssd volumes go with
// it, sbs volumes and flexible IPs are only detached.
func (s *Sim) finishTerminate(sv *server, now time.Time) {
	for _, v := range sv.Volumes {
		switch v.Type {
		case volLSSD:
			delete(s.st.Volumes, v.ID)
		case volSBSVolume:
			s.detachBlockVolume(v.ID, now)
		}
	}
	s.detachServer(sv)
	s.dropDynamicIP(sv)
	delete(s.st.Servers, sv.ID)
}

// detachServer detaches the server's flexible IPs.
func (s *Sim) detachServer(sv *server) {
	for _, id := range sv.IPs {
		if ip := s.st.IPs[id]; ip != nil {
			ip.Server, ip.State = "", "detached"
		}
	}
	sv.IPs = nil
}

func (s *Sim) detachBlockVolume(id string, now time.Time) {
	if bv := s.st.BlockVolumes[id]; bv != nil {
		bv.Server, bv.RefID, bv.Status, bv.Updated = "", "", "available", now
		t := now
		bv.LastDetached = &t
	}
}

// resumeLocked settles what a restart interrupted: servers that were up boot
// again, transitions in flight complete, unfinished copies are redone.
func (s *Sim) resumeLocked() {
	now := s.now()
	for _, sv := range s.sortedServers() {
		if sv.Op != nil && sv.Op.Action == actTerminate {
			sv.Op.Done = false
			s.beginResumeTerminate(sv)
			continue
		}
		up := sv.MachineUp || sv.State == stRunning || sv.State == stStarting
		sv.Op = nil
		switch {
		case up:
			sv.State = stStopped
			if err := s.beginAction(sv, actPoweron); err != nil {
				s.cfg.Log.Error("scwsim resume server", "server", sv.ID, "err", err)
			}
		case sv.State == stStopping:
			sv.State, sv.StateDetail = stStopped, ""
		}
	}
	for _, sn := range s.st.Snapshots {
		if sn.State == "snapshotting" && !sn.CopyDone && sn.BaseVolume != nil {
			sn.Timer = newTimer(now)
			s.copySnapshotLayer(sn.ID, sn.BaseVolume.ID, func(err error) { s.snapshotCopied(sn.ID, err) })
		}
	}
	for _, bs := range s.st.BlockSnapshots {
		if bs.Status == "creating" && !bs.CopyDone {
			bs.Timer = newTimer(now)
			s.copySnapshotLayer(bs.ID, bs.Parent.ID, func(err error) { s.blockSnapshotCopied(bs.ID, err) })
		}
	}
}

func (s *Sim) beginResumeTerminate(sv *server) {
	op := sv.Op
	op.Timer = newTimer(s.now())
	var layers []string
	for _, v := range sv.Volumes {
		if v.Type == volLSSD {
			layers = append(layers, v.ID)
		}
	}
	id := sv.ID
	s.work.enqueue(serverLane(id), func() {
		ctx, cancel := s.opCtx()
		defer cancel()
		err := s.machines.Remove(ctx, id)
		if err == nil {
			err = s.deleteLayersAndWait(ctx, layers)
		}
		s.finishOp(op, err)
	})
}

// copySnapshotLayer queues "snapshot layer = copy of volume layer".
func (s *Sim) copySnapshotLayer(snapID, volID string, done func(error)) {
	s.work.enqueue(layersLane, func() {
		ctx, cancel := s.opCtx()
		defer cancel()
		_ = s.machines.DeleteLayer(ctx, snapID)
		done(s.machines.CreateLayer(ctx, snapID, LayerSource{From: volID}))
	})
}

func (s *Sim) snapshotCopied(id string, err error) {
	s.locked(func() {
		if sn := s.st.Snapshots[id]; sn != nil {
			sn.CopyDone = true
			if err != nil {
				sn.Err = err.Error()
				s.cfg.Log.Error("scwsim snapshot copy failed", "snapshot", id, "err", err)
			}
		}
	})
}

func (s *Sim) blockSnapshotCopied(id string, err error) {
	s.locked(func() {
		if bs := s.st.BlockSnapshots[id]; bs != nil {
			bs.CopyDone = true
			if err != nil {
				bs.Err = err.Error()
				s.cfg.Log.Error("scwsim block snapshot copy failed", "snapshot", id, "err", err)
			}
		}
	})
}
