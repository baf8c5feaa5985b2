package scwsim

import (
	"net/http"
	"slices"
	"strings"
)

type sizeRangeJSON struct {
	MinSize int64 `json:"min_size"`
	MaxSize int64 `json:"max_size"`
}

type capabilitiesJSON struct {
	BootTypes               []string `json:"boot_types"`
	PlacementGroups         bool     `json:"placement_groups"`
	BlockStorage            bool     `json:"block_storage"`
	HotSnapshotsLocalVolume bool     `json:"hot_snapshots_local_volume"`
	PrivateNetwork          int      `json:"private_network"`
	MaxFileSystems          int      `json:"max_file_systems"`
}

type interfaceJSON struct {
	InternalBandwidth int64 `json:"internal_bandwidth"`
	InternetBandwidth int64 `json:"internet_bandwidth"`
}

type networkJSON struct {
	IPv6Support          bool            `json:"ipv6_support"`
	SumInternalBandwidth int64           `json:"sum_internal_bandwidth"`
	SumInternetBandwidth int64           `json:"sum_internet_bandwidth"`
	Interfaces           []interfaceJSON `json:"interfaces"`
}

type serverTypeJSON struct {
	AltNames                      []string                 `json:"alt_names"`
	Arch                          string                   `json:"arch"`
	NCPUs                         int                      `json:"ncpus"`
	RAM                           int64                    `json:"ram"`
	GPU                           int                      `json:"gpu"`
	GPUInfo                       any                      `json:"gpu_info"`
	MigProfile                    any                      `json:"mig_profile"`
	VolumesConstraint             sizeRangeJSON            `json:"volumes_constraint"`
	PerVolumeConstraint           map[string]sizeRangeJSON `json:"per_volume_constraint"`
	ScratchStorageMaxSize         int64                    `json:"scratch_storage_max_size"`
	ScratchStorageMaxVolumesCount int                      `json:"scratch_storage_max_volumes_count"`
	MonthlyPrice                  float64                  `json:"monthly_price"`
	HourlyPrice                   float64                  `json:"hourly_price"`
	Capabilities                  capabilitiesJSON         `json:"capabilities"`
	Network                       networkJSON              `json:"network"`
	BlockBandwidth                int64                    `json:"block_bandwidth"`
	EndOfService                  bool                     `json:"end_of_service"`
}

func renderServerType(t serverType) serverTypeJSON {
	lssd := sizeRangeJSON{}
	if t.LocalVolumes {
		lssd = sizeRangeJSON{MinSize: 1e9, MaxSize: 800e9}
	}
	return serverTypeJSON{
		AltNames: []string{}, Arch: t.Arch, NCPUs: t.NCPUs, RAM: t.RAM,
		VolumesConstraint:   sizeRangeJSON{MaxSize: t.MaxLocal},
		PerVolumeConstraint: map[string]sizeRangeJSON{"l_ssd": lssd},
		MonthlyPrice:        t.MonthlyPrice, HourlyPrice: t.HourlyPrice,
		Capabilities: capabilitiesJSON{BootTypes: []string{"local", "rescue"}, PlacementGroups: true,
			BlockStorage: t.SBSCompatible, HotSnapshotsLocalVolume: t.HotSnapshots, PrivateNetwork: 8},
		Network: networkJSON{IPv6Support: true, SumInternalBandwidth: t.Bandwidth, SumInternetBandwidth: t.Bandwidth,
			Interfaces: []interfaceJSON{{InternalBandwidth: t.Bandwidth, InternetBandwidth: t.Bandwidth}}},
		BlockBandwidth: t.BlockBW,
	}
}

// listProducts answers GET /products/servers: a map keyed by commercial type,
// paginated the Instance way over the sorted names.
func (s *Sim) listProducts(r *http.Request) (*reply, error) {
	if _, err := s.zone(r); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(serverTypes))
	for _, t := range serverTypes {
		names = append(names, t.Name)
	}
	slices.SortFunc(names, strings.Compare)
	page, h, err := instancePage(r, names)
	if err != nil {
		return nil, err
	}
	out := map[string]serverTypeJSON{}
	for _, n := range page {
		t, _ := findServerType(n)
		out[n] = renderServerType(t)
	}
	return &reply{status: http.StatusOK, body: map[string]any{"servers": out}, header: h}, nil
}

func (s *Sim) productsAvailability(r *http.Request) (*reply, error) {
	if _, err := s.zone(r); err != nil {
		return nil, err
	}
	out := map[string]any{}
	for _, t := range serverTypes {
		out[t.Name] = map[string]string{"availability": "available"}
	}
	return ok(map[string]any{"servers": out, "total_count": len(out)})
}
