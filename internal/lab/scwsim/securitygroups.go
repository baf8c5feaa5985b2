package scwsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// defaultSG returns (creating it on first use) the project's "Default
// security group" in zone, the group of servers created without one.
func (s *Sim) defaultSG(p Project, zone string) *securityGroup {
	for _, g := range ordered(s.st.SecurityGroups) {
		if g.Project == p.ID && g.Zone == zone && g.ProjectDefault {
			return g
		}
	}
	desc := "Auto generated security group."
	now := s.now()
	g := &securityGroup{
		owner: owner{Project: p.ID, Organization: p.OrganizationID}, ID: s.newID(),
		Name: "Default security group", Zone: zone, Description: &desc, Stateful: true,
		Inbound: "accept", Outbound: "accept", OrganizationDefault: true, ProjectDefault: true,
		EnableDefaultSecurity: true, Tags: []string{}, Created: now, Modified: now,
	}
	s.st.SecurityGroups[g.ID] = g
	return g
}

func (s *Sim) sgByID(r *http.Request) (*securityGroup, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	g := s.st.SecurityGroups[id]
	if g == nil || g.Zone != zone {
		return nil, notFound("instance_security_group", id)
	}
	return g, nil
}

func (s *Sim) getSecurityGroup(r *http.Request) (*reply, error) {
	g, err := s.sgByID(r)
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"security_group": s.renderSG(g)})
}

// listSecurityGroups filters like the other Instance lists; name is taken as
// a substring match (the real behaviour is unverified, see the reference).
func (s *Sim) listSecurityGroups(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var out []sgJSON
	for _, g := range ordered(s.st.SecurityGroups) {
		switch {
		case g.Zone != zone,
			q.Get("project") != "" && g.Project != q.Get("project"),
			q.Get("organization") != "" && g.Organization != q.Get("organization"),
			q.Get("name") != "" && !strings.Contains(g.Name, q.Get("name")),
			q.Get("project_default") != "" && fmt.Sprint(g.ProjectDefault) != q.Get("project_default"),
			!hasAllTags(g.Tags, q.Get("tags")):
			continue
		}
		out = append(out, s.renderSG(g))
	}
	page, h, err := instancePage(r, out)
	if err != nil {
		return nil, err
	}
	return &reply{status: http.StatusOK, body: map[string]any{"security_groups": page}, header: h}, nil
}

type createSGRequest struct {
	Name                  string   `json:"name"`
	Description           string   `json:"description"`
	Organization          *string  `json:"organization"`
	Project               *string  `json:"project"`
	Tags                  []string `json:"tags"`
	OrganizationDefault   *bool    `json:"organization_default"`
	ProjectDefault        *bool    `json:"project_default"`
	Stateful              bool     `json:"stateful"`
	InboundDefaultPolicy  string   `json:"inbound_default_policy"`
	OutboundDefaultPolicy string   `json:"outbound_default_policy"`
	EnableDefaultSecurity *bool    `json:"enable_default_security"`
}

func policy(name, v, def string) (string, error) {
	switch v {
	case "", "unknown_policy":
		return def, nil
	case "accept", "drop":
		return v, nil
	}
	return "", invalidArguments(argDetail{name, "constraint", "must be accept or drop"})
}

func (s *Sim) createSecurityGroup(r *http.Request) (*reply, error) {
	zone, err := s.zone(r)
	if err != nil {
		return nil, err
	}
	var req createSGRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	own, err := s.ownerFor(req.Project, req.Organization, "instance_security_group")
	if err != nil {
		return nil, err
	}
	if req.Name == "" {
		return nil, invalidArguments(argDetail{"name", "required", "name is required"})
	}
	in, err := policy("inbound_default_policy", req.InboundDefaultPolicy, "accept")
	if err != nil {
		return nil, err
	}
	out, err := policy("outbound_default_policy", req.OutboundDefaultPolicy, "accept")
	if err != nil {
		return nil, err
	}
	now := s.now()
	g := &securityGroup{owner: own, ID: s.newID(), Name: req.Name, Zone: zone, Stateful: req.Stateful,
		Inbound: in, Outbound: out, EnableDefaultSecurity: req.EnableDefaultSecurity == nil || *req.EnableDefaultSecurity,
		Tags: nonNil(req.Tags), Created: now, Modified: now}
	if req.Description != "" {
		d := req.Description
		g.Description = &d
	}
	if req.ProjectDefault != nil && *req.ProjectDefault {
		return nil, invalidArguments(argDetail{"project_default", "constraint", "scwsim keeps one default group per project"})
	}
	s.st.SecurityGroups[g.ID] = g
	return &reply{status: http.StatusCreated, body: map[string]any{"security_group": s.renderSG(g)},
		header: locationHeader(r, "/security_groups/"+g.ID)}, nil
}

