package scwsim

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	block "github.com/scaleway/scaleway-sdk-go/api/block/v1"
	iam "github.com/scaleway/scaleway-sdk-go/api/iam/v1alpha1"
	"github.com/scaleway/scaleway-sdk-go/api/instance/v1"
	"github.com/scaleway/scaleway-sdk-go/api/marketplace/v2"
	"github.com/scaleway/scaleway-sdk-go/scw"
	"golang.org/x/crypto/ssh"
)

// hardenedRules is lghsctl's security group: SSH, HTTP(S) over TCP and UDP,
// ICMP, for IPv4 and IPv6.
func hardenedRules() []*instance.SetSecurityGroupRulesRequestRule {
	var rules []*instance.SetSecurityGroupRulesRequestRule
	port := func(p uint32) *uint32 { return &p }
	zone := scw.ZoneFrPar1
	for _, rng := range []string{"0.0.0.0/0", "::/0"} {
		ipnet := scw.IPNet{IPNet: mustCIDR(rng)}
		add := func(proto instance.SecurityGroupRuleProtocol, p *uint32) {
			rules = append(rules, &instance.SetSecurityGroupRulesRequestRule{
				Action: instance.SecurityGroupRuleActionAccept, Protocol: proto,
				Direction: instance.SecurityGroupRuleDirectionInbound, IPRange: ipnet, DestPortFrom: p, Zone: &zone,
			})
		}
		add(instance.SecurityGroupRuleProtocolTCP, port(22))
		for _, p := range []uint32{80, 443} {
			add(instance.SecurityGroupRuleProtocolTCP, port(p))
			add(instance.SecurityGroupRuleProtocolUDP, port(p))
		}
		add(instance.SecurityGroupRuleProtocolICMP, nil)
	}
	return rules
}

func mustCIDR(s string) net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return *n
}

// provisioned is what the lghsctl-like flow built.
type provisioned struct {
	api      *instance.API
	key      string
	signer   ssh.Signer
	sg       *instance.SecurityGroup
	ipv4     *instance.IP
	ipv6     *instance.IP
	server   *instance.Server
	imageID  string
	clone    *instance.Server
	rootSnap string
}

// flowHooks let the end-to-end test act on the real hosts.
type flowHooks struct {
	// afterBoot runs once the first server is running (write the marker).
	afterBoot func(t *testing.T, p *provisioned)
	// checkClone runs once the clone is running (find the marker).
	checkClone func(t *testing.T, p *provisioned)
}

