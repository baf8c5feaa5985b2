package scwsim

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// apiError is an error answered with a Scaleway error body.
type apiError struct {
	status int
	body   map[string]any
}

func (e *apiError) Error() string {
	b, _ := json.Marshal(e.body)
	return strconv.Itoa(e.status) + " " + string(b)
}

// writeError answers err: its own body when it is an *apiError, a 500
// internal error otherwise. Every error body is JSON with a Content-Type, or
// the SDK could not decode it.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, body: map[string]any{
			"message": "internal error: " + err.Error(), "type": "internal_error",
		}}
	}
	b, _ := json.Marshal(ae.body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(ae.status)
	_, _ = w.Write(b)
}

// notFound is the 2026 not_found body; resource is e.g. "instance_server",
// "volume" (Block), "ssh_key" (IAM), "MarketplaceImage".
func notFound(resource, id string) error {
	return &apiError{status: http.StatusNotFound, body: map[string]any{
		"type": "not_found", "message": "resource is not found", "resource": resource, "resource_id": id,
	}}
}

type argDetail struct {
	Argument string
	Reason   string
	Help     string
}

func invalidArguments(details ...argDetail) error {
	ds := []map[string]any{}
	for _, d := range details {
		ds = append(ds, map[string]any{"argument_name": d.Argument, "reason": d.Reason, "help_message": d.Help})
	}
	return &apiError{status: http.StatusBadRequest, body: map[string]any{
		"type": "invalid_arguments", "message": "invalid argument(s)", "details": ds,
	}}
}

// legacyInvalid is the Instance API's older 400 shape, still what state
// errors ("server should be running") look like.
func legacyInvalid(msg string) error {
	return &apiError{status: http.StatusBadRequest, body: map[string]any{"message": msg, "type": "invalid_request_error"}}
}

func conflict(msg string) error {
	return &apiError{status: http.StatusConflict, body: map[string]any{"message": msg, "type": "conflict"}}
}

func deniedAuthentication() error {
	return &apiError{status: http.StatusUnauthorized, body: map[string]any{
		"message": "authentication is denied", "method": "api_key", "reason": "not_found", "type": "denied_authentication",
	}}
}

func permissionsDenied(action, resource string) error {
	return &apiError{status: http.StatusForbidden, body: map[string]any{
		"details": []map[string]any{{"action": action, "resource": resource}},
		"message": "insufficient permissions", "type": "permissions_denied",
	}}
}

func transientState(resource, id, current string) error {
	return &apiError{status: http.StatusConflict, body: map[string]any{
		"current_state": current, "message": "resource is in a transient state",
		"resource": resource, "resource_id": id, "type": "transient_state",
	}}
}
