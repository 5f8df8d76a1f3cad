package admin

// route is one admin route: a method, a path under Prefix (ServeMux
// pattern syntax: {account} is r.PathValue("account")) and its handler.
type route struct {
	method, path string
	serve        handler
}

// routes is the admin API, one line per route; README's Admin API section
// shows each (TestRouteTable holds the two together). A new resource is a
// file here with its handlers, a file in ops with its operations, and its
// lines below.
var routes = []route{
	{"GET", "accounts", listAccounts},
	{"POST", "accounts", createAccount},
	{"GET", "accounts/{account}", getAccount},
	{"DELETE", "accounts/{account}", deleteAccount},
	{"POST", "tenants", createTenants},

	{"GET", "accounts/{account}/keys", listKeys},
	{"POST", "accounts/{account}/keys", createKey},
	{"PATCH", "accounts/{account}/keys/{key}", patchKey},
	{"DELETE", "accounts/{account}/keys/{key}", revokeKey},

	{"GET", "accounts/{account}/users", listUsers},
	{"POST", "accounts/{account}/users", createUser},
	{"DELETE", "accounts/{account}/users/{user}", deleteUser},
	{"POST", "accounts/{account}/users/{user}/setup", resetUser},

	{"GET", "accounts/{account}/byok", listBYOK},
	{"GET", "accounts/{account}/byok/{provider}", getBYOK},
	{"POST", "accounts/{account}/byok/{provider}", putBYOK},
	{"PUT", "accounts/{account}/byok/{provider}", putBYOK},
	{"PATCH", "accounts/{account}/byok/{provider}", patchBYOK},
	{"DELETE", "accounts/{account}/byok/{provider}", deleteBYOK},
	{"POST", "accounts/{account}/byok/{provider}/test", testBYOK},

	{"GET", "providers", listProviders},
	{"GET", "logs", listLogs},
	{"GET", "logs/{id}", getLog},
	{"GET", "usage", usage},
	{"GET", "fleet", fleetStatus},
}
