package store

import (
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A response is remembered for its account only, forgotten on delete, and
// pruned after the retention.
func TestResponseOwnership(t *testing.T) {
	s := openStore(t, dbPath(t), masterKey(1), usageQuiet)
	if _, err := s.ResponseFor("acme", "resp_1"); !errors.Is(err, ErrResponseNotFound) {
		t.Fatalf("unknown response before any was stored: %v", err)
	}
	owner := ResponseOwner{AccountID: "acme", Provider: "openai", CredentialSource: "byok"}
	if err := s.PutResponse("resp_1", owner); err != nil {
		t.Fatal(err)
	}
	got, err := s.ResponseFor("acme", "resp_1")
	if err != nil || got.Provider != "openai" || got.CredentialSource != "byok" || got.Created.IsZero() {
		t.Fatalf("owner's look-up = %+v, %v", got, err)
	}
	if _, err := s.ResponseFor("globex", "resp_1"); !errors.Is(err, ErrResponseNotFound) {
		t.Errorf("another account's look-up: %v", err)
	}
	if err := s.ForgetResponse("resp_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResponseFor("acme", "resp_1"); !errors.Is(err, ErrResponseNotFound) {
		t.Errorf("look-up after forgetting: %v", err)
	}

	old := owner
	old.Created = time.Now().Add(-ResponseRetention - time.Hour)
	if err := s.PutResponse("resp_old", old); err != nil {
		t.Fatal(err)
	}
	s.PutResponse("resp_new", owner)
	if _, err := s.ResponseFor("acme", "resp_old"); !errors.Is(err, ErrResponseNotFound) {
		t.Errorf("an expired response is still served: %v", err)
	}
	s.pruneResponses(ResponseRetention)
	if _, err := s.ResponseFor("acme", "resp_new"); err != nil {
		t.Errorf("pruning dropped a fresh response: %v", err)
	}
	count := func() int {
		n := 0
		s.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketResponses.name).ForEach(func(k, _ []byte) error {
				if k[0] != 0 {
					n++
				}
				return nil
			})
		})
		return n
	}
	if n := count(); n != 1 {
		t.Errorf("%d responses left after pruning, want 1", n)
	}
	// Pruning again within the hour walks nothing: an expired entry stays
	// (and is not served) until the next prune.
	s.PutResponse("resp_old2", old)
	s.pruneResponses(ResponseRetention)
	if n := count(); n != 2 {
		t.Errorf("%d responses after a second prune within the hour, want 2", n)
	}
	if err := s.PutResponse("", owner); err == nil {
		t.Error("an empty id was stored")
	}
}

// Ownership is insert-only: another account cannot take a response id
// over (its provider, an account's own server, can answer with any id); the
// owner keeps it, and only an expired record is replaced.
func TestResponseOwnershipInsertOnly(t *testing.T) {
	s := openStore(t, dbPath(t), masterKey(1), usageQuiet)
	checkResponseOwnershipInsertOnly(t, s)
}

func checkResponseOwnershipInsertOnly(t *testing.T, s *Store) {
	t.Helper()
	mine := ResponseOwner{AccountID: "acme", Provider: "openai", CredentialSource: "platform"}
	if err := s.PutResponse("resp_taken", mine); err != nil {
		t.Fatal(err)
	}
	thief := ResponseOwner{AccountID: "globex", Provider: "openai", CredentialSource: "byok"}
	if err := s.PutResponse("resp_taken", thief); !errors.Is(err, ErrResponseTaken) {
		t.Errorf("another account's put of an owned id: %v, want ErrResponseTaken", err)
	}
	if got, err := s.ResponseFor("acme", "resp_taken"); err != nil || got.CredentialSource != "platform" {
		t.Errorf("the owner lost its response: %+v %v", got, err)
	}
	if _, err := s.ResponseFor("globex", "resp_taken"); !errors.Is(err, ErrResponseNotFound) {
		t.Errorf("the other account got the response: %v", err)
	}
	// The owner remembering it again keeps the first record.
	again := mine
	again.CredentialSource = "byok"
	if err := s.PutResponse("resp_taken", again); err != nil {
		t.Errorf("the owner's second put: %v", err)
	}
	if got, _ := s.ResponseFor("acme", "resp_taken"); got.CredentialSource != "platform" {
		t.Errorf("the owner's second put replaced the record: %+v", got)
	}
	// An expired record no longer holds the id.
	old := mine
	old.Created = time.Now().Add(-ResponseRetention - time.Hour)
	if err := s.PutResponse("resp_expired", old); err != nil {
		t.Fatal(err)
	}
	if err := s.PutResponse("resp_expired", thief); err != nil {
		t.Errorf("a put over an expired record: %v", err)
	}
	if _, err := s.ResponseFor("globex", "resp_expired"); err != nil {
		t.Errorf("the new owner of an expired id: %v", err)
	}
}

// Usage rollups carry the front door; chat rows keep their old key.
func TestUsageAPIDimension(t *testing.T) {
	s := openStore(t, dbPath(t), masterKey(1), usageQuiet)
	for _, api := range []string{"", "chat", "messages", "messages", "responses", "embeddings"} {
		rec := &LogRecord{Time: uh0, AccountID: "acme", Provider: "anthropic", UpstreamModel: "claude", Status: 200,
			PromptTokens: 10, CompletionTokens: 1, TotalTokens: 11, API: api}
		if api == "embeddings" {
			rec.API, rec.Endpoint = "", "embeddings"
		}
		s.Record(rec)
	}
	s.FlushLog()
	res := mustUsage(t, s, UsageQuery{From: uh0, To: uh0.Add(time.Hour), GroupBy: []string{DimAPI}})
	got := map[string]int64{}
	for _, g := range res.Totals {
		got[g.Key[DimAPI]] = g.Requests
	}
	want := map[string]int64{"chat": 2, "messages": 2, "responses": 1, "embeddings": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("api %s: %d requests, want %d (all: %v)", k, got[k], v, got)
		}
	}
	if d := dimsOf(&LogRecord{API: "chat"}); d.api != "" || len(d.key()) != len(usageDims{model: UnresolvedModel}.key()) {
		t.Error("a chat row's key has a sixth dimension")
	}
	d := usageDims{hour: 3600, account: "a", api: "responses"}
	if back, ok := parseUsageKey(d.key()); !ok || back != d {
		t.Errorf("round trip of %+v = %+v", d, back)
	}
}
