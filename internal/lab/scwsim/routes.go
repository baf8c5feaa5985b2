package scwsim

import (
	"net/http"
)

// routes registers every endpoint the stand-in serves.
func (s *Sim) routes() {
	s.mux = http.NewServeMux()
	const inst = "/instance/v1/zones/{zone}"

	s.handle("GET /metadata", s.getMetadata)

	s.handle("GET "+inst+"/products/servers", s.listProducts)
	s.handle("GET "+inst+"/products/servers/availability", s.productsAvailability)

	s.handle("GET "+inst+"/servers", s.listServers)
	s.handle("POST "+inst+"/servers", s.createServer)
	s.handle("GET "+inst+"/servers/{id}", s.getServer)
	s.handle("PATCH "+inst+"/servers/{id}", s.updateServer)
	s.handle("DELETE "+inst+"/servers/{id}", s.deleteServer)
	s.handle("GET "+inst+"/servers/{id}/action", s.listServerActions)
	s.handle("POST "+inst+"/servers/{id}/action", s.serverAction)
	s.handle("GET "+inst+"/servers/{id}/user_data", s.listUserData)
	s.handle("GET "+inst+"/servers/{id}/user_data/{key}", s.getUserData)
	s.handle("PATCH "+inst+"/servers/{id}/user_data/{key}", s.setUserData)
	s.handle("DELETE "+inst+"/servers/{id}/user_data/{key}", s.deleteUserData)
	s.handle("GET "+inst+"/servers/{id}/private_nics", s.listPrivateNICs)
	s.handle("GET /instance/v2alpha1/zones/{zone}/private-network-interfaces", s.listPrivateNetworkInterfaces)

	s.handle("GET "+inst+"/ips", s.listIPs)
	s.handle("POST "+inst+"/ips", s.createIP)
	s.handle("GET "+inst+"/ips/{id}", s.getIP)
	s.handle("PATCH "+inst+"/ips/{id}", s.updateIP)
	s.handle("DELETE "+inst+"/ips/{id}", s.deleteIP)

	s.handle("GET "+inst+"/security_groups", s.listSecurityGroups)
	s.handle("POST "+inst+"/security_groups", s.createSecurityGroup)
	s.handle("GET "+inst+"/security_groups/{id}", s.getSecurityGroup)
	s.handle("PATCH "+inst+"/security_groups/{id}", s.updateSecurityGroup)
	s.handle("DELETE "+inst+"/security_groups/{id}", s.deleteSecurityGroup)
	s.handle("GET "+inst+"/security_groups/{id}/rules", s.listRules)
	s.handle("POST "+inst+"/security_groups/{id}/rules", s.createRule)
	s.handle("PUT "+inst+"/security_groups/{id}/rules", s.setRules)
	s.handle("GET "+inst+"/security_groups/{id}/rules/{rule}", s.getRule)
	s.handle("PATCH "+inst+"/security_groups/{id}/rules/{rule}", s.updateRule)
	s.handle("DELETE "+inst+"/security_groups/{id}/rules/{rule}", s.deleteRule)

	s.handle("GET "+inst+"/volumes", s.listVolumes)
	s.handle("POST "+inst+"/volumes", s.createVolume)
	s.handle("GET "+inst+"/volumes/{id}", s.getVolume)
	s.handle("PATCH "+inst+"/volumes/{id}", s.updateVolume)
	s.handle("DELETE "+inst+"/volumes/{id}", s.deleteVolume)

	s.handle("GET "+inst+"/snapshots", s.listSnapshots)
	s.handle("POST "+inst+"/snapshots", s.createSnapshot)
	s.handle("GET "+inst+"/snapshots/{id}", s.getSnapshot)
	s.handle("PATCH "+inst+"/snapshots/{id}", s.updateSnapshot)
	s.handle("DELETE "+inst+"/snapshots/{id}", s.deleteSnapshot)

	s.handle("GET "+inst+"/images", s.listImages)
	s.handle("POST "+inst+"/images", s.createImage)
	s.handle("GET "+inst+"/images/{id}", s.getImage)
	s.handle("PATCH "+inst+"/images/{id}", s.updateImage)
	s.handle("DELETE "+inst+"/images/{id}", s.deleteImage)

	s.handle("GET /marketplace/v2/local-images", s.listLocalImages)
	s.handle("GET /marketplace/v2/local-images/{id}", s.getLocalImage)
	s.handle("GET /marketplace/v2/images", s.listMarketplaceImages)
	s.handle("GET /marketplace/v2/images/{id}", s.getMarketplaceImage)

	s.handle("GET /iam/v1alpha1/ssh-keys", s.listSSHKeys)
	s.handle("GET /account/v3/projects", s.listProjects)
	s.handle("POST /iam/v1alpha1/ssh-keys", s.createSSHKey)
	s.handle("GET /iam/v1alpha1/ssh-keys/{id}", s.getSSHKey)
	s.handle("PATCH /iam/v1alpha1/ssh-keys/{id}", s.updateSSHKey)
	s.handle("DELETE /iam/v1alpha1/ssh-keys/{id}", s.deleteSSHKey)

	for _, v := range []string{"v1", "v1alpha1"} {
		b := "/block/" + v + "/zones/{zone}"
		s.handle("GET "+b+"/volumes", s.listBlockVolumes)
		s.handle("POST "+b+"/volumes", s.createBlockVolume)
		s.handle("GET "+b+"/volumes/{id}", s.getBlockVolume)
		s.handle("PATCH "+b+"/volumes/{id}", s.updateBlockVolume)
		s.handle("DELETE "+b+"/volumes/{id}", s.deleteBlockVolume)
		s.handle("GET "+b+"/snapshots", s.listBlockSnapshots)
		s.handle("POST "+b+"/snapshots", s.createBlockSnapshot)
		s.handle("GET "+b+"/snapshots/{id}", s.getBlockSnapshot)
		s.handle("PATCH "+b+"/snapshots/{id}", s.updateBlockSnapshot)
		s.handle("DELETE "+b+"/snapshots/{id}", s.deleteBlockSnapshot)
	}

	// Everything else is loudly unimplemented rather than a 404 a client
	// would read as "resource does not exist".
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.cfg.Log.Warn("scwsim: unimplemented endpoint", "method", r.Method, "path", r.URL.Path)
		writeError(w, notImplemented(r))
	})
}

func (s *Sim) getMetadata(*http.Request) (*reply, error) {
	return ok(map[string]string{"platform": "external", "partition": "scw", "domain": "scw.eu"})
}
