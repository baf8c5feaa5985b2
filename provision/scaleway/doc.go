// Package scaleway is provision's adapter to the Scaleway API: credentials
// and profiles resolved like the scw CLI, the SDK client with retries, and
// the instance, IP, security group, image and SSH key operations lghsctl
// needs.
package scaleway
