package caddymodule

import (
	"bytes"
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// provisionApp provisions an App the way Caddy would, and cleans it up.
func provisionApp(t *testing.T, a *App) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := a.Provision(ctx)
	if err != nil {
		a.Cleanup()
		return err
	}
	return nil
}

// TestMasterKeyRotation: a store sealed under key A opens under key B only
// with A listed as an old key; then its credentials are re-sealed and B
// alone opens it, while A alone is refused.
func TestMasterKeyRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ar.db")
	keyA := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA}, 32))
	keyB := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xB}, 32))
	secret := "sk-proj-rotation" + strings.Repeat("q", 40)

	a := &App{Store: path, MasterKey: keyA}
	if err := provisionApp(t, a); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.CreateAccount("acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.PutCredential("acme", "openai", secret, "m", storeExtras()); err != nil {
		t.Fatal(err)
	}
	a.Cleanup()

	if err := provisionApp(t, &App{Store: path, MasterKey: keyB}); err == nil || !strings.Contains(err.Error(), "wrong master key") {
		t.Fatalf("key B without the old key: %v", err)
	}
	b := &App{Store: path, MasterKey: keyB, OldMasterKeys: []string{keyA}}
	if err := provisionApp(t, b); err != nil {
		t.Fatalf("key B with A as old key: %v", err)
	}
	if c := b.store.Snapshot().Credential("acme", "openai"); c == nil || c.Key() != secret {
		t.Fatal("the credential did not survive the rotation")
	}
	b.Cleanup()

	c := &App{Store: path, MasterKey: keyB}
	if err := provisionApp(t, c); err != nil {
		t.Fatalf("key B alone after the rotation: %v", err)
	}
	if cr := c.store.Snapshot().Credential("acme", "openai"); cr == nil || cr.Key() != secret {
		t.Fatal("the credential does not open under the new key alone")
	}
	c.Cleanup()
	if err := provisionApp(t, &App{Store: path, MasterKey: keyA}); err == nil {
		t.Fatal("the retired key still opens the store")
	}
	if err := provisionApp(t, &App{Store: path, MasterKey: keyB, OldMasterKeys: []string{"not-a-key"}}); err == nil || !strings.Contains(err.Error(), "old_master_keys[0]") {
		t.Fatalf("a bad old key: %v", err)
	}
}

func storeExtras() store.Extras { return store.Extras{} }
