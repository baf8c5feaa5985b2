// Package scwsim is the lab's stand-in for the Scaleway API: an http.Handler
// the unchanged scaleway-sdk-go client (v1.39.0) can be pointed at with
// SCW_API_URL / scw.WithAPIURL, behaving like the real service as recorded in
// shared/fixtures/scaleway and described in shared/reference/scaleway-api.md.
//
// It serves the parts lghsctl uses: Instance API v1 (servers and their
// actions, routed flexible IPs, security groups and rules, l_ssd volumes,
// snapshots, images, server types), Marketplace v2 local images, IAM
// v1alpha1 SSH keys, Block v1/v1alpha1 volumes and snapshots, and GET
// /metadata. Status codes, pagination (X-Total-Count/Link on Instance lists,
// total_count elsewhere), error bodies, the server state machine, terminate
// versus delete, routed IPv6 prefixes and "image available before its
// snapshots" are reproduced; see the fidelity test for what is compared with
// the recordings.
//
// Decisions where the reference leaves a choice:
//   - A DEV1-M's root volume follows its image, as on Scaleway in 2026: an
//     instance_local image gives an l_ssd root in the Instance API (sized to
//     the type's 40 GB unless told), an instance_sbs image an sbs_volume root
//     that only the Block API shows. Label resolution without a type, or with
//     an l_ssd volume template (what lghsctl does), yields instance_local.
//   - A server's IPv6 address is the EUI-64 address of its MAC address in its
//     routed /64, as Scaleway reports it (the prefix itself has address null).
//   - Transient states last at least their Timings and until the machine work
//     behind them is done; they are computed when the API is asked.
//
// Powered-on servers become real lab hosts through the Machines interface:
// LabHosts (over internal/lab/labhost) in the lab, FakeMachines in unit
// tests. Wiring a lab daemon:
//
//	lab, _ := labhost.Open(ctx, labhost.Config{})
//	m, _ := scwsim.NewLabHosts(scwsim.LabHostsConfig{Lab: lab, Dir: stateDir + "/layers"})
//	sim, _ := scwsim.New(scwsim.Config{SecretKeys: ..., Projects: ..., Machines: m,
//		Timings: scwsim.RealisticTimings(), StateFile: stateDir + "/scaleway.json"})
//	ln, _ := net.Listen("tcp", lab.BoxAddr4().String()+":8443")
//	go sim.Serve(ctx, ln) // lghsctl gets SCW_API_URL=http://<that address>
//
// A server's host is named "scw-" + its id without dashes (24 characters);
// a server without an IPv4 or IPv6 still gets one from the lab (unreported). Faults (429 bursts, 5xx, latency, stuck
// transient states) and the request log are driven through SetFaults and
// Calls, or the admin endpoints under /_scwsim/.
package scwsim