type updateSGRequest struct {
	Name                  *string   `json:"name"`
	Description           *string   `json:"description"`
	EnableDefaultSecurity *bool     `json:"enable_default_security"`
	InboundDefaultPolicy  string    `json:"inbound_default_policy"`
	Tags                  *[]string `json:"tags"`
	OrganizationDefault   *bool     `json:"organization_default"`
	ProjectDefault        *bool     `json:"project_default"`
	OutboundDefaultPolicy string    `json:"outbound_default_policy"`
	Stateful              *bool     `json:"stateful"`
}

// updateSecurityGroup applies a PATCH; a group that really changed is
// "syncing" for a while (an identical PATCH leaves it available, as
// recorded).
func (s *Sim) updateSecurityGroup(r *http.Request) (*reply, error) {
	g, err := s.sgByID(r)
	if err != nil {
		return nil, err
	}
	var req updateSGRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	in, err := policy("inbound_default_policy", req.InboundDefaultPolicy, g.Inbound)
	if err != nil {
		return nil, err
	}
	out, err := policy("outbound_default_policy", req.OutboundDefaultPolicy, g.Outbound)
	if err != nil {
		return nil, err
	}
	before, _ := json.Marshal(g)
	if req.Name != nil {
		g.Name = *req.Name
	}
	if req.Description != nil {
		d := *req.Description
		g.Description = &d
	}
	if req.EnableDefaultSecurity != nil {
		g.EnableDefaultSecurity = *req.EnableDefaultSecurity
	}
	if req.Tags != nil {
		g.Tags = nonNil(*req.Tags)
	}
	if req.Stateful != nil {
		g.Stateful = *req.Stateful
	}
	g.Inbound, g.Outbound = in, out
	if after, _ := json.Marshal(g); string(after) != string(before) {
		s.changedSG(g)
	}
	return ok(map[string]any{"security_group": s.renderSG(g)})
}

// changedSG marks a group as syncing and pushes its policy to the machines.
func (s *Sim) changedSG(g *securityGroup) {
	now := s.now()
	g.Modified, g.SyncUntil, g.SyncSeen = now, now.Add(s.cfg.Timings.SGSync), now
	s.pushFirewall(g)
}

func (s *Sim) deleteSecurityGroup(r *http.Request) (*reply, error) {
	g, err := s.sgByID(r)
	if err != nil {
		return nil, err
	}
	for _, sv := range s.st.Servers {
		if sv.SecurityGroup == g.ID {
			return nil, conflict("Group is in use. You cannot delete it.")
		}
	}
	if g.ProjectDefault {
		return nil, conflict("Group is default group. You cannot delete it.")
	}
	delete(s.st.SecurityGroups, g.ID)
	return noContent()
}

// listRules answers every rule on one page: the real endpoint sends no
// X-Total-Count.
func (s *Sim) listRules(r *http.Request) (*reply, error) {
	g, err := s.sgByID(r)
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"rules": allRules(g)})
}

// ruleInput is a rule as clients send it (PUT, POST and PATCH).
type ruleInput struct {
	ID           *string         `json:"id"`
	Action       string          `json:"action"`
	Protocol     string          `json:"protocol"`
	Direction    string          `json:"direction"`
	IPRange      *string         `json:"ip_range"`
	DestPortFrom json.RawMessage `json:"dest_port_from"`
	DestPortTo   json.RawMessage `json:"dest_port_to"`
	Position     *uint32         `json:"position"`
	Editable     *bool           `json:"editable"`
	Zone         *string         `json:"zone"`
}

