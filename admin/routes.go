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
	{"GET", "accounts/{account}/byok/{provider}/contract", getContract},
	{"POST", "accounts/{account}/byok/{provider}/contract", addContractTerm},
	{"DELETE", "accounts/{account}/byok/{provider}/contract/{from}", deleteContractTerm},

	{"GET", "accounts/{account}/chargeback", chargeback},

	{"GET", "limits", allLimits},
	{"GET", "accounts/{account}/limits", accountLimits},
	{"PUT", "accounts/{account}/budgets/{id}", putBudget},
	{"DELETE", "accounts/{account}/budgets/{id}", deleteBudget},
	{"PUT", "accounts/{account}/rate_limits/{id}", putRateLimit},
	{"DELETE", "accounts/{account}/rate_limits/{id}", deleteRateLimit},
	{"PUT", "accounts/{account}/spillover", putSpillover},
	{"DELETE", "accounts/{account}/spillover", deleteSpillover},
	{"PUT", "accounts/{account}/caps", putCaps},
	{"DELETE", "accounts/{account}/caps", deleteCaps},

	{"GET", "accounts/{account}/usage_readers", listUsageReaders},
	{"GET", "accounts/{account}/usage_readers/{provider}", getUsageReader},
	{"PUT", "accounts/{account}/usage_readers/{provider}", putUsageReader},
	{"DELETE", "accounts/{account}/usage_readers/{provider}", deleteUsageReader},
	{"POST", "accounts/{account}/usage_readers/{provider}/test", testUsageReader},
	{"GET", "accounts/{account}/reconciliation", getReconciliation},
	{"POST", "accounts/{account}/reconciliation/{provider}/run", runReconciliation},
	{"PUT", "accounts/{account}/reconciliation/{provider}/keys", chooseProviderKey},
	{"POST", "accounts/{account}/reconciliation/{provider}/proposals/{id}/accept", acceptProposal},

	{"GET", "usage_readers", listUsageReaders},
	{"GET", "usage_readers/{provider}", getUsageReader},
	{"PUT", "usage_readers/{provider}", putUsageReader},
	{"DELETE", "usage_readers/{provider}", deleteUsageReader},
	{"POST", "usage_readers/{provider}/test", testUsageReader},
	{"GET", "reconciliation", getReconciliation},
	{"GET", "reconciliation/alerts", listAlerts},
	{"POST", "reconciliation/{provider}/run", runReconciliation},
	{"PUT", "reconciliation/{provider}/keys", chooseProviderKey},
	{"POST", "reconciliation/{provider}/proposals/{id}/accept", acceptProposal},

	{"GET", "providers", listProviders},
	{"GET", "logs", listLogs},
	{"GET", "logs/{id}", getLog},
	{"GET", "usage", usage},
	{"GET", "prices", listPrices},
	{"GET", "prices/{version}", getPriceVersion},
	{"GET", "fleet", fleetStatus},
}
