// Package admin is Agent Router's control plane: accounts, API keys, BYOK
// credentials, the request log and usage, as JSON over plain net/http
// handlers.
// caddymodule mounts it under /agent_router/ on Caddy's admin endpoint; it
// does not import Caddy. Handlers return an *Error, which the mount turns
// into Caddy's {"error": "..."} body with the right status.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// Prefix is where the admin routes live.
const Prefix = "/agent_router/"

// Error is an admin API failure with its HTTP status. Its message never holds
// key material.
type Error struct {
	Status int
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Err: fmt.Errorf(format, args...)}
}

// API serves the admin routes.
type API struct {
	// Store returns the open store, or nil when Agent Router is not running.
	Store func() *store.Store
	// PlatformKey reports whether a platform key is configured for a
	// provider in the running config.
	PlatformKey func(provider string) bool
	// Egress returns the running config's policy for tenant-chosen base
	// URLs; nil (or a nil result) is the strict default.
	Egress func() *egress.Policy
	// TestCredential makes a cheap authenticated call to a provider with a
	// key (the running gateway's TestCredential). nil: the test route
	// answers 503.
	TestCredential func(ctx context.Context, provider, key string, extras store.Extras) providers.TestResult
	// Profiles lists the routing profiles of the running config, for
	// checking the profile an API key is bound to. nil: no profiles.
	Profiles func() []string
}

func (a *API) egress() *egress.Policy {
	if a.Egress == nil {
		return nil
	}
	return a.Egress()
}

// ServeHTTP dispatches one admin request. It writes the response on success
// and returns an *Error (or another error, a 500) on failure.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	s := a.Store()
	if s == nil {
		return errorf(http.StatusServiceUnavailable, "agent_router is not running: add an agent_router handler to the config")
	}
	// Split the escaped path and unescape each segment once, so that an
	// escaped slash (%2F) stays inside its segment instead of acting as a
	// separator, and a segment is never unescaped twice.
	segs := strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/")
	parts := make([]string, 0, len(segs))
	for _, seg := range segs {
		p, err := url.PathUnescape(seg)
		if err != nil || p == "" {
			return errorf(http.StatusNotFound, "no such route: %s", r.URL.Path)
		}
		parts = append(parts, p)
	}
	if len(parts) < 2 || parts[0] != strings.Trim(Prefix, "/") {
		return errorf(http.StatusNotFound, "no such route: %s", r.URL.Path)
	}
	parts = parts[1:]
	switch {
	case len(parts) == 1 && parts[0] == "accounts":
		return a.route(w, r, map[string]handler{"GET": a.listAccounts, "POST": a.createAccount}, s, parts)
	case len(parts) == 2 && parts[0] == "accounts":
		return a.route(w, r, map[string]handler{"GET": a.getAccount, "DELETE": a.deleteAccount}, s, parts)
	case len(parts) == 3 && parts[0] == "accounts" && parts[2] == "keys":
		return a.route(w, r, map[string]handler{"GET": a.listKeys, "POST": a.createKey}, s, parts)
	case len(parts) == 4 && parts[0] == "accounts" && parts[2] == "keys":
		return a.route(w, r, map[string]handler{"PATCH": a.patchKey, "DELETE": a.revokeKey}, s, parts)
	case len(parts) == 3 && parts[0] == "accounts" && parts[2] == "users":
		return a.route(w, r, map[string]handler{"GET": a.listUsers, "POST": a.createUser}, s, parts)
	case len(parts) == 4 && parts[0] == "accounts" && parts[2] == "users":
		return a.route(w, r, map[string]handler{"DELETE": a.deleteUser}, s, parts)
	case len(parts) == 5 && parts[0] == "accounts" && parts[2] == "users" && parts[4] == "setup":
		return a.route(w, r, map[string]handler{"POST": a.resetUser}, s, parts)
	case len(parts) == 3 && parts[0] == "accounts" && parts[2] == "byok":
		return a.route(w, r, map[string]handler{"GET": a.listBYOK}, s, parts)
	case len(parts) == 4 && parts[0] == "accounts" && parts[2] == "byok":
		return a.route(w, r, map[string]handler{"GET": a.getBYOK, "POST": a.putBYOK, "PUT": a.putBYOK, "PATCH": a.patchBYOK, "DELETE": a.deleteBYOK}, s, parts)
	case len(parts) == 5 && parts[0] == "accounts" && parts[2] == "byok" && parts[4] == "test":
		return a.route(w, r, map[string]handler{"POST": a.testBYOK}, s, parts)
	case len(parts) == 1 && parts[0] == "providers":
		return a.route(w, r, map[string]handler{"GET": a.listProviders}, s, parts)
	case len(parts) == 1 && parts[0] == "logs":
		return a.route(w, r, map[string]handler{"GET": a.listLogs}, s, parts)
	case len(parts) == 2 && parts[0] == "logs":
		return a.route(w, r, map[string]handler{"GET": a.getLog}, s, parts)
	case len(parts) == 1 && parts[0] == "usage":
		return a.route(w, r, map[string]handler{"GET": a.usage}, s, parts)
	case len(parts) == 1 && parts[0] == "fleet":
		return a.route(w, r, map[string]handler{"GET": a.fleetStatus}, s, parts)
	}
	return errorf(http.StatusNotFound, "no such route: %s", r.URL.Path)
}