// runFlow does what `lghsctl up` does with the unchanged SDK, then backs up,
// clones and terminates, checking the API's answers at each step.
func runFlow(t *testing.T, env *testEnv, label string, waitTimeout time.Duration, hooks flowHooks) *provisioned {
	t.Helper()
	api := instance.NewAPI(env.client)
	p := &provisioned{api: api}
	poll := &fastPoll
	timeout := &waitTimeout

	// Image lookup by label, as CreateServer does for a non-UUID image.
	li, err := marketplace.NewAPI(env.client).GetLocalImageByLabel(&marketplace.GetLocalImageByLabelRequest{
		ImageLabel: label, Zone: scw.ZoneFrPar1, CommercialType: "DEV1-M", Type: marketplace.LocalImageTypeInstanceLocal,
	})
	if err != nil {
		t.Fatalf("resolve %s for DEV1-M: %v", label, err)
	}
	if li.Label != label || li.Type != marketplace.LocalImageTypeInstanceLocal || !li.IsCompatible("DEV1-M") {
		t.Fatalf("local image for %s = %+v, want an instance_local image compatible with DEV1-M", label, li)
	}

	// The server type, as the SDK merges it from every page of products.
	st, err := api.GetServerType(&instance.GetServerTypeRequest{Zone: scw.ZoneFrPar1, Name: "DEV1-M"})
	if err != nil || st.VolumesConstraint.MaxSize != 40*scw.GB || st.Ncpus != 3 || len(st.Capabilities.BootTypes) != 2 {
		t.Fatalf("DEV1-M server type: %+v, %v; want 3 CPUs, 40 GB of local storage, local and rescue boot", st, err)
	}

	// IAM key, ensured idempotently (list, create when missing).
	iamAPI := iam.NewAPI(env.client)
	signer, pub := newTestSSHKey(t)
	p.key, p.signer = pub, signer
	for range 2 {
		keys, err := iamAPI.ListSSHKeys(&iam.ListSSHKeysRequest{ProjectID: scw.StringPtr(testProject)}, scw.WithAllPages())
		if err != nil {
			t.Fatalf("list ssh keys: %v", err)
		}
		if !slices.ContainsFunc(keys.SSHKeys, func(k *iam.SSHKey) bool { return strings.HasPrefix(pub, k.PublicKey) }) {
			if _, err := iamAPI.CreateSSHKey(&iam.CreateSSHKeyRequest{Name: "lghs-admin", PublicKey: pub, ProjectID: testProject}); err != nil {
				t.Fatalf("create ssh key: %v", err)
			}
		}
	}
	keys, err := iamAPI.ListSSHKeys(&iam.ListSSHKeysRequest{ProjectID: scw.StringPtr(testProject)})
	if err != nil || keys.TotalCount != 1 {
		t.Fatalf("ssh keys after ensuring twice: %d keys, err %v; want exactly 1", keys.TotalCount, err)
	}

	// Security group "hardened-conf".
	sg, err := api.CreateSecurityGroup(&instance.CreateSecurityGroupRequest{
		Name: "hardened-conf", Stateful: true, InboundDefaultPolicy: instance.SecurityGroupPolicyDrop,
		OutboundDefaultPolicy: instance.SecurityGroupPolicyAccept, EnableDefaultSecurity: scw.BoolPtr(false),
		Tags: []string{"lghs"},
	})
	if err != nil {
		t.Fatalf("create security group: %v", err)
	}
	p.sg = sg.SecurityGroup
	rules, err := api.SetSecurityGroupRules(&instance.SetSecurityGroupRulesRequest{SecurityGroupID: p.sg.ID, Rules: hardenedRules()})
	if err != nil {
		t.Fatalf("set rules: %v", err)
	}
	if len(rules.Rules) != 12 {
		t.Fatalf("rules after PUT = %d, want the 12 editable ones and no SMTP rule", len(rules.Rules))
	}
	for _, r := range rules.Rules {
		if !r.Editable {
			t.Errorf("non-editable rule %+v with enable_default_security false", r)
		}
	}

	// Routed IPs.
	v4, err := api.CreateIP(&instance.CreateIPRequest{Type: instance.IPTypeRoutedIPv4, Tags: []string{"lghs-chat"}})
	if err != nil {
		t.Fatalf("create ipv4: %v", err)
	}
	v6, err := api.CreateIP(&instance.CreateIPRequest{Type: instance.IPTypeRoutedIPv6, Tags: []string{"lghs-chat"}})
	if err != nil {
		t.Fatalf("create ipv6: %v", err)
	}
	p.ipv4, p.ipv6 = v4.IP, v6.IP
	if v6.IP.Prefix.IP == nil || func() bool { ones, _ := v6.IP.Prefix.Mask.Size(); return ones != 64 }() {
		t.Fatalf("routed ipv6 prefix = %v, want a /64", v6.IP.Prefix)
	}

	// The server: DEV1-M, named l_ssd root, IPs, group, tags.
	size := 40 * scw.GB
	srv, err := api.CreateServer(&instance.CreateServerRequest{
		Name: "lghs-chat", CommercialType: "DEV1-M", Image: scw.StringPtr(label),
		DynamicIPRequired: scw.BoolPtr(false),
		Volumes: map[string]*instance.VolumeServerTemplate{"0": {
			Name: scw.StringPtr("lghs-chat"), VolumeType: instance.VolumeVolumeTypeLSSD, Size: &size}},
		PublicIPs: &[]string{p.ipv4.ID, p.ipv6.ID}, SecurityGroup: &p.sg.ID, Tags: []string{"lghs-chat", "lghsctl"},
	})
	if err != nil {
		t.Fatalf("create server: %v", err)
	}
	p.server = srv.Server
	if s := p.server; s.State != instance.ServerStateStopped || s.Volumes["0"].VolumeType != instance.VolumeServerVolumeTypeLSSD ||
		s.Volumes["0"].Name == nil || *s.Volumes["0"].Name != "lghs-chat" || s.Volumes["0"].Size == nil || *s.Volumes["0"].Size != size {
		t.Fatalf("created server = state %s volumes[0] %+v, want stopped with a 40 GB l_ssd root named lghs-chat", s.State, s.Volumes["0"])
	}
	if s := p.server; len(s.PublicIPs) != 2 || s.PublicIPs[0].Address.String() != p.ipv4.Address.String() ||
		!p.ipv6.Prefix.Contains(s.PublicIPs[1].Address) {
		t.Fatalf("server public_ips = %+v, want the IPv4 then an address in %v", s.PublicIPs, p.ipv6.Prefix)
	}

	if err := api.ServerActionAndWait(&instance.ServerActionAndWaitRequest{
		ServerID: p.server.ID, Action: instance.ServerActionPoweron, Timeout: timeout, RetryInterval: poll,
	}); err != nil {
		t.Fatalf("power on: %v", err)
	}
	got, err := api.GetServer(&instance.GetServerRequest{ServerID: p.server.ID})
	if err != nil {
		t.Fatalf("get server: %v", err)
	}
	p.server = got.Server
	if hooks.afterBoot != nil {
		hooks.afterBoot(t, p)
	}

	// Backup image; wait on its snapshot, not the image (available at once).
	task, err := api.ServerAction(&instance.ServerActionRequest{ServerID: p.server.ID, Action: instance.ServerActionBackup,
		Name: scw.StringPtr("lghs-chat-backup")})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	p.imageID = strings.TrimPrefix(task.Task.HrefResult, "/images/")
	img, err := api.GetImage(&instance.GetImageRequest{ImageID: p.imageID})
	if err != nil {
		t.Fatalf("get backup image: %v", err)
	}
	if img.Image.State != instance.ImageStateAvailable || img.Image.FromServer != p.server.ID {
		t.Fatalf("backup image = state %s from %s, want available at once, from %s", img.Image.State, img.Image.FromServer, p.server.ID)
	}
	p.rootSnap = img.Image.RootVolume.ID
	snap, err := api.GetSnapshot(&instance.GetSnapshotRequest{SnapshotID: p.rootSnap})
	if err != nil {
		t.Fatalf("get backup snapshot: %v", err)
	}
	if snap.Snapshot.State != instance.SnapshotStateSnapshotting {
		t.Errorf("backup snapshot right after the action = %s, want snapshotting", snap.Snapshot.State)
	}
	if sn, err := api.WaitForSnapshot(&instance.WaitForSnapshotRequest{SnapshotID: p.rootSnap, Timeout: timeout, RetryInterval: poll}); err != nil ||
		sn.State != instance.SnapshotStateAvailable {
		t.Fatalf("wait for backup snapshot: %v (%v)", err, sn)
	}

	// A second server from the image.
	clone, err := api.CreateServer(&instance.CreateServerRequest{
		Name: "lghs-chat-clone", CommercialType: "DEV1-M", Image: &p.imageID, DynamicIPRequired: scw.BoolPtr(true),
		Volumes:       map[string]*instance.VolumeServerTemplate{"0": {Name: scw.StringPtr("lghs-chat-clone"), VolumeType: instance.VolumeVolumeTypeLSSD}},
		SecurityGroup: &p.sg.ID, Tags: []string{"lghs-chat-clone"},
	})
	if err != nil {
		t.Fatalf("create clone: %v", err)
	}
	p.clone = clone.Server
	if err := api.ServerActionAndWait(&instance.ServerActionAndWaitRequest{
		ServerID: p.clone.ID, Action: instance.ServerActionPoweron, Timeout: timeout, RetryInterval: poll,
	}); err != nil {
		t.Fatalf("power on clone: %v", err)
	}
	if got, err = api.GetServer(&instance.GetServerRequest{ServerID: p.clone.ID}); err != nil {
		t.Fatalf("get clone: %v", err)
	}
	p.clone = got.Server
	if ips := p.clone.PublicIPs; len(ips) != 1 || !ips[0].Dynamic || ips[0].Family != instance.ServerIPIPFamilyInet {
		t.Fatalf("clone public_ips = %+v, want one dynamic IPv4 (dynamic_ip_required, no flexible IP)", ips)
	}
	if hooks.checkClone != nil {
		hooks.checkClone(t, p)
	}

	// Terminate both: the wait ends on the 404 of the vanished server.
	for _, id := range []string{p.server.ID, p.clone.ID} {
		err := api.ServerActionAndWait(&instance.ServerActionAndWaitRequest{
			ServerID: id, Action: instance.ServerActionTerminate, Timeout: timeout, RetryInterval: poll,
		})
		var nf *scw.ResourceNotFoundError
		if !errors.As(err, &nf) {
			t.Fatalf("terminate %s: err = %v, want the wrapped 404 of the vanished server", id, err)
		}
		if _, err := api.GetServer(&instance.GetServerRequest{ServerID: id}); !errors.As(err, &nf) {
			t.Fatalf("get terminated server %s: err = %v, want not found", id, err)
		}
	}
	return p
}

