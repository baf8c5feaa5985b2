// Package hostsetupbench sets lghsctl's host setup (`lghsctl up --phase
// hosts`, the real binary) against the Ansible playbook in ansible/ that
// does the same on a lab host: first runs on fresh hosts, then no-op runs
// on one host both have converged, alternated so that both see the same
// load, with the floor of any tool beside them (`ssh host true`, and every
// check of the playbook as one script over one connection). It reports
// median, min and max of each, and the ratios of medians. See README.md.
//
//	sudo ./bench/hostsetup/run.sh
package hostsetupbench
