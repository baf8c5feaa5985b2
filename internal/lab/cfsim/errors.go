package cfsim

import (
	"fmt"
	"net/http"
	"strings"
)

// apiMessage is one entry of the envelope's "errors" or "messages" array.
type apiMessage struct {
	Code       int          `json:"code"`
	Message    string       `json:"message"`
	ErrorChain []apiMessage `json:"error_chain,omitempty"`
}

// apiError is a refused request: the HTTP status and the errors array of the
// envelope.
type apiError struct {
	Status int
	Errors []apiMessage
	// header, if set, is added to the response (Retry-After on 429).
	header http.Header
}

func (e *apiError) Error() string {
	parts := make([]string, 0, len(e.Errors))
	for _, m := range e.Errors {
		s := fmt.Sprintf("%d: %s", m.Code, m.Message)
		for _, c := range m.ErrorChain {
			s += fmt.Sprintf(" (%d: %s)", c.Code, c.Message)
		}
		parts = append(parts, s)
	}
	return fmt.Sprintf("cloudflare api %d: %s", e.Status, strings.Join(parts, "; "))
}

// Codes reports the top-level error codes, for logs and tests.
func (e *apiError) Codes() []int {
	out := make([]int, 0, len(e.Errors))
	for _, m := range e.Errors {
		out = append(out, m.Code)
	}
	return out
}

func newAPIError(status, code int, msg string) *apiError {
	return &apiError{Status: status, Errors: []apiMessage{{Code: code, Message: msg}}}
}

// validationError is Cloudflare's "1004 DNS Validation Error" wrapper with the
// precise reason in error_chain, as recorded for TTL and proxied errors.
func validationError(code int, msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Errors: []apiMessage{{
		Code: 1004, Message: "DNS Validation Error",
		ErrorChain: []apiMessage{{Code: code, Message: msg}},
	}}}
}

// The catalog. Sources: ../shared/fixtures/cloudflare (SOURCES.md) and
// publicly recorded answers of the real API quoted in issue trackers.
// 400 9106, recorded (observed-error-missing-auth-9106.json).
func errMissingAuth() *apiError {
	return newAPIError(http.StatusBadRequest, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
}

// 403 9109 "Invalid access token": unknown, disabled, expired or not yet
// valid bearer token on an API endpoint.
func errInvalidToken() *apiError {
	return newAPIError(http.StatusForbidden, 9109, "Invalid access token")
}

// 403 9109, recorded (observed-error-unauthorized-9109.json): a valid
// token without the permission the endpoint needs (zone listing without
// Zone:Read).
func errUnauthorized() *apiError {
	return newAPIError(http.StatusForbidden, 9109, "Unauthorized to access requested resource")
}

// 403 10000: a valid token used on a zone it does not cover or for an
// operation its permissions do not allow (recorded in many public
// reports for zone-scoped tokens).
func errAuthentication() *apiError {
	return newAPIError(http.StatusForbidden, 10000, "Authentication error")
}

// 401 1000 on /user/tokens/verify with an unknown token.
func errInvalidAPIToken() *apiError {
	return newAPIError(http.StatusUnauthorized, 1000, "Invalid API Token")
}

// 400 6003 + 6111: an Authorization header that is not "Bearer <token>".
func errBadAuthorizationHeader() *apiError {
	return &apiError{Status: http.StatusBadRequest, Errors: []apiMessage{{
		Code: 6003, Message: "Invalid request headers",
		ErrorChain: []apiMessage{{Code: 6111, Message: "Invalid format for Authorization header"}},
	}}}
}

// 400 6003 + 6103, recorded (lego-error-invalid-request-headers.json).
func errBadAuthKeyHeader() *apiError {
	return &apiError{Status: http.StatusBadRequest, Errors: []apiMessage{{
		Code: 6003, Message: "Invalid request headers",
		ErrorChain: []apiMessage{{Code: 6103, Message: "Invalid format for X-Auth-Key header"}},
	}}}
}

// 403 9103: global API keys are not provisioned in the lab, so any
// well-formed one is unknown.
func errUnknownAuthKey() *apiError {
	return newAPIError(http.StatusForbidden, 9103, "Unknown X-Auth-Key or X-Auth-Email")
}

// 400 6003 + 6105: a body sent with a non-JSON content type.
func errBadContentType() *apiError {
	return &apiError{Status: http.StatusBadRequest, Errors: []apiMessage{{
		Code: 6003, Message: "Invalid request headers",
		ErrorChain: []apiMessage{{Code: 6105, Message: "Invalid Content-Type header, valid values are application/json,multipart/form-data"}},
	}}}
}

// 400 9207, recorded for bodies the API cannot use.
func errInvalidBody() *apiError {
	return newAPIError(http.StatusBadRequest, 9207, "Request body is invalid.")
}

// 400 7003 + 7000, recorded (observed-error-bad-zone-id-7003.json).
func errNoRoute(path string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Errors: []apiMessage{
		{Code: 7003, Message: "Could not route to " + path + ", perhaps your object identifier is invalid?"},
		{Code: 7000, Message: "No route for that URI"},
	}}
}

