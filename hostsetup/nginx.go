package hostsetup

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/lghs/lghsctl/internal/task"
	"github.com/lghs/lghsctl/templates/nginx"
)

const (
	nginxCommon      = "/etc/nginx/conf.d/lghsctl.conf"
	nginxDefaultSite = "/etc/nginx/sites-enabled/default"
	selfSignedDir    = "/etc/lghsctl/tls"
)

// LiveDir is where a site's ACME certificate lives, in certbot's layout.
func LiveDir(site string) string { return "/etc/letsencrypt/live/" + site }

type nginxState struct{}

func siteAvailable(name string) string { return "/etc/nginx/sites-available/" + name + ".conf" }
func siteEnabled(name string) string   { return "/etc/nginx/sites-enabled/" + name + ".conf" }

func (r *Run) nginxPaths() []string {
	if len(r.cfg.Host.Sites) == 0 {
		return nil
	}
	ps := []string{nginxCommon, nginxDefaultSite}
	for _, s := range r.cfg.Host.Sites {
		ps = append(ps, siteAvailable(s.Name), siteEnabled(s.Name),
			LiveDir(s.Name)+"/fullchain.pem", LiveDir(s.Name)+"/privkey.pem",
			selfSignedDir+"/"+s.Name, selfSignedDir+"/"+s.Name+"/fullchain.pem", selfSignedDir+"/"+s.Name+"/privkey.pem")
	}
	return ps
}

// nginxVersion is the installed nginx's version or, before it is
// installed (check mode on a fresh host), the one the release ships.
func (r *Run) nginxVersion() (nginx.Version, error) {
	if v, ok := r.facts.Packages["nginx"]; ok {
		return nginx.ParseVersion(v)
	}
	if r.facts.Codename == "bookworm" {
		return nginx.Version{Major: 1, Minor: 22, Patch: 1}, nil
	}
	return nginx.Version{Major: 1, Minor: 26, Patch: 3}, nil
}

// certPaths says which certificate a site uses now: the ACME one once it
// is deployed, the temporary self-signed one before.
func (r *Run) certPaths(site string) (cert, key string, acme bool) {
	live := LiveDir(site)
	if r.facts.Path(live+"/fullchain.pem").Type == "file" && r.facts.Path(live+"/privkey.pem").Type == "file" {
		return live + "/fullchain.pem", live + "/privkey.pem", true
	}
	dir := selfSignedDir + "/" + site
	return dir + "/fullchain.pem", dir + "/privkey.pem", false
}

// siteFiles renders the configuration files of every site.
func (r *Run) siteFiles() ([]File, error) {
	v, err := r.nginxVersion()
	if err != nil {
		return nil, err
	}
	common, err := nginx.RenderCommon(r.cfg.Inventory.Name)
	if err != nil {
		return nil, err
	}
	files := []File{{Path: nginxCommon, Content: common, Mode: 0o644}}
	for _, s := range r.cfg.Host.Sites {
		cert, key, _ := r.certPaths(s.Name)
		conf, err := nginx.RenderSite(nginx.Site{
			Inventory:         r.cfg.Inventory.Name,
			Name:              s.Name,
			Aliases:           s.Aliases,
			Upstream:          s.Upstream,
			Websockets:        *s.Websockets,
			ClientMaxBodySize: s.ClientMaxBodySize,
			HSTS:              *s.HSTS,
			CertFile:          cert,
			KeyFile:           key,
		}, v)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: siteAvailable(s.Name), Content: conf, Mode: 0o644})
	}
	return files, nil
}

func (r *Run) nginxSteps() []task.Step {
	if len(r.cfg.Host.Sites) == 0 {
		return nil
	}
	return []task.Step{
		{Name: "nginx: temporary certificates", Run: r.selfSignedCerts, Notify: []string{"reload nginx"}},
		{Name: "nginx: sites", Run: r.nginxSites, Notify: []string{"reload nginx"}},
		r.ensureUnit("nginx.service"),
	}
}

// selfSignedCerts gives each site without an ACME certificate a temporary
// self-signed one, so nginx always starts; it is made once, not renewed.
func (r *Run) selfSignedCerts(ctx context.Context, env task.Env) (task.Result, error) {
	var made []string
	for _, s := range r.cfg.Host.Sites {
		if _, _, acme := r.certPaths(s.Name); acme {
			continue
		}
		dir := selfSignedDir + "/" + s.Name
		if r.facts.Path(dir+"/fullchain.pem").Type == "file" && r.facts.Path(dir+"/privkey.pem").Type == "file" {
			continue
		}
		made = append(made, s.Name)
		if env.Check {
			continue
		}
		cert, key, err := r.cfg.SelfSigned(append([]string{s.Name}, s.Aliases...))
		if err != nil {
			return task.Result{}, fmt.Errorf("make temporary certificate for %s: %w", s.Name, err)
		}
		if _, err := r.ensureDir(ctx, env, Dir{Path: selfSignedDir, Mode: 0o755}); err != nil {
			return task.Result{}, err
		}
		if _, err := r.ensureDir(ctx, env, Dir{Path: dir, Mode: 0o700}); err != nil {
			return task.Result{}, err
		}
		for _, f := range []File{
			{Path: dir + "/privkey.pem", Content: key, Mode: 0o600, Secret: true},
			{Path: dir + "/fullchain.pem", Content: cert, Mode: 0o644},
		} {
			if _, _, err := r.ensureFile(ctx, env, f); err != nil {
				return task.Result{}, err
			}
		}
	}
	if len(made) == 0 {
		return task.Unchanged(), nil
	}
	return task.Changedf("self-signed certificate for %s (until the ACME one is deployed)", strings.Join(made, ", ")), nil
}

