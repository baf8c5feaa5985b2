// Package e2e holds end-to-end tests of the lghsctl binary on the lab:
// the README's main command (lab start, then up on the lab example
// inventory) and what a user does next, run as a user would, through the
// built binary and its exit codes and output. They are lab tests: skipped
// under -short or where the lab cannot run, failed then with CI=true.
package e2e