func optPort(name string, raw json.RawMessage) (*uint32, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var p uint32
	if err := json.Unmarshal(raw, &p); err != nil || p < 1 || p > 65535 {
		return nil, invalidArguments(argDetail{name, "constraint", "must be a port between 1 and 65535"})
	}
	return &p, nil
}

// normaliseRange echoes a range as the API does: host masks dropped, other
// CIDRs as sent.
func normaliseRange(name, v string) (string, error) {
	p, err := parsePrefix(v)
	if v == "" || err != nil {
		return "", invalidArguments(argDetail{name, "format", "must be an IP address or a CIDR"})
	}
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String(), nil
	}
	return v, nil
}

// toRule validates in; prefix names the argument in errors ("rules.0.").
func toRule(in ruleInput, prefix string) (sgRule, error) {
	r := sgRule{Protocol: in.Protocol, Direction: in.Direction, Action: in.Action}
	if !slices.Contains([]string{"TCP", "UDP", "ICMP", "ANY"}, r.Protocol) {
		return r, invalidArguments(argDetail{prefix + "protocol", "constraint", "must be TCP, UDP, ICMP or ANY"})
	}
	if !slices.Contains([]string{"inbound", "outbound"}, r.Direction) {
		return r, invalidArguments(argDetail{prefix + "direction", "constraint", "must be inbound or outbound"})
	}
	if !slices.Contains([]string{"accept", "drop"}, r.Action) {
		return r, invalidArguments(argDetail{prefix + "action", "constraint", "must be accept or drop"})
	}
	if in.IPRange == nil {
		return r, invalidArguments(argDetail{prefix + "ip_range", "required", "ip_range is required"})
	}
	rng, err := normaliseRange(prefix+"ip_range", *in.IPRange)
	if err != nil {
		return r, err
	}
	r.IPRange = rng
	from, err := optPort(prefix+"dest_port_from", in.DestPortFrom)
	if err != nil {
		return r, err
	}
	to, err := optPort(prefix+"dest_port_to", in.DestPortTo)
	if err != nil {
		return r, err
	}
	if r.Protocol == "ICMP" || r.Protocol == "ANY" {
		return r, nil // ports are meaningless and come back null
	}
	if from == nil && to != nil {
		return r, invalidArguments(argDetail{prefix + "dest_port_from", "required", "dest_port_to needs dest_port_from"})
	}
	if from != nil && to != nil && *to < *from {
		return r, invalidArguments(argDetail{prefix + "dest_port_to", "constraint", "must not be lower than dest_port_from"})
	}
	if to != nil && *to == *from {
		to = nil
	}
	r.PortFrom, r.PortTo = from, to
	return r, nil
}

type setRulesRequest struct {
	Rules *[]ruleInput `json:"rules"`
}

// setRules replaces the editable rules (PUT): rules named by an existing id
// keep it, others get new ids; editable:false entries are ignored;
// positions order the rules (0 = request order) and are renumbered from 1.
func (s *Sim) setRules(r *http.Request) (*reply, error) {
	g, err := s.sgByID(r)
	if err != nil {
		return nil, err
	}
	var req setRulesRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Rules == nil {
		return nil, invalidArguments(argDetail{"rules", "required", "rules is required"})
	}
	type positioned struct {
		rule sgRule
		pos  uint32
	}
	var next []positioned
	for i, in := range *req.Rules {
		if in.Editable != nil && !*in.Editable {
			continue
		}
		rule, err := toRule(in, fmt.Sprintf("rules.%d.", i))
		if err != nil {
			return nil, err
		}
		rule.ID = s.newID()
		if in.ID != nil && slices.ContainsFunc(g.Rules, func(o sgRule) bool { return o.ID == *in.ID }) {
			rule.ID = *in.ID
		}
		var pos uint32
		if in.Position != nil {
			pos = *in.Position
		}
		next = append(next, positioned{rule, pos})
	}
	slices.SortStableFunc(next, func(a, b positioned) int {
		switch {
		case a.pos == 0 || b.pos == 0:
			return 0
		case a.pos < b.pos:
			return -1
		case a.pos > b.pos:
			return 1
		}
		return 0
	})
	rules := make([]sgRule, 0, len(next))
	for _, p := range next {
		rules = append(rules, p.rule)
	}
	if !sameRules(g.Rules, rules) {
		g.Rules = rules
		s.changedSG(g)
	}
	return ok(map[string]any{"rules": allRules(g)})
}

