// Package store persists Agent Router's state and keeps the immutable
// in-memory snapshot that the request hot path reads. It does not import
// Caddy. It owns four layers:
//
//   - Backends, behind one KV seam (kv.go): one bbolt file, the embedded
//     single-node default; or, in fleet mode, etcd shared by several
//     instances, mirrored in memory and followed by a watch (fleet.go,
//     fleettx.go, mirror.go, members.go, fleethealth.go). The seam also says
//     what differs between the two (transaction bounds, revisions, members),
//     so the layers above do not ask which backend they run on.
//   - The schema (schema.go): every bucket, named once, with where it lives
//     (shared through the seam, or local to the instance's file) and whether
//     the snapshot is built from it.
//   - The records: accounts, API keys (stored as SHA-256, indexed by account),
//     BYOK credentials sealed under the master key (seal.go) with their
//     health marks and byok_only policies (health.go), console people,
//     memberships, setup links and sessions (users.go, sessions.go,
//     passwords.go), the sign-in throttle (throttle.go), /v1/responses
//     ownership (responses.go); paged lists (page.go) and bulk creation
//     (bulk.go); in-place migrations of older files (migrate*.go).
//   - Per-instance data, always in the local bbolt file: the request log
//     (logs.go), usage rollups (usage.go) and "last used" clocks (clocks.go),
//     which fleet members read from each other.
//
// The snapshot (snapshot.go) is changed by what each committed write changed
// — on every instance in fleet mode — and read with one atomic load.
package store