type handler func(w http.ResponseWriter, r *http.Request, s *store.Store, parts []string) error

func (a *API) route(w http.ResponseWriter, r *http.Request, methods map[string]handler, s *store.Store, parts []string) error {
	h, ok := methods[r.Method]
	if !ok {
		allow := make([]string, 0, len(methods))
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			if methods[m] != nil {
				allow = append(allow, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return errorf(http.StatusMethodNotAllowed, "method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", "))
	}
	err := h(w, r, s, parts)
	var ae *Error
	if errors.Is(err, store.ErrUnavailable) && !errors.As(err, &ae) {
		// Fleet mode, etcd unreachable: the write was not saved.
		return &Error{http.StatusServiceUnavailable, err}
	}
	return err
}

// --- accounts ---

type accountIn struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func (a *API) createAccount(w http.ResponseWriter, r *http.Request, s *store.Store, _ []string) error {
	var in accountIn
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.ID == "" {
		return errorf(http.StatusBadRequest, "account id is required: {\"id\": \"acme\", \"name\": \"Acme Corp\"}")
	}
	if err := store.ValidateAccountID(in.ID); err != nil {
		return &Error{http.StatusBadRequest, err}
	}
	if len(in.Name) > 200 {
		return errorf(http.StatusBadRequest, "account name is longer than 200 characters")
	}
	acct, err := s.CreateAccount(in.ID, in.Name)
	if err != nil {
		return storeErr(err)
	}
	return writeJSON(w, http.StatusCreated, acct)
}

func (a *API) listAccounts(w http.ResponseWriter, _ *http.Request, s *store.Store, _ []string) error {
	accts, err := s.Accounts()
	if err != nil {
		return storeErr(err)
	}
	return writeJSON(w, http.StatusOK, accts)
}

func (a *API) getAccount(w http.ResponseWriter, _ *http.Request, s *store.Store, parts []string) error {
	acct, err := s.Account(parts[1])
	if err != nil {
		return storeErr(err)
	}
	return writeJSON(w, http.StatusOK, acct)
}

func (a *API) deleteAccount(w http.ResponseWriter, _ *http.Request, s *store.Store, parts []string) error {
	if err := s.DeleteAccount(parts[1]); err != nil {
		return storeErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- API keys ---

type keyIn struct {
	Name string `json:"name"`
	// Profile binds the key to a routing profile of the running config.
	Profile string `json:"profile"`
}

type keyPatch struct {
	// Profile rebinds the key; "" unbinds it.
	Profile *string `json:"profile"`
}

// checkProfile refuses a profile the running config does not declare.
func (a *API) checkProfile(name string) error {
	if name == "" {
		return nil
	}
	var known []string
	if a.Profiles != nil {
		known = a.Profiles()
	}
	if !slices.Contains(known, name) {
		if len(known) == 0 {
			return errorf(http.StatusBadRequest, "unknown routing profile %q: the running config declares none (add 'profile <name> { ... }' to the agent_router handler)", clip(name))
		}
		return errorf(http.StatusBadRequest, "unknown routing profile %q (configured: %s)", clip(name), strings.Join(known, ", "))
	}
	return nil
}

type createdKey struct {
	store.APIKey
	// Key is the plaintext API key. It is returned once, here, and never
	// again.
	Key string `json:"key"`
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request, s *store.Store, parts []string) error {
	var in keyIn
	if err := decodeBody(r, &in, true); err != nil {
		return err
	}
	if len(in.Name) > 200 {
		return errorf(http.StatusBadRequest, "key name is longer than 200 characters")
	}
	if err := a.checkProfile(in.Profile); err != nil {
		return err
	}
	plain, k, err := s.CreateAPIKeyWithProfile(parts[1], in.Name, in.Profile)
	if err != nil {
		return storeErr(err)
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, createdKey{APIKey: k, Key: plain})
}

func (a *API) listKeys(w http.ResponseWriter, _ *http.Request, s *store.Store, parts []string) error {
	keys, err := s.APIKeys(parts[1])
	if err != nil {
		return storeErr(err)
	}
	return writeJSON(w, http.StatusOK, keys)
}

// patchKey changes an API key's routing profile: {"profile": "team"} binds
// it, {"profile": ""} unbinds it. The next request with the key uses it.
func (a *API) patchKey(w http.ResponseWriter, r *http.Request, s *store.Store, parts []string) error {
	var in keyPatch
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.Profile == nil {
		return errorf(http.StatusBadRequest, "profile is required: {\"profile\": \"team\"} (\"\" unbinds)")
	}
	if err := a.checkProfile(*in.Profile); err != nil {
		return err
	}
	k, err := s.SetAPIKeyProfile(parts[1], parts[3], *in.Profile)
	if err != nil {
		return storeErr(err)
	}
	return writeJSON(w, http.StatusOK, k)
}

func (a *API) revokeKey(w http.ResponseWriter, _ *http.Request, s *store.Store, parts []string) error {
	if err := s.RevokeAPIKey(parts[1], parts[3]); err != nil {
		return storeErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- BYOK credentials ---

// BYOKStatus is the public view of one provider's BYOK slot for an account.
type BYOKStatus struct {
	Provider string `json:"provider"`
	// Status is "active", "invalid" (the provider rejected the key; see
	// invalid_since and invalid_reason) or "not_configured".
	Status string `json:"status"`
	// BYOKOnly is the account's policy for this provider: when true, the
	// platform key never serves it.
	BYOKOnly bool `json:"byok_only"`
	// Serves says which credential requests for this provider use now:
	// "byok", "platform" or "none".
	Serves       string     `json:"serves"`
	Masked       string     `json:"masked,omitempty"`
	Fingerprint  string     `json:"fingerprint,omitempty"`
	Version      uint64     `json:"version,omitempty"`
	BaseURL      string     `json:"base_url,omitempty"`
	APIVersion   string     `json:"api_version,omitempty"`
	Organization string     `json:"organization,omitempty"`
	Project      string     `json:"project,omitempty"`
	UpdatedAt    *time.Time `json:"updated_at"`
	LastUsedAt   *time.Time `json:"last_used_at"`
	// InvalidSince and InvalidReason describe the provider's rejection of
	// the key (status, error class; never key material). A success with the
	// key, or a rotation, clears them.
	InvalidSince  *time.Time `json:"invalid_since,omitempty"`
	InvalidReason string     `json:"invalid_reason,omitempty"`
}

func (a *API) status(s *store.Store, account, provider string, c *store.Credential) BYOKStatus {
	st := BYOKStatus{Provider: provider, Status: "not_configured", Serves: "none"}
	st.BYOKOnly = s.Snapshot().Policy(account, provider).BYOKOnly
	if a.PlatformKey != nil && a.PlatformKey(provider) && !st.BYOKOnly {
		st.Serves = "platform"
	}
	if c != nil {
		t := c.UpdatedAt
		st.Status, st.Serves = "active", "byok"
		st.Masked, st.Fingerprint, st.Version = c.Masked, c.Fingerprint, c.Version
		st.BaseURL, st.APIVersion = c.Extras.BaseURL, c.Extras.APIVersion
		st.Organization, st.Project = c.Extras.Organization, c.Extras.Project
		st.UpdatedAt, st.LastUsedAt = &t, c.LastUsedAt
		if since, reason, invalid := s.CredentialHealth(account, provider); invalid {
			st.Status, st.InvalidSince, st.InvalidReason = "invalid", &since, reason
		}
	}
	return st
}

func (a *API) listBYOK(w http.ResponseWriter, _ *http.Request, s *store.Store, parts []string) error {
	creds, err := s.Credentials(parts[1])
	if err != nil {
		return storeErr(err)
	}
	out := make([]BYOKStatus, 0, len(providers.Names))
	for _, name := range providers.Names {
		var c *store.Credential
		if v, ok := creds[name]; ok {
			c = &v
		}
		out = append(out, a.status(s, parts[1], name, c))
	}
	return writeJSON(w, http.StatusOK, out)
}

func checkProvider(name string) error {
	if providers.Get(name) == nil {
		return errorf(http.StatusNotFound, "unknown provider %q (supported: %s)", name, strings.Join(providers.Names, ", "))
	}
	return nil
}

func (a *API) getBYOK(w http.ResponseWriter, _ *http.Request, s *store.Store, parts []string) error {
	if err := checkProvider(parts[3]); err != nil {
		return err
	}
	creds, err := s.Credentials(parts[1])
	if err != nil {
		return storeErr(err)
	}
	var c *store.Credential
	if v, ok := creds[parts[3]]; ok {
		c = &v
	}
	return writeJSON(w, http.StatusOK, a.status(s, parts[1], parts[3], c))
}

// BYOKInput registers or rotates an account's key for a provider: the body
// of PUT /agent_router/accounts/{id}/byok/{provider}, and what the console's
// form sends.
type BYOKInput struct {
	APIKey       *string `json:"api_key"`
	BYOKOnly     *bool   `json:"byok_only"`
	BaseURL      string  `json:"base_url"`
	APIVersion   string  `json:"api_version"`
	Organization string  `json:"organization"`
	Project      string  `json:"project"`
}

var azureVersion = regexp.MustCompile(`^(v1|preview|\d{4}-\d{2}-\d{2}(-preview)?)$`)

func (a *API) putBYOK(w http.ResponseWriter, r *http.Request, s *store.Store, parts []string) error {
	account, provider := parts[1], parts[3]
	var in BYOKInput
	if err := checkProvider(provider); err != nil {
		return err
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	c, err := SaveBYOK(s, a.egress(), account, provider, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a.status(s, account, provider, &c))
}

// SaveBYOK checks and stores an account's key for a provider, with the same
// rules wherever it comes from (the admin API, the console): the provider's
// key format, no masked key sent back, extras that fit the provider and a
// base URL the egress policy allows. Bad input is an *Error with status 400
// (404 for an unknown account) whose message says what to fix and holds no
// key material.
func SaveBYOK(s *store.Store, pol *egress.Policy, account, provider string, in BYOKInput) (store.Credential, error) {
	if err := checkProvider(provider); err != nil {
		return store.Credential{}, err
	}
	if in.APIKey == nil {
		return store.Credential{}, errorf(http.StatusBadRequest, "api_key is required: {\"api_key\": \"...\"}")
	}
	key := providers.NormalizeKey(*in.APIKey)
	if err := providers.CheckKey(provider, key); err != nil {
		return store.Credential{}, &Error{http.StatusBadRequest, err}
	}
	existing, err := s.Credentials(account)
	if err != nil {
		return store.Credential{}, storeErr(err)
	}
	if old, ok := existing[provider]; ok && key == old.Masked {
		return store.Credential{}, errorf(http.StatusBadRequest, "api_key equals the stored masked form; send the full key")
	}
	extras := normalizeExtras(in.BaseURL, in.APIVersion, in.Organization, in.Project)
	if err := CheckExtras(pol, provider, extras); err != nil {
		return store.Credential{}, err
	}
	c, err := s.PutCredential(account, provider, key, providers.Mask(key), extras)
	if err != nil {
		return store.Credential{}, storeErr(err)
	}
	if in.BYOKOnly != nil {
		if err := s.SetPolicy(account, provider, store.Policy{BYOKOnly: *in.BYOKOnly}); err != nil {
			return c, storeErr(err)
		}
	}
	return c, nil
}

type policyIn struct {
	BYOKOnly *bool `json:"byok_only"`
}

// patchBYOK changes the account's policy for a provider without touching
// its key: {"byok_only": true} keeps the provider's traffic on the
// account's own contract (or refuses it), even where a route lists a
// platform target.
func (a *API) patchBYOK(w http.ResponseWriter, r *http.Request, s *store.Store, parts []string) error {
	account, provider := parts[1], parts[3]
	if err := checkProvider(provider); err != nil {
		return err
	}
	var in policyIn
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.BYOKOnly == nil {
		return errorf(http.StatusBadRequest, "byok_only is required: {\"byok_only\": true}")
	}
	if err := s.SetPolicy(account, provider, store.Policy{BYOKOnly: *in.BYOKOnly}); err != nil {
		return storeErr(err)
	}
	creds, err := s.Credentials(account)
	if err != nil {
		return storeErr(err)
	}
	var c *store.Credential
	if v, ok := creds[provider]; ok {
		c = &v
	}
	return writeJSON(w, http.StatusOK, a.status(s, account, provider, c))
}

func normalizeExtras(baseURL, apiVersion, organization, project string) store.Extras {
	return store.Extras{BaseURL: strings.TrimRight(strings.TrimSpace(baseURL), "/"), APIVersion: strings.TrimSpace(apiVersion),
		Organization: strings.TrimSpace(organization), Project: strings.TrimSpace(project)}
}

type testIn struct {
	APIKey       *string `json:"api_key"`
	BaseURL      string  `json:"base_url"`
	APIVersion   string  `json:"api_version"`
	Organization string  `json:"organization"`
	Project      string  `json:"project"`
}

// TestOutcome is the answer of POST .../byok/{provider}/test.
type TestOutcome struct {
	Provider string `json:"provider"`
	// Tested is "stored" (the account's registered key) or "pasted" (the
	// key in the request body, not saved).
	Tested string `json:"tested"`
	providers.TestResult
	// CredentialStatus is the stored key's status after the test: a
	// success clears an invalid mark, a rejection sets one. Stored tests
	// only.
	CredentialStatus string `json:"credential_status,omitempty"`
}

// testBYOK checks a provider key with a cheap authenticated call through
// the running gateway: the key in the body (with its extras, checked as
// PUT checks them; nothing is saved), or, with no body, the account's
// stored key, whose invalid mark a success clears and a rejection sets.
func (a *API) testBYOK(w http.ResponseWriter, r *http.Request, s *store.Store, parts []string) error {
	account, provider := parts[1], parts[3]
	if err := checkProvider(provider); err != nil {
		return err
	}
	if _, err := s.Account(account); err != nil {
		return storeErr(err)
	}
	var in testIn
	if err := decodeBody(r, &in, true); err != nil {
		return err
	}
	if a.TestCredential == nil {
		return errorf(http.StatusServiceUnavailable, "no agent_router handler is running to test keys with: add one to the config")
	}
	out := TestOutcome{Provider: provider}
	if in.APIKey == nil {
		if in.BaseURL != "" || in.APIVersion != "" || in.Organization != "" || in.Project != "" {
			return errorf(http.StatusBadRequest, "base_url, api_version, organization and project go with a pasted api_key; send no body to test the stored key")
		}
		sec := s.Snapshot().Credential(account, provider)
		if sec == nil {
			return errorf(http.StatusNotFound, "account %q has no %s key registered: send {\"api_key\": \"...\"} to test a key before saving it", account, provider)
		}
		out.Tested = "stored"
		out.TestResult = a.TestCredential(r.Context(), provider, sec.Key(), sec.Extras)
		switch out.Outcome {
		case providers.TestOK:
			s.MarkValid(sec)
		case providers.TestRejected:
			s.MarkInvalid(sec, time.Now(), fmt.Sprintf("%s answered %d to a key test (%s)", provider, out.Status, providers.ClassAuth))
		}
		out.CredentialStatus = "active"
		if _, _, invalid := sec.Invalid(); invalid {
			out.CredentialStatus = "invalid"
		}
		return writeJSON(w, http.StatusOK, out)
	}
	key := providers.NormalizeKey(*in.APIKey)
	if err := providers.CheckKey(provider, key); err != nil {
		return &Error{http.StatusBadRequest, err}
	}
	if old := s.Snapshot().Credential(account, provider); old != nil && key == providers.Mask(old.Key()) {
		return errorf(http.StatusBadRequest, "api_key equals the stored masked form; send the full key, or no body to test the stored key")
	}
	extras := normalizeExtras(in.BaseURL, in.APIVersion, in.Organization, in.Project)
	if err := CheckExtras(a.egress(), provider, extras); err != nil {
		return err
	}
	out.Tested = "pasted"
	out.TestResult = a.TestCredential(r.Context(), provider, key, extras)
	return writeJSON(w, http.StatusOK, out)
}

// CheckExtras checks a credential's extras for provider: which fields the
// provider takes, and a base URL the egress policy pol allows.
func CheckExtras(pol *egress.Policy, provider string, e store.Extras) error {
	if e.BaseURL != "" {
		if provider != providers.OpenAI && provider != providers.Azure {
			return errorf(http.StatusBadRequest, "base_url can be set only for openai and azure credentials")
		}
		if err := pol.CheckURL(e.BaseURL); err != nil {
			return &Error{http.StatusBadRequest, err}
		}
	}
	if provider == providers.Azure && e.BaseURL == "" {
		return errorf(http.StatusBadRequest, "azure credentials need base_url, the resource endpoint (https://{resource}.openai.azure.com)")
	}
	if e.APIVersion != "" {
		if provider != providers.Azure {
			return errorf(http.StatusBadRequest, "api_version can be set only for azure credentials")
		}
		if !azureVersion.MatchString(e.APIVersion) {
			return errorf(http.StatusBadRequest, "api_version must look like 2024-10-21, 2025-04-01-preview or v1")
		}
	}
	if (e.Organization != "" || e.Project != "") && provider != providers.OpenAI {
		return errorf(http.StatusBadRequest, "organization and project can be set only for openai credentials")
	}
	return nil
}

func (a *API) deleteBYOK(w http.ResponseWriter, _ *http.Request, s *store.Store, parts []string) error {
	if err := checkProvider(parts[3]); err != nil {
		return err
	}
	if err := s.DeleteCredential(parts[1], parts[3]); err != nil {
		return storeErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- providers ---

// ProviderInfo describes a supported provider.
type ProviderInfo struct {
	Name           string `json:"name"`
	Implemented    bool   `json:"implemented"`
	PlatformKey    bool   `json:"platform_key"`
	DefaultBaseURL string `json:"default_base_url,omitempty"`
}

func (a *API) listProviders(w http.ResponseWriter, _ *http.Request, _ *store.Store, _ []string) error {
	out := make([]ProviderInfo, 0, len(providers.Names))
	for _, name := range providers.Names {
		p := providers.Get(name)
		out = append(out, ProviderInfo{Name: name, Implemented: p.Implemented,
			PlatformKey: a.PlatformKey != nil && a.PlatformKey(name), DefaultBaseURL: p.DefaultBaseURL})
	}
	return writeJSON(w, http.StatusOK, out)
}

// --- request log ---

type logPage struct {
	Records []store.LogRecord `json:"records"`
	// Next is the cursor for the following (older) page: pass it as before.
	Next string `json:"next,omitempty"`
	// Missing lists the fleet members that did not answer (fleet mode):
	// their records are not in this page.
	Missing []MemberError `json:"missing,omitempty"`
}

func (a *API) listLogs(w http.ResponseWriter, r *http.Request, s *store.Store, _ []string) error {
	q := r.URL.Query()
	f := store.LogFilter{AccountID: q.Get("account"), KeyID: q.Get("key_id"), Before: q.Get("before"),
		Provider: q.Get("provider"), CredentialSource: q.Get("credential_source"), Source: q.Get("source")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return errorf(http.StatusBadRequest, "limit must be a number from 1 to 1000")
		}
		f.Limit = n
	}
	if f.Provider != "" && providers.Get(f.Provider) == nil {
		return errorf(http.StatusBadRequest, "unknown provider %q (supported: %s)", clip(f.Provider), strings.Join(providers.Names, ", "))
	}
	if c := f.CredentialSource; c != "" && c != "byok" && c != "platform" {
		return errorf(http.StatusBadRequest, "credential_source must be byok or platform")
	}
	if len(f.Source) > 64 {
		return errorf(http.StatusBadRequest, "source is longer than 64 characters")
	}
	if st := q.Get("status"); st != "" {
		n, err := strconv.Atoi(st)
		if err != nil || n < 100 || n > 599 {
			return errorf(http.StatusBadRequest, "status must be an HTTP status from 100 to 599")
		}
		f.Status = n
	}
	var err error
	if f.From, f.To, err = timeRange(q); err != nil {
		return err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return errorf(http.StatusBadRequest, "from must be before to")
	}
	recs, next, missing, err := FleetLogs(r.Context(), s, f)
	if err != nil {
		return storeErr(err)
	}
	return writeJSON(w, http.StatusOK, logPage{Records: recs, Next: next, Missing: missing})
}

func (a *API) getLog(w http.ResponseWriter, _ *http.Request, s *store.Store, parts []string) error {
	rec, err := s.Log(parts[1])
	if err != nil {
		return storeErr(err)
	}
	return writeJSON(w, http.StatusOK, rec)
}

// --- usage ---

// usage answers GET /agent_router/usage with the hourly or daily usage
// rollups: ?account=&from=&to=&bucket=hour|day&group_by=provider,model.
func (a *API) usage(w http.ResponseWriter, r *http.Request, s *store.Store, _ []string) error {
	q := r.URL.Query()
	uq := store.UsageQuery{AccountID: q.Get("account"), Bucket: q.Get("bucket")}
	if uq.Bucket != "" && uq.Bucket != "hour" && uq.Bucket != "day" {
		return errorf(http.StatusBadRequest, "bucket must be hour or day")
	}
	for _, g := range strings.Split(q.Get("group_by"), ",") {
		if g = strings.TrimSpace(g); g == "" {
			continue
		}
		if !slices.Contains(store.UsageDimensions, g) {
			return errorf(http.StatusBadRequest, "unknown group_by dimension %q (use %s)", clip(g), strings.Join(store.UsageDimensions, ", "))
		}
		uq.GroupBy = append(uq.GroupBy, g)
	}
	var err error
	if uq.From, uq.To, err = timeRange(q); err != nil {
		return err
	}
	// The store fills in what is missing (to: now; from: 24 hours before
	// to) and checks the range.
	res, missing, err := FleetUsage(r.Context(), s, uq)
	if err != nil {
		return storeErr(err)
	}
	return writeJSON(w, http.StatusOK, struct {
		store.UsageResult
		// Missing lists the fleet members that did not answer: their
		// usage is not in the sums.
		Missing []MemberError `json:"missing,omitempty"`
	}{res, missing})
}

// timeRange reads the from and to query parameters: RFC 3339 timestamps,
// or dates (UTC midnight). Either may be missing (zero).
func timeRange(q url.Values) (from, to time.Time, err error) {
	if from, err = parseTime(q, "from"); err == nil {
		to, err = parseTime(q, "to")
	}
	return from, to, err
}

func parseTime(q url.Values, name string) (time.Time, error) {
	v := strings.TrimSpace(q.Get(name))
	if v == "" {
		return time.Time{}, nil
	}
	// An unescaped "+" of a UTC offset arrives as a space.
	v = strings.ReplaceAll(v, " ", "+")
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, errorf(http.StatusBadRequest, "%s must be an RFC 3339 timestamp (2026-01-02T15:04:05Z) or a date (2026-01-02)", name)
}

// clip shortens a client-supplied value quoted in an error message.
func clip(v string) string {
	if len(v) > 64 {
		return v[:64] + "…"
	}
	return v
}

// --- helpers ---

// maxBody bounds a request body.
const maxBody = 64 << 10

func decode(r *http.Request, v any) error { return decodeBody(r, v, false) }

// decodeBody decodes one JSON object; with optional, an empty body leaves v
// as it is.
func decodeBody(r *http.Request, v any, optional bool) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// One JSON object, nothing after it but whitespace.
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = terr
			if err == nil {
				err = errTrailing
			}
		}
	}
	if err != nil {
		var me *http.MaxBytesError
		switch {
		case errors.Is(err, io.EOF) && optional:
			return nil
		case errors.Is(err, io.EOF):
			return errorf(http.StatusBadRequest, "request body is empty; send a JSON object")
		case errors.As(err, &me):
			return errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d KiB", maxBody>>10)
		}
		// json errors quote field names and types, never values.
		return errorf(http.StatusBadRequest, "invalid JSON body: %v", jsonErr(err))
	}
	return nil
}

var errTrailing = errors.New("unexpected data after the JSON object")

// jsonErr keeps decoder messages free of the values the client sent (a
// syntax error can otherwise quote part of a key).
func jsonErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te) && te.Field == "":
		return "the body must be a JSON object"
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	case errors.Is(err, errTrailing):
		return err.Error()
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "malformed JSON"
}

func storeErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Error{http.StatusNotFound, err}
	case errors.Is(err, store.ErrExists):
		return &Error{http.StatusConflict, err}
	case errors.Is(err, store.ErrInvalidQuery), errors.Is(err, store.ErrInvalidProfile):
		return &Error{http.StatusBadRequest, err}
	case errors.Is(err, store.ErrUnavailable):
		return &Error{http.StatusServiceUnavailable, err}
	}
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}
