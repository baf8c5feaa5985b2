package hostsetup

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lghs/lghsctl/appstack"
)

// FactsRequest lists what the tasks of a run will look at.
type FactsRequest struct {
	// Paths are files, directories or symlinks whose type, mode, owner,
	// group and (for files) SHA-256 are wanted.
	Paths []string
	// Packages are Debian packages whose installed version is wanted.
	Packages []string
	// Units are systemd units whose enablement and activity are wanted.
	Units []string
	// Users are accounts whose existence is wanted.
	Users []string
	// Projects are docker compose projects whose containers are wanted.
	Projects []string
}

// PathFact is what the host has at a path.
type PathFact struct {
	// Type is "file", "dir", "link" or "" when nothing is there.
	Type   string
	Mode   uint32
	Owner  string
	Group  string
	SHA256 string // files only
	Target string // links only
}

// Exists reports whether anything is at the path.
func (p PathFact) Exists() bool { return p.Type != "" }

// UnitFact is a systemd unit's state.
type UnitFact struct {
	Enabled string // UnitFileState: enabled, disabled, static, "" if unknown
	Active  string // ActiveState: active, inactive, failed, ...
}

// Facts is what one gathering found.
type Facts struct {
	OSID, OSVersion, Codename string
	// Packages maps installed packages to their version.
	Packages map[string]string
	Paths    map[string]PathFact
	Units    map[string]UnitFact
	Users    map[string]bool
	// AptListsAge is how old the apt package lists are.
	AptListsAge time.Duration
	// Upgradable is how many packages apt-get dist-upgrade would change,
	// or -1 when not asked.
	Upgradable int
	// Containers maps compose projects to their containers by service.
	Containers map[string]map[string]appstack.Container
}

// Path returns the fact for a path (zero when it was not requested or is
// missing).
func (f *Facts) Path(p string) PathFact { return f.Paths[p] }

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// quote quotes s for /bin/sh.
func quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:=@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quote(s)
	}
	return strings.Join(q, " ")
}

// factsScript builds the one shell script that gathers every fact. Its
// output is line-oriented and tab-separated; see parseFacts.
func factsScript(req FactsRequest) string {
	var b strings.Builder
	b.WriteString("LC_ALL=C; export LC_ALL\n")
	b.WriteString(`if [ -r /etc/os-release ]; then . /etc/os-release; fi; printf 'os\t%s\t%s\t%s\n' "${ID:-}" "${VERSION_ID:-}" "${VERSION_CODENAME:-}"` + "\n")
	b.WriteString(`printf 'now\t%s\n' "$(date +%s)"` + "\n")
	// The age of the newest package list (a fresh debootstrap or cloud
	// image has the lists directory but no lists).
	b.WriteString(`printf 'aptlists\t%s\n' "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -printf '%T@\n' 2>/dev/null | sort -n | tail -1 | cut -d. -f1)"` + "\n")
	if paths := dedupe(req.Paths); len(paths) > 0 {
		ps := quoteAll(paths)
		fmt.Fprintf(&b, "stat -c 'path\t%%n\t%%F\t%%a\t%%U\t%%G' -- %s 2>/dev/null\n", ps)
		fmt.Fprintf(&b, "for p in %s; do if [ -f \"$p\" ] && [ ! -L \"$p\" ]; then printf 'sha\\t%%s\\t%%s\\n' \"$p\" \"$(sha256sum < \"$p\" | cut -d' ' -f1)\"; elif [ -L \"$p\" ]; then printf 'link\\t%%s\\t%%s\\n' \"$p\" \"$(readlink \"$p\")\"; fi; done\n", ps)
	}
	if pkgs := dedupe(req.Packages); len(pkgs) > 0 {
		fmt.Fprintf(&b, "dpkg-query -W -f='pkg\\t${Package}\\t${db:Status-Abbrev}\\t${Version}\\n' -- %s 2>/dev/null\n", quoteAll(pkgs))
	}
	if units := dedupe(req.Units); len(units) > 0 {
		fmt.Fprintf(&b, "systemctl show --property=Id,UnitFileState,ActiveState -- %s 2>/dev/null | sed 's/^/unit\\t/'\n", quoteAll(units))
	}
	if users := dedupe(req.Users); len(users) > 0 {
		fmt.Fprintf(&b, "getent passwd %s | cut -d: -f1 | sed 's/^/user\\t/'\n", quoteAll(users))
	}
	if projects := dedupe(req.Projects); len(projects) > 0 {
		b.WriteString("if command -v docker >/dev/null 2>&1; then\n")
		for _, p := range projects {
			fmt.Fprintf(&b, "printf 'project\\t%%s\\n' %s; %s\n", quote(p), appstack.ContainersCommand(p))
		}
		b.WriteString("fi\n")
	}
	b.WriteString("exit 0\n")
	return b.String()
}

