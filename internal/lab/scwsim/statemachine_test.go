package scwsim

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	block "github.com/scaleway/scaleway-sdk-go/api/block/v1"
	iam "github.com/scaleway/scaleway-sdk-go/api/iam/v1alpha1"
	"github.com/scaleway/scaleway-sdk-go/api/instance/v1"
	"github.com/scaleway/scaleway-sdk-go/scw"
)

var clockTimings = Timings{
	ServerStart: 10 * time.Second, ServerStop: 10 * time.Second, ServerTerminate: 5 * time.Second,
	ServerReboot: 10 * time.Second, Snapshot: 30 * time.Second, BlockSnapshot: 20 * time.Second,
	SGSync: time.Second, IPAttach: 2 * time.Second,
}

// newClockEnv is a test env on a manual clock.
func newClockEnv(t *testing.T, opts ...envOption) (*testEnv, *ManualClock) {
	clock := NewManualClock(time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC))
	env := newTestEnv(t, append([]envOption{func(c *Config) { c.Clock, c.Timings = clock, clockTimings }}, opts...)...)
	return env, clock
}

// settle lets background machine work finish, then moves the clock.
func settle(t *testing.T, env *testEnv, clock *ManualClock, d time.Duration) {
	t.Helper()
	if err := env.sim.WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(d)
}

func serverState(t *testing.T, api *instance.API, id string) (instance.ServerState, string, []instance.ServerAction) {
	t.Helper()
	s, err := api.GetServer(&instance.GetServerRequest{ServerID: id})
	if err != nil {
		t.Fatalf("get server %s: %v", id, err)
	}
	return s.Server.State, s.Server.StateDetail, s.Server.AllowedActions
}

func createDEV1S(t *testing.T, api *instance.API, name string) *instance.Server {
	t.Helper()
	s, err := api.CreateServer(&instance.CreateServerRequest{Name: name, CommercialType: "DEV1-S",
		Image: scw.StringPtr("debian_trixie"), DynamicIPRequired: scw.BoolPtr(false)})
	if err != nil {
		t.Fatalf("create server %s: %v", name, err)
	}
	return s.Server
}

func action(t *testing.T, api *instance.API, id string, a instance.ServerAction) error {
	t.Helper()
	_, err := api.ServerAction(&instance.ServerActionRequest{ServerID: id, Action: a})
	return err
}

