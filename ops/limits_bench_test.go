package ops_test

import (
	"fmt"
	"testing"

	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// BenchmarkLimitsSync is one install of the stored sets plus an each_key
// default over every key: what a key creation costs while such a default
// is configured (the install runs on the change, off the request path).
func BenchmarkLimitsSync(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			s := storetest.Open(b)
			var specs []store.TenantSpec
			for i := range n / 10 {
				t := store.TenantSpec{ID: fmt.Sprintf("t%05d", i)}
				for range 10 {
					t.Keys = append(t.Keys, store.KeySpec{Name: "k"})
				}
				specs = append(specs, t)
			}
			for len(specs) > 0 {
				chunk := specs[:min(len(specs), 500)]
				specs = specs[len(chunk):]
				if _, err := s.CreateTenants(chunk); err != nil {
					b.Fatal(err)
				}
			}
			lim, err := limits.New(limits.Config{Backend: limits.NewLocal(s.LimitsKV())})
			if err != nil {
				b.Fatal(err)
			}
			defer lim.Close()
			rt := ops.NewLimitsRuntime(s, lim)
			b.ResetTimer()
			for range b.N {
				// A new defaults value forces a full install.
				if err := rt.SetDefaults(&ops.LimitDefaults{RateLimits: []ops.DefaultRateLimit{{Each: "key", RPM: 600}}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