func TestSDKFlowProvisionBackupCloneTerminateDEV1M(t *testing.T) {
	for _, label := range []string{"debian_trixie", "debian_bookworm"} {
		t.Run(label, func(t *testing.T) {
			env := newTestEnv(t)
			var rootLayer string
			p := runFlow(t, env, label, time.Minute, flowHooks{
				afterBoot: func(t *testing.T, p *provisioned) {
					m, found := env.fake.Machine(p.server.ID)
					if !found || !m.Running {
						t.Fatalf("machine of running server %s: found %v running %v", p.server.ID, found, m.Running)
					}
					spec := m.Spec
					wantV6 := p.server.PublicIPs[1].Address.String()
					if spec.Hostname != "lghs-chat" || spec.Image != label || spec.IPv4.String() != p.ipv4.Address.String() ||
						spec.IPv6.String() != wantV6 || len(spec.AuthorizedKeys) != 1 ||
						!strings.HasPrefix(spec.AuthorizedKeys[0], strings.TrimSpace(p.key)) {
						t.Fatalf("machine spec = %+v, want hostname lghs-chat, image %s, the reported addresses (%s, %s) and the IAM key",
							spec, label, p.ipv4.Address, wantV6)
					}
					fw := spec.Firewall
					if fw.InboundDefault != Drop || fw.OutboundDefault != Accept || !fw.Stateful || len(fw.Rules) != 12 {
						t.Fatalf("machine firewall = %+v, want inbound drop, outbound accept, stateful, 12 rules", fw)
					}
					rootLayer = spec.Layers[0]
					if err := env.fake.WriteFile(rootLayer, "/root/marker", "before-backup"); err != nil {
						t.Fatal(err)
					}
				},
				checkClone: func(t *testing.T, p *provisioned) {
					m, _ := env.fake.Machine(p.clone.ID)
					if got, _ := env.fake.ReadFile(m.Spec.Layers[0], "/root/marker"); got != "before-backup" {
						t.Fatalf("marker on the clone's root = %q, want the file written before the backup", got)
					}
					if m.Spec.Image != label {
						t.Errorf("clone image label = %q, want %q", m.Spec.Image, label)
					}
				},
			})
			// Terminate removed the machines and the l_ssd layers, kept IPs.
			if err := env.sim.WaitIdle(t.Context()); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{p.server.ID, p.clone.ID} {
				if _, found := env.fake.Machine(id); found {
					t.Errorf("machine %s still exists after terminate", id)
				}
			}
			if slices.Contains(env.fake.Layers(), rootLayer) {
				t.Errorf("root layer %s still exists after terminate", rootLayer)
			}
			if !slices.Contains(env.fake.Layers(), p.rootSnap) {
				t.Errorf("backup snapshot layer %s is gone, want it kept with its snapshot", p.rootSnap)
			}
			for _, ip := range []*instance.IP{p.ipv4, p.ipv6} {
				got, err := p.api.GetIP(&instance.GetIPRequest{IP: ip.ID})
				if err != nil || got.IP.Server != nil || got.IP.State != instance.IPStateDetached {
					t.Errorf("ip %s after terminate: %+v, %v; want it kept, detached", ip.ID, got, err)
				}
			}
		})
	}
}

