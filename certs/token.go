package certs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/lghs/lghsctl/inventory"
)

// TokenScope is what VerifyToken found a Cloudflare token may do.
type TokenScope struct {
	// ZoneID is the ID of the zone the token was checked against.
	ZoneID string
	// Zones are the names of every zone the token can read, sorted.
	Zones []string
}

// OneZone reports whether the token reaches no zone but its own, as
// Cloudflare recommends for a DNS-01 token kept on a server.
func (t TokenScope) OneZone() bool { return len(t.Zones) == 1 }

// VerifyToken checks a Cloudflare API token before it is used or copied:
// it is active (/user/tokens/verify), it can read the zone (Zone:Read) and
// its DNS records (DNS:Read, implied by DNS:Edit, which cannot be checked
// without writing). It reports which zones the token reaches. Errors say
// what the token lacks, never what it is.
func VerifyToken(ctx context.Context, s Settings, token inventory.Secret, zone string) (TokenScope, error) {
	s = s.withDefaults()
	c := cfClient{base: s.CloudflareURL, token: token, http: s.httpClient()}
	fail := func(format string, args ...any) (TokenScope, error) {
		return TokenScope{}, fmt.Errorf("cloudflare token for %s: "+format, append([]any{zone}, args...)...)
	}
	var v struct {
		Status string `json:"status"`
	}
	if err := c.get(ctx, "/user/tokens/verify", &v); err != nil {
		return fail("%w", err)
	}
	if v.Status != "active" {
		return fail("status is %q, not active", v.Status)
	}
	var zones []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := c.get(ctx, "/zones?per_page=50", &zones); err != nil {
		return fail("cannot list zones (it needs Zone:Read on %s): %w", zone, err)
	}
	var scope TokenScope
	for _, z := range zones {
		scope.Zones = append(scope.Zones, z.Name)
		if strings.EqualFold(z.Name, zone) {
			scope.ZoneID = z.ID
		}
	}
	slices.Sort(scope.Zones)
	if scope.ZoneID == "" {
		return fail("the zone is not among the zones it can read (%s)", strings.Join(scope.Zones, ", "))
	}
	var recs []json.RawMessage
	if err := c.get(ctx, "/zones/"+url.PathEscape(scope.ZoneID)+"/dns_records?per_page=5", &recs); err != nil {
		return fail("cannot read DNS records (it needs DNS:Edit on %s): %w", zone, err)
	}
	return scope, nil
}

// cfClient is the little of the Cloudflare API v4 the token check needs.
type cfClient struct {
	base  string
	token inventory.Secret
	http  *http.Client
}

func (c cfClient) get(ctx context.Context, path string, result any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token.Reveal())
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	var env struct {
		Success bool `json:"success"`
		Errors  []struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: status %d, not a Cloudflare API answer", path, resp.StatusCode)
	}
	if !env.Success || resp.StatusCode >= 300 {
		var msgs []string
		for _, e := range env.Errors {
			msgs = append(msgs, fmt.Sprintf("%d %s", e.Code, e.Message))
		}
		return fmt.Errorf("GET %s: status %d: %s", path, resp.StatusCode, strings.Join(msgs, "; "))
	}
	if result != nil {
		if err := json.Unmarshal(env.Result, result); err != nil {
			return fmt.Errorf("GET %s: decode result: %w", path, err)
		}
	}
	return nil
}
