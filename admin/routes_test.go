package admin_test

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/agentrouter/caddy-agentrouter/admin"
)

// readmeRoutes are the admin calls README's Admin API section shows, as
// method → paths (with the section's example ids).
func readmeRoutes(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Admin API\n")
	if !ok {
		t.Fatal("README has no Admin API section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	calls := regexp.MustCompile(`curl(?: -X ([A-Z]+))? "?\$A/([^\s"?]+)`).FindAllStringSubmatch(sec, -1)
	out := map[string][]string{}
	for _, c := range calls {
		method := c[1]
		if method == "" {
			method = http.MethodGet
		}
		if !slices.Contains(out[c[2]], method) {
			out[c[2]] = append(out[c[2]], method)
		}
	}
	return out
}

// pattern reports whether path fits a route-table path ({x} is one segment).
func pattern(route, path string) bool {
	r, p := strings.Split(route, "/"), strings.Split(path, "/")
	if len(r) != len(p) {
		return false
	}
	for i := range r {
		if r[i] != p[i] && !strings.HasPrefix(r[i], "{") {
			return false
		}
	}
	return true
}

// TestRouteTable holds the route table and README's Admin API section
// together: every call the README shows is a route (answered, not "no
// such route"), every route is shown there, and every path answers a
// method it does not take with 405, an Allow header and the JSON error.
func TestRouteTable(t *testing.T) {
	h := newHarness(t)
	h.createAccount("acme")
	readme := readmeRoutes(t)
	if len(readme) < 12 {
		t.Fatalf("read %d paths from README's Admin API section: %v", len(readme), readme)
	}
	table := admin.RouteTable()
	for path, methods := range readme {
		for _, m := range methods {
			if !slices.ContainsFunc(table, func(rt [2]string) bool { return rt[0] == m && pattern(rt[1], path) }) {
				t.Errorf("README shows %s %s, which the route table lacks", m, path)
			}
			r := h.do(m, admin.Prefix+path, "")
			if r.status == http.StatusMethodNotAllowed || r.status == http.StatusNotFound && strings.Contains(string(r.body), "no such route") {
				t.Errorf("%s %s: %d %s", m, path, r.status, r.body)
			}
		}
		var wrong string
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			if !slices.ContainsFunc(table, func(rt [2]string) bool { return rt[0] == m && pattern(rt[1], path) }) {
				wrong = m
				break
			}
		}
		if wrong == "" {
			continue
		}
		r := h.do(wrong, admin.Prefix+path, "")
		allow := strings.Split(r.header.Get("Allow"), ", ")
		h.checkErr(wrong+" "+path, r, http.StatusMethodNotAllowed, "method "+wrong+" not allowed")
		for _, m := range methods {
			if !slices.Contains(allow, m) {
				t.Errorf("%s %s: Allow %q lacks %s", wrong, path, r.header.Get("Allow"), m)
			}
		}
		if slices.Contains(allow, wrong) {
			t.Errorf("%s %s: Allow %q lists the refused method", wrong, path, r.header.Get("Allow"))
		}
	}
	for _, rt := range table {
		found := false
		for path := range readme {
			found = found || pattern(rt[1], path)
		}
		if !found {
			t.Errorf("route %s %s is not in README's Admin API section", rt[0], rt[1])
		}
	}
}
