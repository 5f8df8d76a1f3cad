package store

// The schema: every bucket of the store, named once, with where it lives
// and whether the request path's snapshot is built from it (as etcd names
// its buckets in server/storage/schema/bucket.go). Everything that needs a
// list of buckets — creating them in a new file, the fleet backend's choice
// between etcd and the local file, MigrateToFleet, the snapshot's delta
// appliers — reads this table.

// scope says where a bucket's records live.
type scope uint8

const (
	// shared records go through the KV seam: the bbolt file single-node,
	// etcd (mirrored in memory) in fleet mode.
	shared scope = iota
	// local records stay in the instance's bbolt file in every mode: the
	// request log, usage rollups and "last used" clocks.
	local
	// fleetOnly records exist only in etcd, written by the fleet backend
	// itself (member registrations, deletion tombstones).
	fleetOnly
)

// bucket is one namespace of the store.
type bucket struct {
	name []byte
	// scope says where its records live.
	scope scope
	// snapshot: the request path's snapshot is built from it, so every
	// committed change to it is applied to the snapshot (snapshot.go).
	snapshot bool
	// migrate: MigrateToFleet copies it from a single-node file to etcd.
	migrate bool
	// doc says what it maps, key -> value.
	doc string
}

func (b *bucket) String() string { return string(b.name) }

var (
	bucketMeta     = &bucket{name: []byte("meta"), scope: shared, doc: "master key id, schema markers, the fleet's sealed canary; the local file's log count"}
	bucketAccounts = &bucket{name: []byte("accounts"), scope: shared, snapshot: true, migrate: true, doc: "account id -> Account"}
	bucketKeys     = &bucket{name: []byte("keys"), scope: shared, snapshot: true, migrate: true, doc: "sha256(API key) -> keyRecord"}
	bucketKeyIDs   = &bucket{name: []byte("key_ids"), scope: shared, migrate: true, doc: "key id -> sha256(API key)"}
	bucketKeyIndex = &bucket{name: []byte("key_index"), scope: shared, migrate: true, doc: "account \\x00 created (8 bytes, big-endian unix ns) key id -> sha256(API key): an account's keys, oldest first"}
	bucketBYOK     = &bucket{name: []byte("byok"), scope: shared, snapshot: true, migrate: true, doc: "account \\x00 provider -> sealedRecord"}
	bucketVersions = &bucket{name: []byte("byok_versions"), scope: shared, migrate: true, doc: "account \\x00 provider -> last credential version (8 bytes)"}
	bucketHealth   = &bucket{name: []byte("byok_health"), scope: shared, snapshot: true, migrate: true, doc: "account \\x00 provider -> healthRecord"}
	bucketPolicies = &bucket{name: []byte("byok_policies"), scope: shared, snapshot: true, migrate: true, doc: "account \\x00 provider -> Policy"}
	// A BYOK credential's contract terms (contracts.go) and the price
	// book's versions (prices.go): shared, so every fleet instance prices
	// alike.
	bucketContracts = &bucket{name: []byte("byok_contracts"), scope: shared, snapshot: true, migrate: true, doc: "account \\x00 provider -> contractRecord (the credential's contract terms)"}
	bucketPrices    = &bucket{name: []byte("price_versions"), scope: shared, snapshot: true, migrate: true, doc: "8-byte big-endian sequence number -> pricing.Record; \"head\" -> the current version's id"}

	// Budgets and rate limits (limits.go): each account's limit set, one
	// document per account, and (single node) the limiter's counters.
	bucketLimitSets = &bucket{name: []byte("limit_sets"), scope: shared, snapshot: true, migrate: true, doc: "account id -> limits.Set (the account's budgets, rate limits, spillover and caps)"}
	bucketLimits    = &bucket{name: []byte("limits"), scope: local, doc: "limiter counter key (limits.Local's layout) -> its settled spend or claimed alert"}

	bucketUsers          = &bucket{name: []byte("users"), scope: shared, migrate: true, doc: "account \\x00 user id -> userRecord (a membership)"}
	bucketEmails         = &bucket{name: []byte("user_emails"), scope: shared, migrate: true, doc: "email -> person id"}
	bucketPeople         = &bucket{name: []byte("people"), scope: shared, migrate: true, doc: "person id -> personRecord"}
	bucketTokens         = &bucket{name: []byte("user_tokens"), scope: shared, migrate: true, doc: "sha256(setup link token) -> tokenRecord"}
	bucketSessions       = &bucket{name: []byte("sessions"), scope: shared, migrate: true, doc: "sha256(session id) -> Session"}
	bucketPersonSessions = &bucket{name: []byte("person_sessions"), scope: shared, migrate: true, doc: "person id -> sessionIndex"}
	bucketThrottle       = &bucket{name: []byte("signin_throttle"), scope: shared, migrate: true, doc: "sha256(address, email) -> sign-in throttle state"}
	bucketResponses      = &bucket{name: []byte("responses"), scope: shared, migrate: true, doc: "/v1/responses id -> ResponseOwner"}

	bucketLastUsed = &bucket{name: []byte("last_used"), scope: local, doc: "clock id -> unix ns (8 bytes)"}
	bucketLogs     = &bucket{name: []byte("logs"), scope: local, doc: "time-ordered record id -> LogRecord"}
	bucketUsage    = &bucket{name: []byte("usage"), scope: local, doc: "hour + dimensions -> UsageCounters"}

	bucketMembers    = &bucket{name: []byte("members"), scope: fleetOnly, doc: "instance id -> Member, lease-bound"}
	bucketTombstones = &bucket{name: []byte("tombstones"), scope: fleetOnly, doc: "bucket name -> \"\", rewritten by every deletion from it"}
)

// schema lists every bucket.
var schema = []*bucket{
	bucketMeta, bucketAccounts, bucketKeys, bucketKeyIDs, bucketKeyIndex, bucketBYOK, bucketVersions, bucketHealth, bucketPolicies,
	bucketContracts, bucketPrices, bucketLimitSets, bucketLimits,
	bucketUsers, bucketEmails, bucketPeople, bucketTokens, bucketSessions, bucketPersonSessions, bucketThrottle, bucketResponses,
	bucketLastUsed, bucketLogs, bucketUsage,
	bucketMembers, bucketTombstones,
	// The reconciliation's (usage_readers.go, reconcile.go, credential_usage.go).
	bucketUsageReaders, bucketLedger, bucketKeyNotes, bucketRuns, bucketAccepted, bucketCredUsage,
}

// bucketsByName finds a bucket by name.
var bucketsByName = func() map[string]*bucket {
	m := make(map[string]*bucket, len(schema))
	for _, b := range schema {
		m[string(b.name)] = b
	}
	return m
}()

// inFile reports whether the bbolt file has the bucket (every bucket but the
// fleet backend's own).
func (b *bucket) inFile() bool { return b.scope != fleetOnly }

// SharedBuckets are the buckets that live in etcd in fleet mode and that
// MigrateToFleet copies: accounts, API-key hashes, ids and index, sealed
// BYOK records and their versions, credential health, byok_only policies,
// console people, memberships, emails, setup links, sessions and their
// index, the sign-in throttle, and the /v1/responses id owners.
var SharedBuckets = func() []string {
	var out []string
	for _, b := range schema {
		if b.migrate {
			out = append(out, string(b.name))
		}
	}
	return out
}()
