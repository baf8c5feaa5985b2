package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"lghsctl": main})
}

// TestScripts runs the end-to-end CLI scripts in testdata/script: each
// .txtar runs the real lghsctl binary and checks its output and exit code.
func TestScripts(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("REPO", root)
			env.Setenv("NO_COLOR", "")
			// No ambient credentials leak into the scripts.
			for _, k := range []string{"SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_PROFILE", "SCW_CONFIG_PATH", "CLOUDFLARE_API_TOKEN"} {
				env.Setenv(k, "")
			}
			env.Setenv("HOME", env.WorkDir+"/home")
			return os.MkdirAll(env.WorkDir+"/home", 0o755)
		},
	})
}