// 400 7000 for paths the API does not have.
func errUnknownRoute() *apiError {
	return newAPIError(http.StatusBadRequest, 7000, "No route for that URI")
}

// 405 7001 (unconfirmed code).
func errMethodNotAllowed() *apiError {
	return newAPIError(http.StatusMethodNotAllowed, 7001, "Method not allowed")
}

// 404 81044, recorded (observed-error-record-not-found-81044.json).
func errRecordNotFound() *apiError {
	return newAPIError(http.StatusNotFound, 81044, "Record does not exist.")
}

// 400 81058, recorded (observed-error-identical-record-81058.json).
func errIdenticalRecord() *apiError {
	return newAPIError(http.StatusBadRequest, 81058, "An identical record already exists.")
}

// 400 81053, recorded: a CNAME where an A, AAAA or CNAME (or any other
// record) already exists.
func errHostExists() *apiError {
	return newAPIError(http.StatusBadRequest, 81053, "An A, AAAA, or CNAME record with that host already exists.")
}

// 400 81054, recorded: a non-CNAME record where a CNAME exists.
func errCNAMEExists() *apiError {
	return newAPIError(http.StatusBadRequest, 81054, "A CNAME record with that host already exists. For more details, refer to <https://developers.cloudflare.com/dns/manage-dns-records/troubleshooting/records-with-same-name/>.")
}

// 400 9005 / 9006, recorded.
func errBadIPv4() *apiError {
	return newAPIError(http.StatusBadRequest, 9005, "Content for A record must be a valid IPv4 address.")
}
func errBadIPv6() *apiError {
	return newAPIError(http.StatusBadRequest, 9006, "Content for AAAA record must be a valid IPv6 address.")
}

// 400 9003, recorded: proxied record to a non-routable address.
func errProxyTarget(target string) *apiError {
	return newAPIError(http.StatusBadRequest, 9003, "Target "+target+" is not allowed for a proxied record.")
}

// 1004 + 9004, recorded.
func errNotProxiable() *apiError { return validationError(9004, "This record type cannot be proxied.") }

// 1004 + 9021, recorded (message of the free/pro/business plans; 30 on
// enterprise).
func errTTL(min int) *apiError {
	return validationError(9021, fmt.Sprintf("TTL must be between %d and 86400 seconds, or 1 for Automatic.", min))
}

// 400 9022, recorded.
func errTTLType() *apiError {
	return newAPIError(http.StatusBadRequest, 9022, "TTL must be a number, not a string.")
}

// 1004 + 9300, recorded ("exceeding the quota of 0" on free zones).
func errTagQuota(n, quota int) *apiError {
	return validationError(9300, fmt.Sprintf("DNS record has %d tags, exceeding the quota of %d.", n, quota))
}

// 1004 + 9000 "DNS name is invalid." (unconfirmed chain code).
func errBadName() *apiError { return validationError(9000, "DNS name is invalid.") }

// 1004 + 9007 "Content for CNAME record is invalid." (message recorded,
// chain code unconfirmed).
func errBadCNAME() *apiError { return validationError(9007, "Content for CNAME record is invalid.") }

// 1004 + 9009 (unconfirmed) for CAA data the API refuses.
func errBadCAA(why string) *apiError { return validationError(9009, "CAA record is invalid: "+why) }

// 1004 + 9008 (unconfirmed) for other content errors.
func errBadContent(typ, why string) *apiError {
	return validationError(9008, "Content for "+typ+" record is invalid: "+why)
}

// 1004 + 9100 (unconfirmed): a record type this stand-in does not model.
func errUnsupportedType(typ string) *apiError {
	return validationError(9100, "Record type "+typ+" is not supported by the lab stand-in.")
}

// 429 971, recorded (observed-error-rate-limited-429.json).
func errRateLimited() *apiError {
	return newAPIError(http.StatusTooManyRequests, 971, "Please wait and consider throttling your request speed")
}
