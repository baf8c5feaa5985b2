package scwsim

import (
	"crypto/ecdsa"
	"crypto/md5"
	"crypto/rsa"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

type sshKeyJSON struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	PublicKey      string `json:"public_key"`
	Fingerprint    string `json:"fingerprint"`
	CreatedAt      string `json:"created_at"`
	UpdatedAt      string `json:"updated_at"`
	OrganizationID string `json:"organization_id"`
	ProjectID      string `json:"project_id"`
	Disabled       bool   `json:"disabled"`
}

func renderSSHKey(k *sshKey) sshKeyJSON {
	return sshKeyJSON{ID: k.ID, Name: k.Name, PublicKey: k.PublicKey, Fingerprint: k.Fingerprint,
		CreatedAt: blockTime(k.Created), UpdatedAt: blockTime(k.Updated), OrganizationID: k.Organization,
		ProjectID: k.Project, Disabled: k.Disabled}
}

// parsePublicKey returns the key without its comment and Scaleway's
// fingerprint: "<bits> MD5:aa:bb:... (<type>)".
func parsePublicKey(line string) (string, string, error) {
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "", "", err
	}
	bits := 0
	if ck, isCrypto := pk.(ssh.CryptoPublicKey); isCrypto {
		switch k := ck.CryptoPublicKey().(type) {
		case *rsa.PublicKey:
			bits = k.N.BitLen()
		case *ecdsa.PublicKey:
			bits = k.Curve.Params().BitSize
		}
	}
	if bits == 0 {
		bits = 256 // ed25519 (and sk- keys)
	}
	sum := md5.Sum(pk.Marshal())
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02x", b)
	}
	stripped := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
	return stripped, fmt.Sprintf("%d MD5:%s (%s)", bits, strings.Join(hexes, ":"), pk.Type()), nil
}

func (s *Sim) sshKeyByID(r *http.Request) (*sshKey, error) {
	id := r.PathValue("id")
	k := s.st.SSHKeys[id]
	if k == nil {
		return nil, notFound("ssh_key", id)
	}
	return k, nil
}

func (s *Sim) getSSHKey(r *http.Request) (*reply, error) {
	k, err := s.sshKeyByID(r)
	if err != nil {
		return nil, err
	}
	return ok(renderSSHKey(k))
}

func (s *Sim) listSSHKeys(r *http.Request) (*reply, error) {
	q := r.URL.Query()
	var items []sshKeyJSON
	for _, k := range ordered(s.st.SSHKeys) {
		switch {
		case q.Get("project_id") != "" && k.Project != q.Get("project_id"),
			q.Get("organization_id") != "" && k.Organization != q.Get("organization_id"),
			q.Get("name") != "" && !strings.Contains(k.Name, q.Get("name")),
			q.Get("disabled") != "" && fmt.Sprint(k.Disabled) != q.Get("disabled"):
			continue
		}
		items = append(items, renderSSHKey(k))
	}
	if q.Get("order_by") == "created_at_desc" || q.Get("order_by") == "name_desc" {
		reverse(items)
	}
	if items == nil {
		items = []sshKeyJSON{}
	}
	page, err := bodyPage(r, items)
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"ssh_keys": page, "total_count": len(items)})
}

type createSSHKeyRequest struct {
	Name      string `json:"name"`
	PublicKey string `json:"public_key"`
	ProjectID string `json:"project_id"`
}

// createSSHKey answers 200 (not 201) with the comment stripped from the key.
// Duplicate keys are accepted, as they were in 2022 (current behaviour
// unverified).
func (s *Sim) createSSHKey(r *http.Request) (*reply, error) {
	var req createSSHKeyRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if !uuidRE.MatchString(req.ProjectID) {
		return nil, invalidArguments(argDetail{"project_id", "format", "value must be a valid UUID"})
	}
	p, found := s.project(req.ProjectID)
	if !found {
		return nil, permissionsDenied("write", "ssh_key")
	}
	pub, fp, err := parsePublicKey(req.PublicKey)
	if err != nil {
		return nil, invalidArguments(argDetail{"public_key", "constraint", "invalid SSH public key"})
	}
	now := s.now()
	k := &sshKey{owner: owner{Project: p.ID, Organization: p.OrganizationID}, ID: s.newID(), Name: req.Name,
		PublicKey: pub, Fingerprint: fp, Created: now, Updated: now}
	if k.Name == "" {
		k.Name = "key-" + k.ID[:8]
	}
	s.st.SSHKeys[k.ID] = k
	return ok(renderSSHKey(k))
}

type updateSSHKeyRequest struct {
	Name     *string `json:"name"`
	Disabled *bool   `json:"disabled"`
}

func (s *Sim) updateSSHKey(r *http.Request) (*reply, error) {
	k, err := s.sshKeyByID(r)
	if err != nil {
		return nil, err
	}
	var req updateSSHKeyRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Name != nil {
		k.Name = *req.Name
	}
	if req.Disabled != nil {
		k.Disabled = *req.Disabled
	}
	k.Updated = s.now()
	return ok(renderSSHKey(k))
}

func (s *Sim) deleteSSHKey(r *http.Request) (*reply, error) {
	k, err := s.sshKeyByID(r)
	if err != nil {
		return nil, err
	}
	delete(s.st.SSHKeys, k.ID)
	return noContent()
}

func reverse[T any](s []T) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

type projectJSON struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	OrganizationID string `json:"organization_id"`
	CreatedAt      string `json:"created_at"`
	UpdatedAt      string `json:"updated_at"`
	Description    string `json:"description"`
}

// listProjects is the Account API's project list (GET
// /account/v3/projects): the configured projects, filtered by
// organization_id and by name (a part of it), paginated in the body.
func (s *Sim) listProjects(r *http.Request) (*reply, error) {
	q := r.URL.Query()
	items := []projectJSON{}
	for _, p := range s.cfg.Projects {
		if q.Get("organization_id") != "" && p.OrganizationID != q.Get("organization_id") ||
			q.Get("name") != "" && !strings.Contains(p.Name, q.Get("name")) {
			continue
		}
		created := s.now().UTC().Format(time.RFC3339)
		items = append(items, projectJSON{ID: p.ID, Name: p.Name, OrganizationID: p.OrganizationID, CreatedAt: created, UpdatedAt: created})
	}
	page, err := bodyPage(r, items)
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"projects": page, "total_count": len(items)})
}
