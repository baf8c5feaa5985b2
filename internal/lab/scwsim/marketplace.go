package scwsim

import (
	"net/http"
	"slices"
	"strings"
)

type localImageJSON struct {
	ID                        string   `json:"id"`
	Arch                      string   `json:"arch"`
	Zone                      string   `json:"zone"`
	CompatibleCommercialTypes []string `json:"compatible_commercial_types"`
	Label                     string   `json:"label"`
	Type                      string   `json:"type"`
}

func renderLocalImage(li localImage) localImageJSON {
	return localImageJSON{ID: li.ID, Arch: li.Arch, Zone: li.Zone,
		CompatibleCommercialTypes: slices.Clone(li.Compatible), Label: li.Label, Type: li.Type}
}

// listLocalImages answers GET /marketplace/v2/local-images. An unknown
// image_label is a 404 (not an empty list), type=unknown_type means any type,
// and order_by=type_asc puts instance_local before instance_sbs, so a lookup
// without a type resolves to an l_ssd image.
func (s *Sim) listLocalImages(r *http.Request) (*reply, error) {
	q := r.URL.Query()
	label := q.Get("image_label")
	if label != "" && !slices.ContainsFunc(distributions, func(d distribution) bool { return d.Label == label }) {
		return nil, notFound("MarketplaceImage", label)
	}
	typ := q.Get("type")
	if typ == "unknown_type" {
		typ = ""
	}
	var items []localImageJSON
	for _, li := range s.cat.localImages {
		switch {
		case label != "" && li.Label != label,
			q.Get("zone") != "" && li.Zone != q.Get("zone"),
			typ != "" && li.Type != typ,
			q.Get("arch") != "" && li.Arch != q.Get("arch"),
			q.Get("image_id") != "" && s.cat.mpImageIDs[li.Label] != q.Get("image_id"):
			continue
		}
		items = append(items, renderLocalImage(li))
	}
	if q.Get("order_by") == "type_desc" {
		slices.Reverse(items)
	}
	if items == nil {
		items = []localImageJSON{}
	}
	page, err := bodyPage(r, items)
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"local_images": page, "total_count": len(items)})
}

func (s *Sim) getLocalImage(r *http.Request) (*reply, error) {
	id := r.PathValue("id")
	i := slices.IndexFunc(s.cat.localImages, func(li localImage) bool { return li.ID == id })
	if i < 0 {
		return nil, notFound("LocalImage", id)
	}
	return ok(renderLocalImage(s.cat.localImages[i]))
}

type marketplaceImageJSON struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Logo        string   `json:"logo"`
	Categories  []string `json:"categories"`
	CreatedAt   string   `json:"created_at"`
	UpdatedAt   string   `json:"updated_at"`
	ValidUntil  *string  `json:"valid_until"`
	Label       string   `json:"label"`
}

func (s *Sim) renderMarketplaceImage(d distribution) marketplaceImageJSON {
	return marketplaceImageJSON{ID: s.cat.mpImageIDs[d.Label], Name: d.Marketplace,
		Description: d.Marketplace + " (lab stand-in catalogue)", Logo: "", Categories: []string{"distribution"},
		CreatedAt: blockTime(d.Released), UpdatedAt: blockTime(d.Released), Label: d.Label}
}

func (s *Sim) listMarketplaceImages(r *http.Request) (*reply, error) {
	q := r.URL.Query()
	var items []marketplaceImageJSON
	for _, d := range distributions {
		if q.Get("category") != "" && q.Get("category") != "distribution" {
			continue
		}
		items = append(items, s.renderMarketplaceImage(d))
	}
	slices.SortFunc(items, func(a, b marketplaceImageJSON) int { return strings.Compare(a.Name, b.Name) })
	page, err := bodyPage(r, items)
	if err != nil {
		return nil, err
	}
	return ok(map[string]any{"images": page, "total_count": len(items)})
}

func (s *Sim) getMarketplaceImage(r *http.Request) (*reply, error) {
	id := r.PathValue("id")
	for _, d := range distributions {
		if s.cat.mpImageIDs[d.Label] == id {
			return ok(s.renderMarketplaceImage(d))
		}
	}
	return nil, notFound("MarketplaceImage", id)
}