func TestSDKListsAllPagesOfServersAndKeys(t *testing.T) {
	env := newTestEnv(t)
	api := instance.NewAPI(env.client)
	for i := range 62 {
		if _, err := api.CreateServer(&instance.CreateServerRequest{
			Name: fmt.Sprintf("bulk-%02d", i), CommercialType: "DEV1-S", Image: scw.StringPtr("debian_trixie"),
			Tags: []string{"bulk"},
		}); err != nil {
			t.Fatalf("create server %d: %v", i, err)
		}
	}
	env.sim.ResetCalls()
	all, err := api.ListServers(&instance.ListServersRequest{Tags: []string{"bulk"}}, scw.WithAllPages())
	if err != nil {
		t.Fatalf("list servers: %v", err)
	}
	if len(all.Servers) != 62 || all.TotalCount != 62 {
		t.Fatalf("listed %d servers (total %d), want 62", len(all.Servers), all.TotalCount)
	}
	if n := env.sim.CallCounts()["GET /instance/v1/zones/{zone}/servers"]; n != 2 {
		t.Errorf("GET /servers calls = %d, want 2 pages of 50", n)
	}
	names := map[string]bool{}
	for _, s := range all.Servers {
		names[s.Name] = true
	}
	if len(names) != 62 {
		t.Errorf("distinct servers over the pages = %d, want 62 (no duplicates)", len(names))
	}

	iamAPI := iam.NewAPI(env.client)
	for i := range 25 {
		_, pub := newTestSSHKey(t)
		if _, err := iamAPI.CreateSSHKey(&iam.CreateSSHKeyRequest{Name: fmt.Sprintf("k%d", i), PublicKey: pub, ProjectID: testProject}); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := iamAPI.ListSSHKeys(&iam.ListSSHKeysRequest{PageSize: scw.Uint32Ptr(10)}, scw.WithAllPages())
	if err != nil || len(keys.SSHKeys) != 25 {
		t.Fatalf("list ssh keys over pages of 10: %d keys, %v; want 25", len(keys.SSHKeys), err)
	}
}

func TestSDKGetsTypedErrorsFromInjectedFaults(t *testing.T) {
	env := newTestEnv(t)
	api := instance.NewAPI(env.client)

	var nf *scw.ResourceNotFoundError
	if _, err := api.GetServer(&instance.GetServerRequest{ServerID: "44444444-4444-4444-8444-444444444444"}); !errors.As(err, &nf) ||
		nf.Resource != "instance_server" {
		t.Errorf("unknown server: %v, want *scw.ResourceNotFoundError for instance_server", err)
	}

	env.sim.SetFaults(FaultConfig{RateLimit: RateLimitFault{Count: 2}})
	for i := range 3 {
		_, err := api.ListIPs(&instance.ListIPsRequest{})
		var re *scw.ResponseError
		switch {
		case i < 2 && (!errors.As(err, &re) || re.StatusCode != 429):
			t.Errorf("call %d in a burst of 2: %v, want *scw.ResponseError 429", i, err)
		case i == 2 && err != nil:
			t.Errorf("call after the burst: %v, want success", err)
		}
	}

	env.sim.SetFaults(FaultConfig{Errors: ErrorFault{Fraction: 0.5, Seed: 42, Status: 503}})
	pattern := func() string {
		var b strings.Builder
		for range 40 {
			_, err := api.ListIPs(&instance.ListIPsRequest{})
			var re *scw.ResponseError
			switch {
			case err == nil:
				b.WriteByte('.')
			case errors.As(err, &re) && re.StatusCode == 503:
				b.WriteByte('x')
			default:
				t.Fatalf("injected 5xx: %v, want *scw.ResponseError 503", err)
			}
		}
		return b.String()
	}
	first := pattern()
	env.sim.SetFaults(FaultConfig{Errors: ErrorFault{Fraction: 0.5, Seed: 42, Status: 503}})
	if second := pattern(); second != first {
		t.Errorf("same seed, same calls: %s then %s, want the same failures", first, second)
	}
	if n := strings.Count(first, "x"); n < 10 || n > 30 {
		t.Errorf("%d of 40 calls failed at fraction 0.5 (%s)", n, first)
	}

	env.sim.SetFaults(FaultConfig{Errors: ErrorFault{Fraction: 1, AfterEffect: true, Match: Match{WritesOnly: true}}})
	if _, err := api.CreateIP(&instance.CreateIPRequest{Tags: []string{"after-effect"}}); err == nil {
		t.Fatal("create IP with an after-effect 500: no error")
	}
	env.sim.SetFaults(FaultConfig{})
	ips, err := api.ListIPs(&instance.ListIPsRequest{Tags: []string{"after-effect"}})
	if err != nil || len(ips.IPs) != 1 {
		t.Errorf("IPs created by the failed call: %d (%v), want 1: the create happened before the 500", len(ips.IPs), err)
	}

	env.sim.SetFaults(FaultConfig{Latency: LatencyFault{Delay: Duration{200 * time.Millisecond}}})
	start := time.Now()
	if _, err := api.ListIPs(&instance.ListIPsRequest{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("call with 200ms latency took %v", d)
	}
	env.sim.SetFaults(FaultConfig{})

	bad, err := scw.NewClient(scw.WithAPIURL(env.url), scw.WithAuth(testAccessKey, "99999999-9999-4999-8999-999999999999"),
		scw.WithDefaultZone(scw.ZoneFrPar1))
	if err != nil {
		t.Fatal(err)
	}
	var denied *scw.DeniedAuthenticationError
	if _, err := instance.NewAPI(bad).ListServers(&instance.ListServersRequest{}); !errors.As(err, &denied) {
		t.Errorf("wrong secret key: %v, want *scw.DeniedAuthenticationError", err)
	}
}

func TestSDKWaitTimesOutOnStuckStates(t *testing.T) {
	env := newTestEnv(t)
	api := instance.NewAPI(env.client)
	srv, err := api.CreateServer(&instance.CreateServerRequest{Name: "stuck", CommercialType: "DEV1-S", Image: scw.StringPtr("debian_trixie")})
	if err != nil {
		t.Fatal(err)
	}
	env.sim.SetFaults(FaultConfig{Stuck: []StuckFault{{Resource: "server", Name: "stuck", State: "starting"},
		{Resource: "snapshot", State: "snapshotting"}}})
	timeout := 500 * time.Millisecond
	err = api.ServerActionAndWait(&instance.ServerActionAndWaitRequest{ServerID: srv.Server.ID, Action: instance.ServerActionPoweron,
		Timeout: &timeout, RetryInterval: &fastPoll})
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("poweron of a server stuck in starting: %v, want a wait timeout", err)
	}
	vol := srv.Server.Volumes["0"].ID
	sn, err := api.CreateSnapshot(&instance.CreateSnapshotRequest{VolumeID: &vol, Name: "stuck-snap"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.WaitForSnapshot(&instance.WaitForSnapshotRequest{SnapshotID: sn.Snapshot.ID, Timeout: &timeout, RetryInterval: &fastPoll}); err == nil {
		t.Fatal("wait for a snapshot stuck in snapshotting: no error")
	}
	env.sim.SetFaults(FaultConfig{})
	long := 10 * time.Second
	if s, err := api.WaitForServer(&instance.WaitForServerRequest{ServerID: srv.Server.ID, Timeout: &long, RetryInterval: &fastPoll}); err != nil ||
		s.State != instance.ServerStateRunning {
		t.Fatalf("server once unstuck: %v %v, want running", s, err)
	}
}

func TestSDKSecurityGroupDefaultSecurityAddsSixSMTPDrops(t *testing.T) {
	env := newTestEnv(t)
	api := instance.NewAPI(env.client)
	sg, err := api.CreateSecurityGroup(&instance.CreateSecurityGroupRequest{Name: "smtp", Stateful: true,
		InboundDefaultPolicy: instance.SecurityGroupPolicyAccept, OutboundDefaultPolicy: instance.SecurityGroupPolicyAccept})
	if err != nil {
		t.Fatal(err)
	}
	if !sg.SecurityGroup.EnableDefaultSecurity {
		t.Fatal("enable_default_security defaults to false, want true")
	}
	rules, err := api.ListSecurityGroupRules(&instance.ListSecurityGroupRulesRequest{SecurityGroupID: sg.SecurityGroup.ID}, scw.WithAllPages())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rules.Rules {
		if r.Editable || r.Action != instance.SecurityGroupRuleActionDrop || r.Direction != instance.SecurityGroupRuleDirectionOutbound {
			t.Errorf("default security rule %+v, want a non-editable outbound drop", r)
		}
		got = append(got, fmt.Sprintf("%s:%d", r.IPRange.String(), *r.DestPortFrom))
	}
	want := []string{"0.0.0.0/0:25", "0.0.0.0/0:465", "0.0.0.0/0:587", "::/0:25", "::/0:465", "::/0:587"}
	if !slices.Equal(got, want) {
		t.Errorf("SMTP rules = %v, want %v", got, want)
	}
	if _, err := api.UpdateSecurityGroup(&instance.UpdateSecurityGroupRequest{SecurityGroupID: sg.SecurityGroup.ID,
		EnableDefaultSecurity: scw.BoolPtr(false)}); err != nil {
		t.Fatal(err)
	}
	rules, err = api.ListSecurityGroupRules(&instance.ListSecurityGroupRulesRequest{SecurityGroupID: sg.SecurityGroup.ID})
	if err != nil || len(rules.Rules) != 0 {
		t.Errorf("rules with enable_default_security false: %v, %v; want none", rules.Rules, err)
	}
}

func TestSDKUsesBlockAPIForSBSRootVolumes(t *testing.T) {
	env := newTestEnv(t)
	api := instance.NewAPI(env.client)
	srv, err := api.CreateServer(&instance.CreateServerRequest{Name: "sbs", CommercialType: "PLAY2-PICO",
		Image: scw.StringPtr("debian_trixie"), Volumes: map[string]*instance.VolumeServerTemplate{"0": {VolumeType: instance.VolumeVolumeTypeSbsVolume}}})
	if err != nil {
		t.Fatalf("create PLAY2-PICO (sbs only): %v", err)
	}
	root := srv.Server.Volumes["0"]
	if root.VolumeType != instance.VolumeServerVolumeTypeSbsVolume {
		t.Fatalf("root volume type = %s, want sbs_volume", root.VolumeType)
	}
	var nf *scw.ResourceNotFoundError
	if _, err := api.GetVolume(&instance.GetVolumeRequest{VolumeID: root.ID}); !errors.As(err, &nf) {
		t.Errorf("instance GET of an sbs volume: %v, want 404", err)
	}
	bv, err := block.NewAPI(env.client).GetVolume(&block.GetVolumeRequest{VolumeID: root.ID})
	if err != nil || bv.Status != block.VolumeStatusInUse || len(bv.References) != 1 {
		t.Fatalf("block volume: %+v, %v; want in_use with one reference", bv, err)
	}
	if _, err := api.CreateServer(&instance.CreateServerRequest{Name: "no-local", CommercialType: "PLAY2-PICO",
		Image: scw.StringPtr("debian_trixie"), Volumes: map[string]*instance.VolumeServerTemplate{"0": {VolumeType: instance.VolumeVolumeTypeLSSD}}}); err == nil {
		t.Error("l_ssd root on PLAY2-PICO accepted, want an error (no local storage)")
	}
}

func TestSDKWritesAreCountedReadsAreNot(t *testing.T) {
	env := newTestEnv(t)
	api := instance.NewAPI(env.client)
	if _, err := api.CreateIP(&instance.CreateIPRequest{}); err != nil {
		t.Fatal(err)
	}
	if w := env.sim.WriteCalls(); len(w) != 1 || w[0].Route != "POST /instance/v1/zones/{zone}/ips" {
		t.Fatalf("write calls = %+v, want the one POST /ips", w)
	}
	env.sim.ResetCalls()
	if _, err := api.ListIPs(&instance.ListIPsRequest{}, scw.WithAllPages()); err != nil {
		t.Fatal(err)
	}
	if _, err := api.ListServers(&instance.ListServersRequest{}); err != nil {
		t.Fatal(err)
	}
	if w := env.sim.WriteCalls(); len(w) != 0 {
		t.Errorf("write calls after reads only = %+v, want none", w)
	}
	if len(env.sim.Calls()) < 2 {
		t.Errorf("calls = %+v, want the reads logged", env.sim.Calls())
	}
}

func TestRoutedIPv6AddressIsEUI64OfMAC(t *testing.T) {
	// Values of a real server (server-ipv6 recording).
	got := slaacAddress(netip.MustParsePrefix("2001:bc8:711:4014::/64"), "de:00:01:27:16:ab")
	if got.String() != "2001:bc8:711:4014:dc00:1ff:fe27:16ab" {
		t.Errorf("slaac address = %s, want 2001:bc8:711:4014:dc00:1ff:fe27:16ab", got)
	}
	if gw := linkLocalGateway("de:00:01:27:16:ab"); gw.String() != "fe80::dc00:1ff:fe27:16ac" {
		t.Errorf("gateway = %s, want fe80::dc00:1ff:fe27:16ac", gw)
	}
}
