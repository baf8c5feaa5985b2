package scwsim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Flexible IP types: every new IP is routed.
const (
	ipTypeV4 = "routed_ipv4"
	ipTypeV6 = "routed_ipv6"
)

func ipPrefix(ip *flexIP) netip.Prefix {
	if ip.Type == ipTypeV6 {
		return ip.Prefix
	}
	return netip.PrefixFrom(ip.Address, 32)
}

func (s *Sim) ipByID(r *http.Request) (*flexIP, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	ip := s.st.IPs[id]
	if ip == nil || ip.Zone != zone {
		return nil, notFound("instance_ip", id)
	}
	return ip, nil
}

func (s *Sim) getIP(r *http.Request) (*reply, error) {
	ip, err := s.ipByID(r)
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"ip": s.renderIP(ip)})
}

func (s *Sim) listIPs(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var out []ipJSON
	for _, ip := range ordered(s.st.IPs) {
		addr := ip.Address.String()
		if ip.Type == ipTypeV6 {
			addr = ip.Prefix.String()
		}
		switch {
		case ip.Zone != zone,
			q.Get("project") != "" && ip.Project != q.Get("project"),
			q.Get("organization") != "" && ip.Organization != q.Get("organization"),
			q.Get("type") != "" && ip.Type != q.Get("type"),
			q.Get("name") != "" && !strings.Contains(addr, q.Get("name")),
			!hasAllTags(ip.Tags, q.Get("tags")):
			continue
		}
		out = append(out, s.renderIP(ip))
	}
	page, h, err := instancePage(r, out)
	if err != nil {
		return nil, err
	}
	return &reply{status: http.StatusOK, body: map[string]any{"ips": page}, header: h}, nil
}

type createIPRequest struct {
	Organization *string  `json:"organization"`
	Project      *string  `json:"project"`
	Tags         []string `json:"tags"`
	Server       *string  `json:"server"`
	Type         string   `json:"type"`
}

func (s *Sim) createIP(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	var req createIPRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	own, err := s.ownerFor(req.Project, req.Organization, "instance_ip")
	if err != nil {
		return nil, err
	}
	if req.Type == "" || req.Type == "unknown_iptype" {
		req.Type = ipTypeV4
	}
	var sv *server
	if req.Server != nil && *req.Server != "" {
		if sv = s.st.Servers[*req.Server]; sv == nil || sv.Zone != zone {
			return nil, notFound("instance_server", *req.Server)
		}
	}
	ip := &flexIP{owner: own, ID: s.newID(), Zone: zone, Type: req.Type, State: "detached", Tags: nonNil(req.Tags), Created: s.now()}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	switch req.Type {
	case ipTypeV4:
		a, err := s.machines.AllocateIPv4(ctx)
		if err != nil {
			return nil, err
		}
		ip.Address = a
	case ipTypeV6:
		p, err := s.machines.AllocateIPv6Prefix(ctx)
		if err != nil {
			return nil, err
		}
		ip.Prefix = p.Masked()
	default:
		return nil, invalidArguments(argDetail{"type", "constraint", "only routed_ipv4 and routed_ipv6 IPs exist now"})
	}
	s.st.IPs[ip.ID] = ip
	if sv != nil {
		s.attachIP(ip, sv)
	}
	return &reply{status: http.StatusCreated, body: map[string]any{"ip": s.renderIP(ip)},
		header: locationHeader(r, "/ips/"+ip.ID)}, nil
}

// attachIP attaches ip to sv: at once on a stopped server, "pending" for a
// while on a running one. The machine gets the address at its next boot.
func (s *Sim) attachIP(ip *flexIP, sv *server) {
	ip.Server, ip.State = sv.ID, "attached"
	if sv.State != stStopped && sv.State != stStoppedInPlace {
		ip.State, ip.PendingUntil = "pending", s.now().Add(s.cfg.Timings.IPAttach)
	}
	sv.IPs = append(sv.IPs, ip.ID)
	sv.Modified = s.now()
}

func (s *Sim) detachIP(ip *flexIP) {
	if ip == nil || ip.Server == "" {
		return
	}
	if sv := s.st.Servers[ip.Server]; sv != nil {
		out := sv.IPs[:0]
		for _, id := range sv.IPs {
			if id != ip.ID {
				out = append(out, id)
			}
		}
		sv.IPs = out
		sv.Modified = s.now()
	}
	ip.Server, ip.State = "", "detached"
}

type updateIPRequest struct {
	Reverse json.RawMessage `json:"reverse"`
	Type    string          `json:"type"`
	Tags    *[]string       `json:"tags"`
	Server  json.RawMessage `json:"server"`
}

// nullableString decodes the SDK's NullableStringValue: absent (nil, false),
// null (nil, true) or a string.
func nullableString(raw json.RawMessage) (*string, bool, error) {
	if len(raw) == 0 {
		return nil, false, nil
	}
	if string(raw) == "null" {
		return nil, true, nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, false, err
	}
	return &v, true, nil
}

func (s *Sim) updateIP(r *http.Request) (*reply, error) {
	ip, err := s.ipByID(r)
	if err != nil {
		return nil, err
	}
	var req updateIPRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Type != "" && req.Type != ip.Type {
		return nil, invalidArguments(argDetail{"type", "constraint", "the type of a routed IP cannot change"})
	}
	srv, setSrv, err := nullableString(req.Server)
	if err != nil {
		return nil, invalidArguments(argDetail{"server", "format", err.Error()})
	}
	var target *server
	if srv != nil {
		if target = s.st.Servers[*srv]; target == nil || target.Zone != ip.Zone {
			return nil, notFound("instance_server", *srv)
		}
	}
	rev, setRev, err := nullableString(req.Reverse)
	if err != nil {
		return nil, invalidArguments(argDetail{"reverse", "format", err.Error()})
	}
	if setRev {
		ip.Reverse = rev
	}
	if req.Tags != nil {
		ip.Tags = nonNil(*req.Tags)
	}
	if setSrv && (target == nil || target.ID != ip.Server) {
		s.detachIP(ip)
		if target != nil {
			s.attachIP(ip, target)
		}
	}
	return ok(map[string]any{"ip": s.renderIP(ip)})
}

// deleteIP is allowed while attached: the server just loses the IP.
func (s *Sim) deleteIP(r *http.Request) (*reply, error) {
	ip, err := s.ipByID(r)
	if err != nil {
		return nil, err
	}
	s.detachIP(ip)
	delete(s.st.IPs, ip.ID)
	s.releaseAddress(ipPrefix(ip))
	return noContent()
}
