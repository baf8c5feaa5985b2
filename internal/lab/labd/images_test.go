package labd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lghs/lghsctl/internal/lab/labreg"
)

// TestImagesForBuildsTheStandInsTheInventoryNames: references under the
// lab registry become the database or app stand-in by their repository's
// name, the app reporting its tag as version; other references are left
// to their registries, and a repository the lab cannot stand in for is an
// error naming it.
func TestImagesForBuildsTheStandInsTheInventoryNames(t *testing.T) {
	dir := t.TempDir()
	bins := ImageBinaries{Database: filepath.Join(dir, "db"), Tools: filepath.Join(dir, "tools"), App: filepath.Join(dir, "app")}
	for _, p := range []string{bins.Database, bins.Tools, bins.App} {
		if err := os.WriteFile(p, []byte(filepath.Base(p)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	refs := []string{
		Registry + "lghs-lab/mongo:4.2.22",
		"mongo:4.2.22",
		Registry + "lghs-lab/rocket.chat:3.0.12",
		Registry + "lghs-lab/rocket.chat:3.0.12",
		Registry + "lghs-lab/rocket.chat:3.18.2",
	}
	imgs, err := ImagesFor(refs, bins)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, img := range imgs {
		got = append(got, img.Name+":"+img.Tag+" "+strings.Join(img.Entrypoint, " ")+" "+strings.Join(img.Env, ","))
	}
	want := []string{
		"lghs-lab/mongo:4.2.22 /usr/local/bin/labdb-ferretdb ",
		"lghs-lab/rocket.chat:3.0.12 /app/labapp LABAPP_VERSION=3.0.12,PORT=3000",
		"lghs-lab/rocket.chat:3.18.2 /app/labapp LABAPP_VERSION=3.18.2,PORT=3000",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("images:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	reg := labreg.New()
	for _, img := range imgs {
		if _, err := reg.Add(img); err != nil {
			t.Fatalf("%s: %v", img.Name, err)
		}
	}

	if _, err := ImagesFor([]string{Registry + "lghs-lab/nginx:1"}, bins); err == nil || !strings.Contains(err.Error(), "lghs-lab/nginx:1") {
		t.Errorf("unknown repository: %v", err)
	}
	if _, err := ImagesFor([]string{Registry + "lghs-lab/mongo"}, bins); err == nil {
		t.Error("a reference without a tag was accepted")
	}
	if _, err := ImagesFor([]string{Registry + "lghs-lab/mongo:4"}, ImageBinaries{}); err == nil || !strings.Contains(err.Error(), "setup.sh") {
		t.Errorf("missing binary: %v", err)
	}
}
