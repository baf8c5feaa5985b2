// Command httpd is the lab tests' container image: a static HTTP server
// that answers "hello from a lab container" on :8080 (or the address in
// its first argument). Built with CGO_ENABLED=0 and imported into a lab
// host's Docker with docker import.
package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	addr := ":8080"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from a lab container")
	})
	if err := http.ListenAndServe(addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
