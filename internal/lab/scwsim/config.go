package scwsim

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"
)

// Config configures a Sim. Only SecretKeys and Projects are required.
type Config struct {
	// SecretKeys are the accepted X-Auth-Token values (UUIDs, as Scaleway
	// secret keys are).
	SecretKeys []string
	// Projects are the projects these keys may use. Every project gets its
	// "Default security group" at start.
	Projects []Project
	// Zones are the Instance/Block zones served; default fr-par-1, fr-par-2,
	// nl-ams-1, pl-waw-1.
	Zones []string
	// Machines makes powered-on servers real hosts; nil means servers only
	// exist as API objects (NewFakeMachines is a ready in-memory choice).
	Machines Machines
	// Timings are the minimum durations of transient states.
	Timings Timings
	// Clock gives the time; nil means the wall clock.
	Clock Clock
	// StateFile, when set, is where the state is persisted (JSON) after every
	// write and loaded from at start.
	StateFile string
	// AdminToken, when set, must be sent as X-Scwsim-Admin-Token to the admin
	// endpoints under /_scwsim/.
	AdminToken string
	// Log receives the stand-in's own log (machine failures, ...); nil
	// discards it.
	Log *slog.Logger
	// Seed makes generated ids, MAC addresses and injected faults
	// reproducible; 0 picks a random seed.
	Seed uint64
}

// Project is a Scaleway project the stand-in serves.
type Project struct {
	ID string
	// OrganizationID defaults to ID (as in every recording).
	OrganizationID string
	// Name, as the Account API lists it; defaults to "default" (the name
	// of every organization's first project).
	Name string
}

// Timings are minimum durations: a transient state ends when its duration is
// over and the machine work behind it (boot, copy, removal) is done.
type Timings struct {
	ServerStart     time.Duration // stopped → starting → running
	ServerStop      time.Duration // running → stopping → stopped
	ServerTerminate time.Duration // running → stopping (terminating) → gone
	ServerReboot    time.Duration // running → stopping → starting → running
	Snapshot        time.Duration // instance snapshot snapshotting → available
	BlockSnapshot   time.Duration // block snapshot creating → available
	SGSync          time.Duration // security group syncing → available
	IPAttach        time.Duration // IP pending → attached on a running server
}

// RealisticTimings are durations in the range the recordings show.
func RealisticTimings() Timings {
	return Timings{
		ServerStart:     10 * time.Second,
		ServerStop:      15 * time.Second,
		ServerTerminate: 5 * time.Second,
		ServerReboot:    15 * time.Second,
		Snapshot:        45 * time.Second,
		BlockSnapshot:   30 * time.Second,
		SGSync:          time.Second,
		IPAttach:        3 * time.Second,
	}
}

// FastTimings keep every transient state observable for a short while; for
// tests with the wall clock.
func FastTimings() Timings {
	return Timings{
		ServerStart:     100 * time.Millisecond,
		ServerStop:      100 * time.Millisecond,
		ServerTerminate: 50 * time.Millisecond,
		ServerReboot:    100 * time.Millisecond,
		Snapshot:        150 * time.Millisecond,
		BlockSnapshot:   150 * time.Millisecond,
		SGSync:          50 * time.Millisecond,
		IPAttach:        50 * time.Millisecond,
	}
}

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// ManualClock is a Clock that only moves when told to.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a clock stopped at start.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{now: start} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func (c *Config) validate() error {
	if len(c.SecretKeys) == 0 {
		return errors.New("validate scwsim config: no secret key")
	}
	for _, k := range c.SecretKeys {
		if !uuidRE.MatchString(k) {
			return fmt.Errorf("validate scwsim config: secret key %q is not a UUID", k)
		}
	}
	if len(c.Projects) == 0 {
		return errors.New("validate scwsim config: no project")
	}
	for i, p := range c.Projects {
		if !uuidRE.MatchString(p.ID) {
			return fmt.Errorf("validate scwsim config: project id %q is not a UUID", p.ID)
		}
		if p.OrganizationID == "" {
			c.Projects[i].OrganizationID = p.ID
		}
		if p.Name == "" {
			c.Projects[i].Name = "default"
		}
	}
	if len(c.Zones) == 0 {
		c.Zones = []string{"fr-par-1", "fr-par-2", "nl-ams-1", "pl-waw-1"}
	}
	if c.Clock == nil {
		c.Clock = wallClock{}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}
