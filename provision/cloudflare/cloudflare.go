// Package cloudflare is provision's adapter to the Cloudflare API v4: token
// verification, zone lookup and DNS records (A, AAAA, and CAA for the
// certificate phase), over cloudflare-go v7's dns
// and zones services only (its root package would pull ~130 packages into
// the binary).
//
// The base URL and the token are given explicitly (the CLI reads
// CLOUDFLARE_BASE_URL and the inventory's token reference); the SDK's own
// retries are off, the caller's HTTP client (provision/httpretry) is the
// single retry layer, so that a create is never resent blindly.
package cloudflare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	cfdns "github.com/cloudflare/cloudflare-go/v7/dns"
	"github.com/cloudflare/cloudflare-go/v7/option"
	"github.com/cloudflare/cloudflare-go/v7/zones"

	"github.com/lghs/lghsctl/provision"
)

// DefaultBaseURL is Cloudflare's API.
const DefaultBaseURL = "https://api.cloudflare.com/client/v4/"

// Config builds a Client.
type Config struct {
	// BaseURL of the API (DefaultBaseURL when empty).
	BaseURL string
	// Token is an API token (Bearer).
	Token string
	// HTTPClient does the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// Client implements provision.DNS.
type Client struct {
	base    string
	token   string
	http    *http.Client
	records *cfdns.RecordService
	zones   *zones.ZoneService
}

// New returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Token == "" {
		return nil, errors.New("cloudflare: no API token")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	opts := []option.RequestOption{option.WithBaseURL(base), option.WithAPIToken(cfg.Token),
		option.WithHTTPClient(hc), option.WithMaxRetries(0)}
	return &Client{base: base, token: cfg.Token, http: hc,
		records: cfdns.NewRecordService(opts...), zones: zones.NewZoneService(opts...)}, nil
}

// apiErr turns an SDK error into a *provision.APIError.
func apiErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ce *cfdns.Error
	if !errors.As(err, &ce) {
		return &provision.APIError{API: "cloudflare", Err: err, Message: err.Error()}
	}
	var msgs []string
	notFound := ce.StatusCode == http.StatusNotFound
	for _, e := range ce.Errors {
		msgs = append(msgs, fmt.Sprintf("%s (%d)", e.Message, e.Code))
		if e.Code == 81044 {
			notFound = true
		}
	}
	out := &provision.APIError{API: "cloudflare", Status: ce.StatusCode, Message: strings.Join(msgs, "; "), Err: err}
	if out.Message == "" {
		out.Message = http.StatusText(ce.StatusCode)
	}
	if notFound {
		out.Err = fmt.Errorf("%w: %v", provision.ErrNotFound, err)
	}
	return out
}

