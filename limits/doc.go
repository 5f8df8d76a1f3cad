// Package limits owns budgets and rate limits: what they are, whether a
// request may go ahead, what it holds until its usage arrives, and how a
// limit holds across a fleet. It is Caddy-free and HTTP-free; the gateway,
// the admin API, the console and the config wire it in (see WIRING.md).
// Money is integer nano-USD (pricing.Nano): the worst case of a request is
// priced with the pricing package's book.
//
// It owns:
//
//   - The objects (policy.go, caps.go), with their JSON forms and checks:
//     Budget (scope account | api_key | account_model | byok_credential;
//     amount in USD; calendar day/week/month in UTC or rolling N hours;
//     payer platform | byok | all; mode hard | soft | shadow; alert
//     thresholds), Spillover (the platform dollars a month a BYOK→platform
//     fallback may spend), RateLimit (rpm, tpm, concurrent), Caps (the
//     operator's ceilings on what owners set) and Set, all of them.
//   - Windows (window.go): calendar windows aligned to UTC, rolling windows
//     in 24 slots that count spend for N to N + N/24 hours, never less.
//   - The Limiter (limiter.go, counter.go, reservation.go): an immutable
//     compiled Policy swapped atomically on change and read lock-free,
//     counters with a short mutex each. Admit reserves the worst case
//     (input estimated from the body or counted, output bounded by the
//     request, the model and ReserveOutputCap) and answers a Decision:
//     allowed, 402 budget_exceeded or 429 rate_limit_exceeded, as data.
//     Settle replaces the reservation with the actual cost and tokens;
//     Release gives it back. A dollar budget never counts an unpriced
//     model as free. Shadow budgets record what they would refuse; soft
//     ones only alert; threshold crossings are events, once per window.
//   - The fleet (backend.go, fleet.go, etcd.go, local.go): each instance
//     admits against its own slice of a limit, leased from a shared
//     Backend and given back when idle; no backend call on a request's
//     path (a request whose slice ran out waits, at most SliceWait, for
//     the background to fetch the next). Settled spend is persisted per
//     window, so a restart keeps it; a lost instance's slices return when
//     its lease expires. Etcd is the fleet backend; Local (over a KV a
//     bbolt bucket implements) the single-node one, which is exact.
//   - Provider shaping (headers.go, provider.go): a BYOK key's own
//     rate-limit headers (OpenAI x-ratelimit-*, Anthropic
//     anthropic-ratelimit-*, Retry-After), and a Tracker that blocks a
//     credential whose provider says nothing remains, until its reset.
//
// The bound. A hard budget overshoots by at most what requests settle
// above their reservations: none when the reservation is the true worst
// case (the input counted, the output within ReserveOutputCap). Across a
// fleet the same holds, because slices are only granted from what the
// limit has left; the rest of the bound is a lost lease (an instance cut
// off from etcd keeps spending its slices for at most one FlushInterval
// after its lease expired). ReserveOutputCap trades that bound for
// concurrency: a request whose output outruns the cap adds its excess.
// Rate limits count requests exactly (one instance) or to within the
// slices (fleet: never more than the limit).
//
// The hot path (Admit, Settle, Release, Tracker.Check) allocates nothing;
// BenchmarkAdmitSettle and TestAdmitAllocatesNothing hold that.
package limits
