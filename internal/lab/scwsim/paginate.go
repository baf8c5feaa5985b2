package scwsim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

const (
	defaultPerPage = 50
	maxPerPage     = 100
)

// pageParams reads page (1-based) and the page size parameter.
func pageParams(r *http.Request, sizeParam string) (page, size int, err error) {
	page, size = 1, defaultPerPage
	q := r.URL.Query()
	if v := q.Get("page"); v != "" {
		page, err = strconv.Atoi(v)
		if err != nil || page < 1 {
			return 0, 0, invalidArguments(argDetail{"page", "constraint", "must be a positive integer"})
		}
	}
	if v := q.Get(sizeParam); v != "" {
		size, err = strconv.Atoi(v)
		if err != nil || size < 1 || size > maxPerPage {
			return 0, 0, invalidArguments(argDetail{sizeParam, "constraint", fmt.Sprintf("must be between 1 and %d", maxPerPage)})
		}
	}
	return page, size, nil
}

func pageSlice[T any](items []T, page, size int) []T {
	lo := (page - 1) * size
	if lo >= len(items) {
		return []T{}
	}
	return items[lo:min(lo+size, len(items))]
}

// instancePage paginates an Instance API list the legacy way: the body only
// has the array, the count is in X-Total-Count and the pages in Link.
func instancePage[T any](r *http.Request, items []T) ([]T, http.Header, error) {
	page, size, err := pageParams(r, "per_page")
	if err != nil {
		return nil, nil, err
	}
	h := http.Header{}
	h.Set("X-Total-Count", strconv.Itoa(len(items)))
	h.Set("Link", linkHeader(r, page, size, len(items)))
	return pageSlice(items, page, size), h, nil
}

// linkHeader builds the Link header as the real API writes it:
// </servers?page=2&per_page=50&name=x>; rel="next",... with the path
// relative to the zone and the other query parameters echoed.
func linkHeader(r *http.Request, page, size, total int) string {
	path := r.URL.Path
	if i := strings.Index(path, "/zones/"); i >= 0 {
		rest := path[i+len("/zones/"):]
		if j := strings.Index(rest, "/"); j >= 0 {
			path = rest[j:]
		}
	}
	var others []string
	for _, kv := range strings.Split(r.URL.RawQuery, "&") {
		if kv == "" || strings.HasPrefix(kv, "page=") || strings.HasPrefix(kv, "per_page=") {
			continue
		}
		others = append(others, kv)
	}
	rest := strings.Join(others, "&")
	last := (total + size - 1) / size
	link := func(p int, rel string) string {
		return fmt.Sprintf(`<%s?page=%d&per_page=%d&%s>; rel="%s"`, path, p, size, rest, rel)
	}
	var parts []string
	if page > 1 && last > 0 {
		parts = append(parts, link(1, "first"), link(min(page-1, last), "previous"))
	}
	if page < last {
		parts = append(parts, link(page+1, "next"))
	}
	parts = append(parts, link(last, "last"))
	return strings.Join(parts, ",")
}

// bodyPage paginates the modern way (Marketplace, IAM, Block): the caller
// puts total_count in the body.
func bodyPage[T any](r *http.Request, items []T) ([]T, error) {
	page, size, err := pageParams(r, "page_size")
	if err != nil {
		return nil, err
	}
	return pageSlice(items, page, size), nil
}