// Gather runs the facts script on the host: one remote command.
func Gather(ctx context.Context, h Host, req FactsRequest) (*Facts, error) {
	out, err := h.Run(ctx, factsScript(req), nil)
	if err != nil {
		return nil, fmt.Errorf("gather facts: %w", err)
	}
	return parseFacts(out)
}

func parseFacts(out []byte) (*Facts, error) {
	f := &Facts{
		Packages:   map[string]string{},
		Paths:      map[string]PathFact{},
		Units:      map[string]UnitFact{},
		Users:      map[string]bool{},
		Upgradable: -1,
		Containers: map[string]map[string]appstack.Container{},
	}
	project := ""
	var projectLines [][]byte
	var now, lists int64
	block := map[string]string{}
	flushUnit := func() {
		if id := block["Id"]; id != "" {
			f.Units[id] = UnitFact{Enabled: block["UnitFileState"], Active: block["ActiveState"]}
		}
		clear(block)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		switch fields[0] {
		case "os":
			if len(fields) == 4 {
				f.OSID, f.OSVersion, f.Codename = fields[1], fields[2], fields[3]
			}
		case "now":
			now, _ = strconv.ParseInt(fields[1], 10, 64)
		case "aptlists":
			lists, _ = strconv.ParseInt(fields[1], 10, 64)
		case "path":
			if len(fields) != 6 {
				continue
			}
			mode, _ := strconv.ParseUint(fields[3], 8, 32)
			pf := f.Paths[fields[1]]
			pf.Mode, pf.Owner, pf.Group = uint32(mode), fields[4], fields[5]
			switch fields[2] {
			case "regular file", "regular empty file":
				pf.Type = "file"
			case "directory":
				pf.Type = "dir"
			case "symbolic link":
				pf.Type = "link"
			default:
				pf.Type = "other"
			}
			f.Paths[fields[1]] = pf
		case "sha":
			if len(fields) == 3 {
				pf := f.Paths[fields[1]]
				pf.SHA256 = fields[2]
				f.Paths[fields[1]] = pf
			}
		case "link":
			if len(fields) == 3 {
				pf := f.Paths[fields[1]]
				pf.Target = fields[2]
				f.Paths[fields[1]] = pf
			}
		case "pkg":
			// db:Status-Abbrev is "ii " for an installed package.
			if len(fields) == 4 && strings.HasPrefix(fields[2], "ii") {
				f.Packages[fields[1]] = fields[3]
			}
		case "unit":
			// systemctl show prints one block of properties per unit, in
			// its own property order, blocks separated by empty lines.
			if len(fields) != 2 || fields[1] == "" {
				flushUnit()
				continue
			}
			k, v, _ := strings.Cut(fields[1], "=")
			block[k] = v
		case "project":
			if project != "" {
				f.Containers[project] = appstack.ParseContainers(bytes.Join(projectLines, []byte("\n")))
			}
			project, projectLines = fields[1], nil
		case "ctr":
			projectLines = append(projectLines, append([]byte(nil), sc.Bytes()...))
		case "user":
			if len(fields) == 2 {
				f.Users[fields[1]] = true
			}
		}
	}
	flushUnit()
	if project != "" {
		f.Containers[project] = appstack.ParseContainers(bytes.Join(projectLines, []byte("\n")))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse facts: %w", err)
	}
	if f.OSID == "" {
		return nil, fmt.Errorf("parse facts: the host did not report its OS (no /etc/os-release?)")
	}
	if lists > 0 && now >= lists {
		f.AptListsAge = time.Duration(now-lists) * time.Second
	} else {
		f.AptListsAge = 1 << 62 // never updated
	}
	return f, nil
}
