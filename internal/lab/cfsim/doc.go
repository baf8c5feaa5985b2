// Package cfsim is the lab's stand-in for the Cloudflare API v4: zones, DNS
// records and API-token verification, under /client/v4, in memory.
//
// It exists so that production code (cloudflare-go v7's dns and zones
// services, lego's Cloudflare DNS provider) can be pointed at it with nothing
// but a base URL and a token, and meet the same answers, validation rules and
// errors as on the real service: the JSON shapes are checked against recorded
// real answers (../shared/fixtures/cloudflare) by the package tests.
//
// What is modelled:
//   - GET /user/tokens/verify; GET /zones (filters, pagination); GET /zones/{id};
//   - /zones/{id}/dns_records: list (type, name[.op], content[.op], comment[.op],
//     tag[.op], proxied, search, match, tag_match, order, direction, page,
//     per_page), POST, GET, PATCH, PUT, DELETE and POST …/batch;
//   - record validation: A/AAAA addresses, CNAME targets and conflicts, TXT,
//     CAA data (content is derived from data), MX, NS; TTL 1 (automatic) or
//     60..86400 (30.. on enterprise zones); proxied only for A/AAAA/CNAME and
//     never to a non-routable address; tags quota (0 on free zones);
//     identical-record detection; names normalised to the zone (@, relative);
//   - bearer tokens with permissions (zone read, DNS read, DNS edit) and an
//     optional list of zones; refused with Cloudflare's codes and statuses;
//   - the API rate limit (1200 requests per 5 minutes per token, with the
//     Ratelimit/Ratelimit-Policy/Retry-After headers) and deterministic 429
//     injection for tests;
//   - a request log with counters that tell reads from writes.
//
// The lab drives it through Go methods (AddZone, AddToken, Subscribe,
// Snapshot…) and may persist the state to a JSON file so a long-running lab
// daemon can restart without losing zones, tokens and records.
//
// Error codes whose exact value could not be confirmed from recorded traffic
// are marked "unconfirmed" where they are defined (errors.go).
package cfsim
