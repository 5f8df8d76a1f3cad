package ops

import "github.com/agentrouter/caddy-agentrouter/store"

// maxNameLength bounds an account's or an API key's name.
const maxNameLength = 200

// CreateAccount creates the account id (1-64 letters, digits, '.', '_' or
// '-', starting with a letter or digit) with a display name of at most 200
// characters.
func (o *Ops) CreateAccount(id, name string) (store.Account, error) {
	if id == "" {
		return store.Account{}, errorf(Invalid, "account id is required: {\"id\": \"acme\", \"name\": \"Acme Corp\"}")
	}
	if err := store.ValidateAccountID(id); err != nil {
		return store.Account{}, &Error{Kind: Invalid, Err: err}
	}
	if len(name) > maxNameLength {
		return store.Account{}, errorf(Invalid, "account name is longer than %d characters", maxNameLength)
	}
	return o.Store.CreateAccount(id, name)
}

// Accounts lists the accounts by id, a page at a time (the zero Page: all
// of them, which reads every account of the store).
func (o *Ops) Accounts(p Page) (List[store.Account], error) {
	return paged(p, o.Store.Accounts, o.Store.AccountsPage)
}

// Account returns one account.
func (o *Ops) Account(id string) (store.Account, error) { return o.Store.Account(id) }

// DeleteAccount removes an account with everything it holds: API keys
// (refused from the next request on), BYOK credentials, policies and
// memberships.
func (o *Ops) DeleteAccount(id string) error { return o.Store.DeleteAccount(id) }
