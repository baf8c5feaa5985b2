// Package labbench measures the lab (internal/lab/labhost): how long a host
// takes from Start to SSH answering with a warm cache, how long a base root
// file system takes to build cold (straight from the Debian mirror) and
// through the warm apt proxy, and how long a layer copy takes. It holds only
// benchmarks; run.sh runs them and prints the figures.
//
//	sudo ./bench/lab/run.sh            # all of them (cold build ≈ 1 min)
//	go test -run '^$' -bench HostStart ./bench/lab
package labbench