// Verify implements provision.DNS: GET /user/tokens/verify.
func (c *Client) Verify(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"user/tokens/verify", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &provision.APIError{API: "cloudflare", Err: err, Message: err.Error()}
	}
	defer resp.Body.Close()
	var env struct {
		Success bool `json:"success"`
		Errors  []struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
		Result struct {
			Status string `json:"status"`
		} `json:"result"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := json.Unmarshal(body, &env); err != nil {
		return &provision.APIError{API: "cloudflare", Status: resp.StatusCode, Message: "unreadable answer to token verification", Err: err}
	}
	if resp.StatusCode != http.StatusOK || !env.Success {
		var msgs []string
		for _, e := range env.Errors {
			msgs = append(msgs, fmt.Sprintf("%s (%d)", e.Message, e.Code))
		}
		msg := strings.Join(msgs, "; ")
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return &provision.APIError{API: "cloudflare", Status: resp.StatusCode, Message: "the token was refused: " + msg,
			Err: errors.New(msg)}
	}
	if env.Result.Status != "active" {
		return fmt.Errorf("the token is %s, not active", env.Result.Status)
	}
	return nil
}

// Zone implements provision.DNS.
func (c *Client) Zone(ctx context.Context, name string) (provision.Zone, error) {
	var p zones.ZoneListParams
	p.Name.Value, p.Name.Present = name, true
	page, err := c.zones.List(ctx, p)
	if err != nil {
		return provision.Zone{}, apiErr(err)
	}
	for _, z := range page.Result {
		if strings.EqualFold(z.Name, name) {
			return provision.Zone{ID: z.ID, Name: z.Name, Permissions: z.Permissions}, nil
		}
	}
	return provision.Zone{}, fmt.Errorf("zone %s: %w", name, provision.ErrNotFound)
}

func toRecord(r cfdns.RecordResponse) provision.Record {
	return provision.Record{ID: r.ID, Name: r.Name, Type: string(r.Type), Content: r.Content, TTL: int(r.TTL),
		Proxied: r.Proxied, Comment: r.Comment}
}

// Records implements provision.DNS.
func (c *Client) Records(ctx context.Context, zoneID string) ([]provision.Record, error) {
	var p cfdns.RecordListParams
	p.ZoneID.Value, p.ZoneID.Present = zoneID, true
	p.PerPage.Value, p.PerPage.Present = 1000, true
	pager := c.records.ListAutoPaging(ctx, p)
	var out []provision.Record
	for pager.Next() {
		out = append(out, toRecord(pager.Current()))
	}
	if err := pager.Err(); err != nil {
		return nil, apiErr(err)
	}
	return out, nil
}

// body builds the body of an A, AAAA or CAA record (CAA content in
// presentation form, sent as structured data).
func body(r provision.Record) (cfdns.RecordNewParamsBodyUnion, cfdns.RecordUpdateParamsBodyUnion, error) {
	ttl := cfdns.TTL(r.TTL)
	switch r.Type {
	case "A":
		var b cfdns.ARecordParam
		b.Name.Value, b.Name.Present = r.Name, true
		b.Type.Value, b.Type.Present = cfdns.ARecordTypeA, true
		b.Content.Value, b.Content.Present = r.Content, true
		b.TTL.Value, b.TTL.Present = ttl, true
		b.Proxied.Value, b.Proxied.Present = r.Proxied, true
		b.Comment.Value, b.Comment.Present = r.Comment, true
		return b, b, nil
	case "AAAA":
		var b cfdns.AAAARecordParam
		b.Name.Value, b.Name.Present = r.Name, true
		b.Type.Value, b.Type.Present = cfdns.AAAARecordTypeAAAA, true
		b.Content.Value, b.Content.Present = r.Content, true
		b.TTL.Value, b.TTL.Present = ttl, true
		b.Proxied.Value, b.Proxied.Present = r.Proxied, true
		b.Comment.Value, b.Comment.Present = r.Comment, true
		return b, b, nil
	case "CAA":
		flags, tag, value, err := parseCAA(r.Content)
		if err != nil {
			return nil, nil, err
		}
		var d cfdns.CAARecordDataParam
		d.Flags.Value, d.Flags.Present = float64(flags), true
		d.Tag.Value, d.Tag.Present = tag, true
		d.Value.Value, d.Value.Present = value, true
		var b cfdns.CAARecordParam
		b.Name.Value, b.Name.Present = r.Name, true
		b.Type.Value, b.Type.Present = cfdns.CAARecordTypeCAA, true
		b.TTL.Value, b.TTL.Present = ttl, true
		b.Comment.Value, b.Comment.Present = r.Comment, true
		b.Data.Value, b.Data.Present = d, true
		return b, b, nil
	}
	return nil, nil, fmt.Errorf("record type %s is not managed by lghsctl", r.Type)
}

// parseCAA reads a CAA record in presentation form: 0 issue "letsencrypt.org".
func parseCAA(content string) (uint8, string, string, error) {
	flags, rest, ok1 := strings.Cut(strings.TrimSpace(content), " ")
	tag, value, ok2 := strings.Cut(strings.TrimSpace(rest), " ")
	f, err := strconv.ParseUint(flags, 10, 8)
	if !ok1 || !ok2 || err != nil {
		return 0, "", "", fmt.Errorf("CAA content %q is not `flags tag \"value\"`", content)
	}
	if v, err := strconv.Unquote(strings.TrimSpace(value)); err == nil {
		value = v
	}
	return uint8(f), tag, value, nil
}

// CreateRecord implements provision.DNS.
func (c *Client) CreateRecord(ctx context.Context, zoneID string, r provision.Record) (provision.Record, error) {
	nb, _, err := body(r)
	if err != nil {
		return provision.Record{}, err
	}
	var p cfdns.RecordNewParams
	p.ZoneID.Value, p.ZoneID.Present = zoneID, true
	p.Body = nb
	res, err := c.records.New(ctx, p)
	if err != nil {
		return provision.Record{}, apiErr(err)
	}
	return toRecord(*res), nil
}

// UpdateRecord implements provision.DNS (PUT: the whole record).
func (c *Client) UpdateRecord(ctx context.Context, zoneID, id string, r provision.Record) (provision.Record, error) {
	_, ub, err := body(r)
	if err != nil {
		return provision.Record{}, err
	}
	var p cfdns.RecordUpdateParams
	p.ZoneID.Value, p.ZoneID.Present = zoneID, true
	p.Body = ub
	res, err := c.records.Update(ctx, id, p)
	if err != nil {
		return provision.Record{}, apiErr(err)
	}
	return toRecord(*res), nil
}

// DeleteRecord implements provision.DNS; a record already gone is not an
// error.
func (c *Client) DeleteRecord(ctx context.Context, zoneID, id string) error {
	var p cfdns.RecordDeleteParams
	p.ZoneID.Value, p.ZoneID.Present = zoneID, true
	_, err := c.records.Delete(ctx, id, p)
	if err = apiErr(err); errors.Is(err, provision.ErrNotFound) {
		return nil
	}
	return err
}

var _ provision.DNS = (*Client)(nil)