// sameRules compares rule sets ignoring ids.
func sameRules(a, b []sgRule) bool {
	strip := func(rs []sgRule) string {
		c := slices.Clone(rs)
		for i := range c {
			c[i].ID = ""
		}
		j, _ := json.Marshal(c)
		return string(j)
	}
	return strip(a) == strip(b)
}

func (s *Sim) createRule(r *http.Request) (*reply, error) {
	g, err := s.sgByID(r)
	if err != nil {
		return nil, err
	}
	var in ruleInput
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	rule, err := toRule(in, "")
	if err != nil {
		return nil, err
	}
	rule.ID = s.newID()
	pos := len(g.Rules)
	if in.Position != nil && *in.Position > 0 && int(*in.Position) <= len(g.Rules) {
		pos = int(*in.Position) - 1
	}
	g.Rules = slices.Insert(g.Rules, pos, rule)
	s.changedSG(g)
	return &reply{status: http.StatusCreated, body: map[string]any{"rule": renderRule(rule, pos+1, true, g.Zone)}}, nil
}

// ruleByID finds a rule: editable ones by index, the SMTP ones read-only.
func (s *Sim) ruleByID(r *http.Request) (*securityGroup, int, *ruleJSON, error) {
	g, err := s.sgByID(r)
	if err != nil {
		return nil, 0, nil, err
	}
	id := r.PathValue("rule")
	for _, rj := range allRules(g) {
		if rj.ID == id {
			idx := -1
			if rj.Editable {
				idx = slices.IndexFunc(g.Rules, func(o sgRule) bool { return o.ID == id })
			}
			return g, idx, &rj, nil
		}
	}
	return nil, 0, nil, notFound("instance_security_group_rule", id)
}

func (s *Sim) getRule(r *http.Request) (*reply, error) {
	_, _, rj, err := s.ruleByID(r)
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"rule": rj})
}

func (s *Sim) updateRule(r *http.Request) (*reply, error) {
	g, idx, _, err := s.ruleByID(r)
	if err != nil {
		return nil, err
	}
	if idx < 0 {
		return nil, legacyInvalid("this rule is not editable")
	}
	var in ruleInput
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	cur := g.Rules[idx]
	merged := ruleInput{Action: cur.Action, Protocol: cur.Protocol, Direction: cur.Direction, IPRange: &cur.IPRange}
	if cur.PortFrom != nil {
		merged.DestPortFrom, _ = json.Marshal(*cur.PortFrom)
	}
	if cur.PortTo != nil {
		merged.DestPortTo, _ = json.Marshal(*cur.PortTo)
	}
	if in.Action != "" {
		merged.Action = in.Action
	}
	if in.Protocol != "" {
		merged.Protocol = in.Protocol
	}
	if in.Direction != "" {
		merged.Direction = in.Direction
	}
	if in.IPRange != nil {
		merged.IPRange = in.IPRange
	}
	if len(in.DestPortFrom) > 0 {
		merged.DestPortFrom = in.DestPortFrom
	}
	if len(in.DestPortTo) > 0 {
		merged.DestPortTo = in.DestPortTo
	}
	rule, err := toRule(merged, "")
	if err != nil {
		return nil, err
	}
	rule.ID = cur.ID
	g.Rules[idx] = rule
	if in.Position != nil && *in.Position > 0 {
		g.Rules = slices.Delete(g.Rules, idx, idx+1)
		idx = min(int(*in.Position)-1, len(g.Rules))
		g.Rules = slices.Insert(g.Rules, idx, rule)
	}
	s.changedSG(g)
	return ok(map[string]any{"rule": renderRule(rule, idx+1, true, g.Zone)})
}

func (s *Sim) deleteRule(r *http.Request) (*reply, error) {
	g, idx, _, err := s.ruleByID(r)
	if err != nil {
		return nil, err
	}
	if idx < 0 {
		return nil, legacyInvalid("this rule is not editable")
	}
	g.Rules = slices.Delete(g.Rules, idx, idx+1)
	s.changedSG(g)
	return noContent()
}
