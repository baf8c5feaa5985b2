//go:build !unix

package remote

// lockDir is a no-op where flock does not exist: pins are appended with
// one write each, which is enough for one process at a time.
func lockDir(dir string) (unlock func(), err error) { return func() {}, nil }