// nginxSites writes the shared file and each site, enables them and
// disables Debian's default site. If nginx -t then rejects the whole
// configuration, every file this step changed is put back as it was, so
// the previous configuration keeps serving.
func (r *Run) nginxSites(ctx context.Context, env task.Env) (task.Result, error) {
	files, err := r.siteFiles()
	if err != nil {
		return task.Result{}, err
	}
	type undo struct {
		path    string
		content []byte // nil: the path did not exist
		link    string
	}
	var undos []undo
	var changed []string
	var diffs bytes.Buffer
	for _, f := range files {
		fact := r.facts.Path(f.Path)
		if c, m := fileState(f, fact); c && m {
			continue
		}
		u := undo{path: f.Path}
		if fact.Type == "file" && !env.Check {
			old, err := r.host.ReadFile(ctx, f.Path)
			if err != nil && !isNotExist(err) {
				return task.Result{}, fmt.Errorf("read %s before changing it: %w", f.Path, err)
			}
			u.content = old
			if u.content == nil {
				u.content = []byte{}
			}
		}
		c, d, err := r.ensureFile(ctx, env, f)
		if err != nil {
			return task.Result{}, err
		}
		if c {
			undos = append(undos, u)
			changed = append(changed, f.Path)
			diffs.WriteString(d)
		}
	}
	for _, s := range r.cfg.Host.Sites {
		prev := r.facts.Path(siteEnabled(s.Name))
		c, err := r.ensureLink(ctx, env, siteEnabled(s.Name), siteAvailable(s.Name))
		if err != nil {
			return task.Result{}, err
		}
		if c {
			undos = append(undos, undo{path: siteEnabled(s.Name), link: prev.Target})
			changed = append(changed, siteEnabled(s.Name))
		}
	}
	prevDefault := r.facts.Path(nginxDefaultSite)
	if c, err := r.ensureAbsent(ctx, env, nginxDefaultSite); err != nil {
		return task.Result{}, err
	} else if c {
		undos = append(undos, undo{path: nginxDefaultSite, link: prevDefault.Target})
		changed = append(changed, "removed "+nginxDefaultSite)
	}
	if len(changed) == 0 {
		return task.Unchanged(), nil
	}
	res := task.Changedf("%s", strings.Join(changed, ", "))
	res.Diff = diffs.String()
	if env.Check {
		return res, nil
	}
	if _, err := r.host.Run(ctx, "nginx -t -q", nil); err != nil {
		var restore []string
		for i := len(undos) - 1; i >= 0; i-- {
			u := undos[i]
			switch {
			case u.link != "":
				restore = append(restore, fmt.Sprintf("ln -sfn %s %s", quote(u.link), quote(u.path)))
			case u.content == nil:
				restore = append(restore, "rm -f "+quote(u.path))
			default:
				if err := r.host.WriteFile(ctx, u.path, u.content, 0o644, "root", "root"); err != nil {
					return task.Result{}, fmt.Errorf("nginx -t rejected the new configuration, and restoring %s failed: %w", u.path, err)
				}
			}
			delete(r.facts.Paths, u.path)
		}
		if len(restore) > 0 {
			if _, rerr := r.host.Run(ctx, strings.Join(restore, " && "), nil); rerr != nil {
				return task.Result{}, fmt.Errorf("nginx -t rejected the new configuration, and restoring failed: %w", rerr)
			}
		}
		return task.Result{}, fmt.Errorf("nginx -t rejected the new configuration; the previous one was restored and nginx was not reloaded: %w", err)
	}
	return res, nil
}

// ReloadNginxScript tests the configuration, reloads nginx, and returns
// only once the reload has taken effect. systemctl reload returns as soon
// as nginx's master has the signal; until the master has loaded the new
// configuration and told the old workers to stop, they keep accepting
// connections with the old one (a check right after the run, like up's
// HTTPS verification, would see the old certificate). An old worker that
// stopped accepting retitles itself "worker process is shutting down"; it
// may live on for the connections it still serves (websockets), so the
// wait is for that, not for its exit. Exit 4: the master never retired
// the old workers, i.e. it did not apply the configuration.
const ReloadNginxScript = `set -e
nginx -t -q
old=
if pid=$(cat /run/nginx.pid 2>/dev/null) && [ -n "$pid" ]; then
  for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    if grep -q 'worker process' /proc/"$c"/cmdline 2>/dev/null; then old="$old $c"; fi
  done
fi
systemctl reload-or-restart nginx.service
i=0
while [ $i -lt 200 ]; do
  busy=
  for w in $old; do
    if [ -r /proc/"$w"/cmdline ] && ! grep -q 'shutting down' /proc/"$w"/cmdline 2>/dev/null; then busy=1; fi
  done
  [ -z "$busy" ] && exit 0
  sleep 0.1
  i=$((i+1))
done
echo "nginx still serves with its previous configuration 20s after the reload (see /var/log/nginx/error.log)" >&2
exit 4
`

// reloadNginx is the handler: test the configuration, reload, and wait
// until nginx serves with the new configuration.
func (r *Run) reloadNginx(ctx context.Context, env task.Env) (task.Result, error) {
	if env.Check {
		return task.Changedf("would reload nginx"), nil
	}
	if _, err := r.host.Run(ctx, ReloadNginxScript, nil); err != nil {
		return task.Result{}, fmt.Errorf("reload nginx: %w", err)
	}
	return task.Changedf("reloaded nginx"), nil
}

// selfSigned makes an ECDSA P-256 certificate for names, valid 90 days.
func selfSigned(names []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"lghsctl temporary certificate"}},
		DNSNames:              names,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(90 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}
