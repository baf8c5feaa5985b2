package scwsim

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// FakeMachines is an in-memory Machines: addresses come from documentation
// style pools (51.158.0.0/16, 2001:bc8:710::/48 in /64s), a layer is a map of
// file path to content, and machines are records. Tests use it to check
// what the stand-in asked of the lab.
type FakeMachines struct {
	mu       sync.Mutex
	next4    netip.Addr
	next6    uint16
	used     map[netip.Prefix]bool
	layers   map[string]*FakeLayer
	machines map[string]*FakeMachine
	ops      []string

	// StartDelay makes Start take this long (a boot).
	StartDelay time.Duration
	// StartErr, when set, makes Start fail for every machine.
	StartErr error
}

// FakeLayer is a disk layer of FakeMachines.
type FakeLayer struct {
	Image string
	Files map[string]string
}

// FakeMachine is a machine of FakeMachines.
type FakeMachine struct {
	Spec     MachineSpec
	Running  bool
	Starts   int
	Firewall Firewall
}

// NewFakeMachines returns an empty FakeMachines.
func NewFakeMachines() *FakeMachines {
	return &FakeMachines{
		next4:    netip.MustParseAddr("51.158.0.10"),
		used:     map[netip.Prefix]bool{},
		layers:   map[string]*FakeLayer{},
		machines: map[string]*FakeMachine{},
	}
}

func newAddressOnlyMachines() Machines { return NewFakeMachines() }

func (f *FakeMachines) record(format string, args ...any) {
	f.ops = append(f.ops, fmt.Sprintf(format, args...))
}

// AllocateIPv4 hands out the next free address of 51.158.0.0/16.
func (f *FakeMachines) AllocateIPv4(context.Context) (netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range 1 << 16 {
		a := f.next4
		f.next4 = f.next4.Next()
		if !netip.MustParsePrefix("51.158.0.0/16").Contains(f.next4) {
			f.next4 = netip.MustParseAddr("51.158.0.10")
		}
		if p := netip.PrefixFrom(a, 32); !f.used[p] {
			f.used[p] = true
			f.record("allocate %s", p)
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("allocate ipv4: pool 51.158.0.0/16 exhausted")
}

// AllocateIPv6Prefix hands out the next free /64 of 2001:bc8:710::/48.
func (f *FakeMachines) AllocateIPv6Prefix(context.Context) (netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range 1 << 16 {
		f.next6++
		b := netip.MustParseAddr("2001:bc8:710::").As16()
		b[6], b[7] = byte(f.next6>>8), byte(f.next6)
		p := netip.PrefixFrom(netip.AddrFrom16(b), 64)
		if !f.used[p] {
			f.used[p] = true
			f.record("allocate %s", p)
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("allocate ipv6 prefix: pool 2001:bc8:710::/48 exhausted")
}

// ReleaseAddress frees an address or prefix.
func (f *FakeMachines) ReleaseAddress(_ context.Context, p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.used, p)
	f.record("release %s", p)
	return nil
}

// CreateLayer makes a layer, empty or a copy of another one.
func (f *FakeMachines) CreateLayer(_ context.Context, id string, src LayerSource) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := &FakeLayer{Image: src.Image, Files: map[string]string{}}
	if src.From != "" {
		from := f.layers[src.From]
		if from == nil {
			return fmt.Errorf("create layer %s: source layer %s does not exist", id, src.From)
		}
		l.Image, l.Files = from.Image, maps.Clone(from.Files)
	}
	f.layers[id] = l
	f.record("create-layer %s from=%s image=%s", id, src.From, src.Image)
	return nil
}

// DeleteLayer removes a layer.
func (f *FakeMachines) DeleteLayer(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.layers, id)
	f.record("delete-layer %s", id)
	return nil
}

// Start boots a machine after StartDelay.
func (f *FakeMachines) Start(ctx context.Context, spec MachineSpec) error {
	if f.StartDelay > 0 {
		select {
		case <-time.After(f.StartDelay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("start %s", spec.ID)
	if f.StartErr != nil {
		return f.StartErr
	}
	for _, l := range spec.Layers {
		if f.layers[l] == nil {
			return fmt.Errorf("start machine %s: layer %s does not exist", spec.ID, l)
		}
	}
	m := f.machines[spec.ID]
	if m == nil {
		m = &FakeMachine{}
		f.machines[spec.ID] = m
	}
	m.Spec, m.Running, m.Firewall = spec, true, spec.Firewall
	m.Starts++
	return nil
}

// Stop halts a machine.
func (f *FakeMachines) Stop(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("stop %s", id)
	if m := f.machines[id]; m != nil {
		m.Running = false
	}
	return nil
}

// Remove forgets a machine.
func (f *FakeMachines) Remove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("remove %s", id)
	delete(f.machines, id)
	return nil
}

// SetFirewall records a machine's new policy.
func (f *FakeMachines) SetFirewall(_ context.Context, id string, fw Firewall) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("firewall %s", id)
	m := f.machines[id]
	if m == nil {
		return fmt.Errorf("set firewall of machine %s: no such machine", id)
	}
	m.Firewall = fw
	return nil
}

// Machine returns a copy of a machine's record.
func (f *FakeMachines) Machine(id string) (FakeMachine, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.machines[id]
	if m == nil {
		return FakeMachine{}, false
	}
	return *m, true
}

// WriteFile writes a file into a layer, as a process on the machine would.
func (f *FakeMachines) WriteFile(layer, path, content string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.layers[layer]
	if l == nil {
		return fmt.Errorf("write %s in layer %s: no such layer", path, layer)
	}
	l.Files[path] = content
	return nil
}

// ReadFile reads a file of a layer.
func (f *FakeMachines) ReadFile(layer, path string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.layers[layer]
	if l == nil {
		return "", false
	}
	c, found := l.Files[path]
	return c, found
}

// Layers lists the existing layers, sorted.
func (f *FakeMachines) Layers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.layers))
}

// LayerImage returns the image label a layer descends from.
func (f *FakeMachines) LayerImage(id string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.layers[id]
	if l == nil {
		return "", false
	}
	return l.Image, true
}

// Ops returns the operations performed so far, oldest first.
func (f *FakeMachines) Ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ops)
}