func TestServerStateMachineFollowsActionsAndClock(t *testing.T) {
	env, clock := newClockEnv(t)
	api := instance.NewAPI(env.client)
	srv := createDEV1S(t, api, "sm")

	steps := []struct {
		do         func()
		state      instance.ServerState
		detail     string
		allowed    []instance.ServerAction
		locationOK bool
	}{
		{func() {
			if err := action(t, api, srv.ID, instance.ServerActionPoweron); err != nil {
				t.Fatal(err)
			}
		}, "starting", "allocating node", []instance.ServerAction{"stop_in_place", "backup"}, false},
		{func() { settle(t, env, clock, 4*time.Second) }, "starting", "provisioning node", nil, true},
		{func() { settle(t, env, clock, 6*time.Second) }, "running", "booting kernel",
			[]instance.ServerAction{"poweroff", "terminate", "reboot", "stop_in_place", "backup"}, true},
		{func() {
			if err := action(t, api, srv.ID, instance.ServerActionPoweroff); err != nil {
				t.Fatal(err)
			}
		}, "stopping", "stopping", nil, true},
		{func() { settle(t, env, clock, 5*time.Second) }, "stopping", "booted", nil, true},
		{func() { settle(t, env, clock, 5*time.Second) }, "stopped", "", []instance.ServerAction{"poweron", "backup"}, false},
	}
	for i, st := range steps {
		st.do()
		state, detail, allowed := serverState(t, api, srv.ID)
		if state != st.state || detail != st.detail || st.allowed != nil && !slices.Equal(allowed, st.allowed) {
			t.Fatalf("step %d: %s/%q %v, want %s/%q %v", i, state, detail, allowed, st.state, st.detail, st.allowed)
		}
		s, _ := api.GetServer(&instance.GetServerRequest{ServerID: srv.ID})
		if (s.Server.Location != nil) != st.locationOK {
			t.Errorf("step %d: location %+v, want present=%v", i, s.Server.Location, st.locationOK)
		}
	}
	if m, _ := env.fake.Machine(srv.ID); m.Running || m.Starts != 1 {
		t.Errorf("machine after poweroff: running %v, starts %d; want stopped after one start", m.Running, m.Starts)
	}

	var re *scw.ResponseError
	if err := action(t, api, srv.ID, instance.ServerActionTerminate); !errors.As(err, &re) || re.StatusCode != 400 {
		t.Errorf("terminate from stopped: %v, want 400 (terminate needs running)", err)
	}
	if err := action(t, api, srv.ID, instance.ServerActionPoweron); err != nil {
		t.Fatal(err)
	}
	settle(t, env, clock, 10*time.Second)
	if err := action(t, api, srv.ID, instance.ServerActionTerminate); err != nil {
		t.Fatal(err)
	}
	s, err := api.GetServer(&instance.GetServerRequest{ServerID: srv.ID})
	if err != nil {
		t.Fatal(err)
	}
	vol := s.Server.Volumes["0"]
	if s.Server.State != "stopping" || s.Server.StateDetail != "terminating" || vol.State == nil || *vol.State != "deleting" || len(s.Server.AllowedActions) != 0 {
		t.Fatalf("right after terminate: %s/%s volume %s actions %v; want stopping/terminating, volume deleting, no action",
			s.Server.State, s.Server.StateDetail, vol.State, s.Server.AllowedActions)
	}
	settle(t, env, clock, 5*time.Second)
	var nf *scw.ResourceNotFoundError
	if _, err := api.GetServer(&instance.GetServerRequest{ServerID: srv.ID}); !errors.As(err, &nf) {
		t.Errorf("server after terminate: %v, want 404", err)
	}
	if _, err := api.GetVolume(&instance.GetVolumeRequest{VolumeID: vol.ID}); !errors.As(err, &nf) {
		t.Errorf("l_ssd volume after terminate: %v, want 404", err)
	}
	if slices.Contains(env.fake.Layers(), vol.ID) {
		t.Errorf("layer of the terminated l_ssd volume %s still exists", vol.ID)
	}
}

func TestServerStaysStartingUntilItsMachineHasBooted(t *testing.T) {
	env, clock := newClockEnv(t)
	env.fake.StartDelay = 300 * time.Millisecond
	api := instance.NewAPI(env.client)
	srv := createDEV1S(t, api, "slow-boot")
	if err := action(t, api, srv.ID, instance.ServerActionPoweron); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if state, _, _ := serverState(t, api, srv.ID); state != "starting" {
		t.Fatalf("an hour later with the machine still booting: %s, want starting", state)
	}
	settle(t, env, clock, 0)
	if state, _, _ := serverState(t, api, srv.ID); state != "running" {
		t.Fatalf("once the machine booted: %s, want running", state)
	}
}

func TestServerWhoseMachineFailsToStartFallsBackToStopped(t *testing.T) {
	env, clock := newClockEnv(t)
	env.fake.StartErr = errors.New("nspawn exploded")
	api := instance.NewAPI(env.client)
	srv := createDEV1S(t, api, "broken")
	if err := action(t, api, srv.ID, instance.ServerActionPoweron); err != nil {
		t.Fatal(err)
	}
	settle(t, env, clock, 10*time.Second)
	state, detail, _ := serverState(t, api, srv.ID)
	if state != "stopped" || !strings.Contains(detail, "nspawn exploded") {
		t.Fatalf("after a failed boot: %s/%q, want stopped with the cause in state_detail", state, detail)
	}
}

