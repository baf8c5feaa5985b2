package migrate

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
)

// Preflight is lghsctl migrate plan: every check a data move needs before
// it changes anything, read-only on both hosts.
type Preflight struct {
	Source    Source
	Target    *Target
	Databases []string
	StateDir  string
	Drop      bool
	// SourceTool, when set, is checked to exist on the source (mongodump).
	SourceHost Host
	SourceTool string
	// DataDir is the directory on the target whose file system receives
	// the database (the database service's volume); free space is checked
	// there.
	DataDir string
	// AppRunning reports whether the app runs on the target (nil: not
	// checked).
	AppRunning func(ctx context.Context) (bool, error)
	// UploadsDir on the source, when files kept on disk are copied too.
	UploadsDir string
	Log        *slog.Logger
}

// Check is one pre-flight finding.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// PlanReport is what the pre-flight found.
type PlanReport struct {
	Checks []Check `json:"checks"`
	// Collections per database, as the source reports them.
	Collections map[string][]CollInfo `json:"collections"`
	// Resumable lists collections an earlier run finished (db.coll).
	Resumable []string `json:"resumable,omitempty"`
	// TotalBytes is the source's data size (documents, without indexes),
	// UploadsBytes the files on disk.
	TotalBytes   int64 `json:"total_bytes"`
	UploadsBytes int64 `json:"uploads_bytes"`
	FreeBytes    int64 `json:"free_bytes"`
}

// OK reports whether every check passed.
func (r *PlanReport) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Failed lists the failed checks.
func (r *PlanReport) Failed() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name+": "+c.Detail)
		}
	}
	return out
}

func (r *PlanReport) add(name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

// Run runs every check; it returns an error only when a check could not
// be made at all (an unreachable host), else the report says what failed.
func (p *Preflight) Run(ctx context.Context) (*PlanReport, error) {
	log := logOrDiscard(p.Log)
	rep := &PlanReport{Collections: map[string][]CollInfo{}}
	if p.SourceTool != "" {
		out, err := p.SourceHost.run(ctx, "command -v "+q(p.SourceTool)+" && "+q(p.SourceTool)+" --version 2>&1 | head -n 2", nil)
		if err != nil {
			rep.add("source tool", false, "%s not found on %s: install the database tools there, or use source: driver (MongoDB 4.2+)", p.SourceTool, p.SourceHost.Name)
		} else {
			rep.add("source tool", true, "%s", strings.Join(strings.Fields(strings.ReplaceAll(string(out), "\n", " ")), " "))
		}
	}
	for _, db := range p.Databases {
		infos, err := p.Source.Collections(ctx, db)
		if err != nil {
			rep.add("source "+db, false, "%v", err)
			continue
		}
		var size, docs int64
		for _, ci := range infos {
			if skipNamespace(ci.Name, ci.Type) != "" {
				continue
			}
			size += ci.Size
			docs += ci.Count
		}
		rep.Collections[db] = infos
		rep.TotalBytes += size
		rep.add("source "+db, len(infos) > 0, "%d collections, %d documents, %s on %s", len(infos), docs, humanBytes(size), p.Source.Name())
	}
	if p.UploadsDir != "" {
		out, err := p.SourceHost.run(ctx, "du -sk "+q(p.UploadsDir)+" && find "+q(p.UploadsDir)+" -type f | wc -l", nil)
		if err != nil {
			rep.add("uploads", false, "%s on %s: %v", p.UploadsDir, p.SourceHost.Name, err)
		} else {
			f := strings.Fields(string(out))
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			rep.UploadsBytes = kb * 1024
			rep.add("uploads", true, "%s files, %s in %s", f[len(f)-1], humanBytes(rep.UploadsBytes), p.UploadsDir)
		}
	}

	if p.AppRunning != nil {
		running, err := p.AppRunning(ctx)
		switch {
		case err != nil:
			rep.add("app stopped", false, "cannot tell whether the app runs on %s: %v", p.Target.Host.Name, err)
		case running:
			rep.add("app stopped", false, "the app runs on %s: stop it first (state: stopped in the inventory, then lghsctl up); during a restore it re-indexes and runs out of memory", p.Target.Host.Name)
		default:
			rep.add("app stopped", true, "the app is stopped on %s", p.Target.Host.Name)
		}
	}

	if p.DataDir != "" {
		// The nearest existing directory: the volume may not exist yet.
		out, err := p.Target.Host.run(ctx, "d="+q(p.DataDir)+"; while [ ! -e \"$d\" ]; do d=$(dirname \"$d\"); done; df -Pk \"$d\" | tail -n 1", nil)
		f := strings.Fields(string(out))
		if err != nil || len(f) < 4 {
			rep.add("free disk", false, "df %s on %s: %v", p.DataDir, p.Target.Host.Name, err)
		} else {
			kb, _ := strconv.ParseInt(f[3], 10, 64)
			rep.FreeBytes = kb * 1024
			// Documents, their indexes (about a third more for chat data),
			// the uploads and a margin.
			need := (rep.TotalBytes*4/3 + rep.UploadsBytes) * 11 / 10
			rep.add("free disk", rep.FreeBytes >= need, "%s free on %s for about %s (data, indexes, uploads, 10%% margin)", humanBytes(rep.FreeBytes), p.Target.Host.Name, humanBytes(need))
		}
	}

	tc, err := connect(ctx, p.Target.Host, p.Target.URI, log, connectOptions{})
	if err != nil {
		rep.add("target database", false, "%v", err)
		return rep, nil
	}
	defer tc.Close(ctx)
	if err := ensureWritable(ctx, tc, p.Target.Host.Name); err != nil {
		rep.add("target writable", false, "%v", err)
	} else {
		rep.add("target writable", true, "the database on %s accepts writes", p.Target.Host.Name)
	}
	st, err := newStateStore(p.Target.Host, p.StateDir).loadData(ctx)
	if err != nil {
		return nil, err
	}
	if st.Source != "" && st.Source != p.Source.ID() {
		rep.add("resume state", false, "%s holds a move from %q, not %q: give --restart", p.Target.Host.Name, st.Source, p.Source.ID())
	}
	for _, db := range p.Databases {
		tcolls, err := targetCollections(ctx, tc.client.Database(db))
		if err != nil {
			rep.add("target "+db, false, "%v", err)
			continue
		}
		done, ours := resumable(st, db, tcolls)
		for _, d := range done {
			rep.Resumable = append(rep.Resumable, db+"."+d)
		}
		var foreign []string
		for name, c := range tcolls {
			if !ours[name] && c.count > 0 {
				foreign = append(foreign, name)
			}
		}
		sort.Strings(foreign)
		switch {
		case len(foreign) == 0 && len(done) > 0:
			rep.add("target "+db, true, "%d collections already copied by an earlier run will be kept", len(done))
		case len(foreign) == 0:
			rep.add("target "+db, true, "empty")
		case p.Drop:
			rep.add("target "+db, true, "not empty (%s): --drop replaces it", strings.Join(foreign, ", "))
		default:
			rep.add("target "+db, false, "not empty (%s): give --drop to replace it", strings.Join(foreign, ", "))
		}
	}
	return rep, nil
}
