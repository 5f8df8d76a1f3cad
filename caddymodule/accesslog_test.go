package caddymodule

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRedactedClone(t *testing.T) {
	key := "ar_" + strings.Repeat("k", 43)
	for _, c := range []struct {
		name           string
		uri            string
		header         map[string]string
		owned, logCred bool
		want           bool
		wantURI        string
		wantRedacted   []string
	}{
		{"bearer only", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + key}, true, false, false, "", nil},
		{"bearer, log_credentials", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + key}, true, true, true, "/v1/chat/completions", []string{"Authorization"}},
		{"x-api-key", "/v1/messages?beta=true", map[string]string{"X-Api-Key": key}, true, false, true, "/v1/messages?beta=true", []string{"X-Api-Key"}},
		{"any value on the gateway's paths", "/v1/models", map[string]string{"Api-Key": "typo", "X-Goog-Api-Key": "x"}, true, false, true, "/v1/models", []string{"Api-Key", "X-Goog-Api-Key"}},
		{"query key", "/v1/chat/completions?a=1&key=" + key + "&b=2", nil, true, false, true, "/v1/chat/completions?a=1&key=REDACTED&b=2", nil},
		{"other path, other app's key", "/app?key=abc", map[string]string{"X-Api-Key": "backend-secret"}, false, false, false, "", nil},
		{"other path, an Agent Router key", "/app?api_key=" + key, map[string]string{"X-Api-Key": key}, false, false, true, "/app?api_key=REDACTED", []string{"X-Api-Key"}},
		{"empty query value", "/v1/models?key=", nil, true, false, false, "", nil},
	} {
		r := httptest.NewRequest("GET", c.uri, nil)
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		clone, ok := redactedClone(r, c.owned, c.logCred)
		if ok != c.want {
			t.Errorf("%s: redacted %v, want %v", c.name, ok, c.want)
			continue
		}
		if !ok {
			continue
		}
		if clone.RequestURI != c.wantURI {
			t.Errorf("%s: uri %q, want %q", c.name, clone.RequestURI, c.wantURI)
		}
		for _, h := range c.wantRedacted {
			if v := clone.Header[h]; len(v) != 1 || v[0] != redacted {
				t.Errorf("%s: %s = %v", c.name, h, v)
			}
		}
		if r.Header.Get("X-Api-Key") != c.header["X-Api-Key"] || r.RequestURI != c.uri {
			t.Errorf("%s: the request itself was changed", c.name)
		}
	}
}

// The common request (a Bearer key, no credential in headers or query)
// costs the access-log check no allocation.
func BenchmarkRedactedCloneBearer(b *testing.B) {
	r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	r.Header.Set("Authorization", "Bearer ar_"+strings.Repeat("k", 43))
	r.Header.Set("Content-Type", "application/json")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := redactedClone(r, true, false); ok {
			b.Fatal("redacted")
		}
	}
}