func TestDeleteServerNeedsStoppedAndKeepsVolumesAndIPs(t *testing.T) {
	env, clock := newClockEnv(t)
	api := instance.NewAPI(env.client)
	ip, err := api.CreateIP(&instance.CreateIPRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := api.CreateServer(&instance.CreateServerRequest{Name: "del", CommercialType: "DEV1-S",
		Image: scw.StringPtr("debian_bookworm"), PublicIPs: &[]string{ip.IP.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if err := action(t, api, s.Server.ID, instance.ServerActionPoweron); err != nil {
		t.Fatal(err)
	}
	var re *scw.ResponseError
	if err := api.DeleteServer(&instance.DeleteServerRequest{ServerID: s.Server.ID}); !errors.As(err, &re) || re.StatusCode != 400 {
		t.Fatalf("delete a starting server: %v, want 400", err)
	}
	settle(t, env, clock, 10*time.Second)
	if err := action(t, api, s.Server.ID, instance.ServerActionPoweroff); err != nil {
		t.Fatal(err)
	}
	settle(t, env, clock, 10*time.Second)
	if err := api.DeleteServer(&instance.DeleteServerRequest{ServerID: s.Server.ID}); err != nil {
		t.Fatalf("delete the stopped server: %v", err)
	}
	vol, err := api.GetVolume(&instance.GetVolumeRequest{VolumeID: s.Server.Volumes["0"].ID})
	if err != nil || vol.Volume.Server != nil {
		t.Fatalf("root volume after DELETE /servers: %+v, %v; want kept and detached", vol, err)
	}
	got, err := api.GetIP(&instance.GetIPRequest{IP: ip.IP.ID})
	if err != nil || got.IP.Server != nil {
		t.Fatalf("ip after DELETE /servers: %+v, %v; want kept and detached", got, err)
	}
	if err := api.DeleteVolume(&instance.DeleteVolumeRequest{VolumeID: vol.Volume.ID}); err != nil {
		t.Fatalf("delete the left-over volume: %v", err)
	}
	settle(t, env, clock, 0)
	if slices.Contains(env.fake.Layers(), vol.Volume.ID) {
		t.Error("layer of the deleted volume still exists")
	}
}

func TestSecurityGroupChangesReachRunningMachines(t *testing.T) {
	env, clock := newClockEnv(t)
	api := instance.NewAPI(env.client)
	sg, err := api.CreateSecurityGroup(&instance.CreateSecurityGroupRequest{Name: "fw", Stateful: true,
		InboundDefaultPolicy: "drop", OutboundDefaultPolicy: "accept", EnableDefaultSecurity: scw.BoolPtr(false)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := api.CreateServer(&instance.CreateServerRequest{Name: "fw", CommercialType: "DEV1-S",
		Image: scw.StringPtr("debian_trixie"), SecurityGroup: &sg.SecurityGroup.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := action(t, api, s.Server.ID, instance.ServerActionPoweron); err != nil {
		t.Fatal(err)
	}
	settle(t, env, clock, 10*time.Second)
	if _, err := api.SetSecurityGroupRules(&instance.SetSecurityGroupRulesRequest{SecurityGroupID: sg.SecurityGroup.ID,
		Rules: hardenedRules()[:1]}); err != nil {
		t.Fatal(err)
	}
	got, err := api.GetSecurityGroup(&instance.GetSecurityGroupRequest{SecurityGroupID: sg.SecurityGroup.ID})
	if err != nil || got.SecurityGroup.State != "syncing" || len(got.SecurityGroup.Servers) != 1 {
		t.Fatalf("group right after PUT rules: %+v, %v; want syncing with its server listed", got, err)
	}
	settle(t, env, clock, time.Second)
	got, _ = api.GetSecurityGroup(&instance.GetSecurityGroupRequest{SecurityGroupID: sg.SecurityGroup.ID})
	if got.SecurityGroup.State != "available" {
		t.Errorf("group a second later: %s, want available", got.SecurityGroup.State)
	}
	m, _ := env.fake.Machine(s.Server.ID)
	if len(m.Firewall.Rules) != 1 || m.Firewall.Rules[0].PortFrom != 22 || m.Firewall.InboundDefault != Drop {
		t.Fatalf("machine firewall after PUT rules: %+v, want the single TCP 22 rule, inbound drop", m.Firewall)
	}
	if _, err := api.UpdateSecurityGroup(&instance.UpdateSecurityGroupRequest{SecurityGroupID: sg.SecurityGroup.ID,
		EnableDefaultSecurity: scw.BoolPtr(true)}); err != nil {
		t.Fatal(err)
	}
	settle(t, env, clock, 0)
	m, _ = env.fake.Machine(s.Server.ID)
	if len(m.Firewall.Rules) != 7 || m.Firewall.Rules[0].PortFrom != 25 || m.Firewall.Rules[0].Action != Drop {
		t.Fatalf("machine firewall with enable_default_security: %+v, want the 6 SMTP drops first", m.Firewall.Rules)
	}
	var re *scw.ResponseError
	if err := api.DeleteSecurityGroup(&instance.DeleteSecurityGroupRequest{SecurityGroupID: sg.SecurityGroup.ID}); !errors.As(err, &re) ||
		re.StatusCode != 409 {
		t.Errorf("delete a group in use: %v, want 409", err)
	}
}

func TestBackupOfAnSBSServerUsesBlockSnapshotsAndClones(t *testing.T) {
	env, clock := newClockEnv(t)
	api := instance.NewAPI(env.client)
	s, err := api.CreateServer(&instance.CreateServerRequest{Name: "sbs", CommercialType: "PLAY2-PICO",
		Image: scw.StringPtr("debian_trixie")})
	if err != nil {
		t.Fatal(err)
	}
	root := s.Server.Volumes["0"].ID
	settle(t, env, clock, 0)
	if err := env.fake.WriteFile(root, "/etc/marker", "sbs"); err != nil {
		t.Fatal(err)
	}
	task, err := api.ServerAction(&instance.ServerActionRequest{ServerID: s.Server.ID, Action: instance.ServerActionBackup})
	if err != nil {
		t.Fatal(err)
	}
	img, err := api.GetImage(&instance.GetImageRequest{ImageID: strings.TrimPrefix(task.Task.HrefResult, "/images/")})
	if err != nil {
		t.Fatal(err)
	}
	if img.Image.RootVolume.VolumeType != "sbs_snapshot" || !strings.HasPrefix(img.Image.Name, "image_sbs_2026-08-01_10-00") {
		t.Fatalf("backup image: %+v root %+v; want an sbs_snapshot root, named image_<server>_<date>", img.Image, img.Image.RootVolume)
	}
	bapi := block.NewAPI(env.client)
	snap, err := bapi.GetSnapshot(&block.GetSnapshotRequest{SnapshotID: img.Image.RootVolume.ID})
	if err != nil || snap.Status != block.SnapshotStatusCreating {
		t.Fatalf("block snapshot of the backup: %+v, %v; want creating", snap, err)
	}
	settle(t, env, clock, 20*time.Second)
	if snap, _ = bapi.GetSnapshot(&block.GetSnapshotRequest{SnapshotID: img.Image.RootVolume.ID}); snap.Status != block.SnapshotStatusAvailable {
		t.Fatalf("block snapshot 20s later: %s, want available", snap.Status)
	}
	clone, err := api.CreateServer(&instance.CreateServerRequest{Name: "sbs-clone", CommercialType: "PLAY2-PICO", Image: &img.Image.ID})
	if err != nil {
		t.Fatal(err)
	}
	settle(t, env, clock, 0)
	if got, _ := env.fake.ReadFile(clone.Server.Volumes["0"].ID, "/etc/marker"); got != "sbs" {
		t.Errorf("clone's root layer: marker %q, want the file of the backed-up volume", got)
	}
}

func TestStateFileKeepsResourcesAndRebootsRunningServers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "scw.json")
	fake := NewFakeMachines()
	first := newTestEnv(t, func(c *Config) { c.StateFile, c.Machines = file, fake })
	api := instance.NewAPI(first.client)
	srv := createDEV1S(t, api, "persisted")
	if err := api.ServerActionAndWait(&instance.ServerActionAndWaitRequest{ServerID: srv.ID, Action: instance.ServerActionPoweron,
		RetryInterval: &fastPoll}); err != nil {
		t.Fatal(err)
	}
	_, pub := newTestSSHKey(t)
	key, err := iam.NewAPI(first.client).CreateSSHKey(&iam.CreateSSHKeyRequest{Name: "k", PublicKey: pub, ProjectID: testProject})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := first.sim.Close(ctx); err != nil {
		t.Fatal(err)
	}

	second := newTestEnv(t, func(c *Config) { c.StateFile, c.Machines = file, fake })
	api = instance.NewAPI(second.client)
	got, err := api.WaitForServer(&instance.WaitForServerRequest{ServerID: srv.ID, RetryInterval: &fastPoll})
	if err != nil || got.State != instance.ServerStateRunning {
		t.Fatalf("server after a restart: %v, %v; want running again", got, err)
	}
	if m, _ := fake.Machine(srv.ID); m.Starts != 2 {
		t.Errorf("machine starts = %d, want 2 (booted again after the restart)", m.Starts)
	}
	if _, err := iam.NewAPI(second.client).GetSSHKey(&iam.GetSSHKeyRequest{SSHKeyID: key.ID}); err != nil {
		t.Errorf("ssh key after a restart: %v", err)
	}
	sgs, err := api.ListSecurityGroups(&instance.ListSecurityGroupsRequest{Name: scw.StringPtr("Default security group")})
	if err != nil || len(sgs.SecurityGroups) != 1 {
		t.Errorf("default security groups after a restart: %d (%v), want still 1", len(sgs.SecurityGroups), err)
	}
}

func TestAdminEndpointsDriveFaultsAndShowCalls(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.AdminToken = "admin-secret" })
	do := func(method, path, body string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest(method, env.url+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	admin := map[string]string{"X-Scwsim-Admin-Token": "admin-secret"}
	api := map[string]string{"X-Auth-Token": testSecretKey}
	if resp := do("PUT", "/_scwsim/faults", `{"rate_limit":{"count":1}}`, nil); resp.StatusCode != 401 {
		t.Errorf("admin call without its token: %d, want 401", resp.StatusCode)
	}
	if resp := do("PUT", "/_scwsim/faults", `{"rate_limit":{"count":1,"match":{"path_contains":"/ips"}},"latency":{"delay":"1ms"}}`, admin); resp.StatusCode != 200 {
		t.Fatalf("set faults: %d", resp.StatusCode)
	}
	resp := do("GET", "/instance/v1/zones/fr-par-1/ips", "", api)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 429 || len(body) != 0 || resp.Header.Get("X-Envoy-Ratelimited") != "true" || resp.Header.Get("Content-Type") != "" {
		t.Errorf("rate-limited call: %d %q headers %v; want 429, empty body, X-Envoy-Ratelimited, no Content-Type",
			resp.StatusCode, body, resp.Header)
	}
	if resp := do("GET", "/instance/v1/zones/fr-par-1/ips", "", api); resp.StatusCode != 200 {
		t.Errorf("call after the burst: %d, want 200", resp.StatusCode)
	}
	resp = do("GET", "/_scwsim/calls", "", admin)
	body, _ = io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `"fault":"rate_limit"`) || strings.Contains(string(body), "/_scwsim/") {
		t.Errorf("call log %s: want the rate-limited call and no admin call", body)
	}
	if resp := do("GET", "/instance/v1/zones/fr-par-1/servers/x/attach-volume", "", api); resp.StatusCode != 501 {
		t.Errorf("unimplemented endpoint: %d, want 501 (never a 404 read as 'does not exist')", resp.StatusCode)
	}
}

func TestMetadataAnswersWithoutAuthentication(t *testing.T) {
	sim, err := New(Config{SecretKeys: []string{testSecretKey}, Projects: []Project{{ID: testProject}}})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	sim.ServeHTTP(w, httptest.NewRequest("GET", "/metadata", nil))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"partition":"scw"`) {
		t.Errorf("GET /metadata: %d %s", w.Code, w.Body)
	}
}
