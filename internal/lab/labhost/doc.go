// Package labhost runs real Debian machines on one box for lghsctl's tests
// and rehearsals: systemd as PID 1, OpenSSH, apt, nginx and Docker, each
// host a systemd-nspawn container in its own network namespace, started in
// about a second from a cached base.
//
// # Pieces and lifetimes
//
//   - Base (EnsureBase): a Debian root file system built once by debootstrap
//     (minbase plus DefaultRecipe's packages) and cached in
//     CacheDir/base/<release>-<hash of the recipe>. Builds happen in a
//     temporary directory renamed into place, under a per-recipe flock, so
//     an interrupted build leaves no cache entry and concurrent builders
//     wait for one another. Bases are never modified; they outlive labs.
//   - Lab (Open … Close): one instance per test (or per `lghsctl lab`
//     daemon). It claims one of 32 slots on the box (RunDir/inst/N.lock,
//     flock'ed for its whole life: the only liveness proof), which gives it
//     its name lgl<N>, its address ranges and its resource prefix. Opening
//     a lab first reaps what labs whose process died left behind; a
//     watchdog process (flock(1) waiting for the slot's lock) kills the
//     hosts and deletes the network as soon as the owner dies without
//     closing, so a killed `go test` leaves nothing running.
//   - Host (Lab.Start … Remove): an overlay of the base and the host's
//     layer directory (upper, work and Docker's /var/lib/docker), mounted in
//     a private mount namespace that dies with the host; a cgroup of its
//     own (RunDir-independent: <cgroup2>/lghsctl-lab/lgl<N>/<host>) through
//     which it is frozen, or killed whole; fresh SSH host keys, root's
//     authorized keys, hostname, /etc/hosts, resolv.conf and the apt proxy
//     setting written into the layer before boot. Stop keeps the layer
//     (a powered-off server), Start boots it again, Remove deletes a
//     lab-owned layer; a caller-owned layer (Spec.LayerDir) always stays.
//   - Apt proxy: one apt-cacher-ng daemon per box with the lab's own
//     configuration and cache (CacheDir/apt-cacher-ng), on loopback, shared
//     by all labs and stopped by the last one to close; each lab forwards
//     port 3142 of its box addresses to it.
//
// # Network
//
// Each lab has a router namespace, lgl<N>-r, which is the lab's Internet:
//
//	   box (root netns)                 lgl<N>-r (router)            lgl<N>-<host>
//	10.(200+N).0.1/30  lgl<N>-box ── box  10.(200+N).0.2/30
//	fd6c:6768:73NN::1/64                  fd6c:6768:73NN::2/64
//	                                       h1 ─────────────────────── eth0  10.(200+N).1.1/32
//	                                       (gateway 10.(200+N).0.254,       fd6c:6768:73NN:1:<EUI-64>/64
//	                                        fe80::<EUI-64 of MAC+1>)
//	                                       h2 ─────────────────────── eth0  …
//
// Hosts have routed addresses as on Scaleway: an IPv4 /32 and an IPv6 /64
// whose address is the EUI-64 of the host's MAC, with the gateway the
// link-local address of MAC+1. Callers may choose them (any 10.0.0.0/8 /32
// and fc00::/7 /64 not used elsewhere on the box) or take them from the
// lab's allocator. Forwarding is enabled in the router (and in hosts, for
// Docker) only; the box's own sysctls are never changed. The box routes
// each host's /32 and /64 through the router, so the box reaches every host
// and hosts reach the box addresses (BoxAddr4, BoxAddr6), where the cloud
// stand-ins, the lab DNS server, Pebble and the apt proxy listen. Hosts
// reach each other through the router. Nothing else is reachable: the
// router has no default route.
//
// Security groups (SetFirewall), link shaping (Shape), loss and cuts are
// nftables and tc state in the router namespace, outside the hosts' reach;
// deleting the router namespace deletes the whole network.
//
// The lab needs root, systemd-nspawn (systemd-container), debootstrap,
// iproute2, nftables, util-linux (nsenter, unshare, flock), apt-cacher-ng
// (unless Config.NoAptProxy), cgroup v2 (hybrid is fine) and overlayfs;
// CheckPrerequisites says what is missing. Package labtest wraps it for
// tests.
package labhost
