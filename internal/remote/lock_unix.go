//go:build unix

package remote

import (
	"os"
	"syscall"
)

// lockDir takes an exclusive advisory lock on a directory, so that
// processes (and goroutines: each call opens its own descriptor) updating
// the known_hosts file in it take turns.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
