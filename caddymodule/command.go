package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/store"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "agent-router",
		Usage: "add-user --account <id> --email <address> [--role owner|member] [--create-account] [--store <path>] [--master-key <key>] [--site <url>] | migrate --from <bbolt file> --to etcd --endpoints <url>,... [--prefix <prefix>] | import-prices [--format caddyfile|json] <litellm price file>",
		Short: "Manages Agent Router console users in the store, migrates it to etcd, imports prices",
		Long: `
agent-router add-user invites an email into an account (a console user:
the person's membership there) and prints a one-time setup link: a new
person chooses a password there; a person who already signs in to the
console for another account enters that password to accept, and then
switches between the accounts in the console. It opens the store file
directly, so
it works while Caddy is stopped; while Caddy runs, the file is locked and the
command says so and prints the admin API calls that do the same (the
account's first, with --create-account):

    curl -X POST localhost:2019/agent_router/accounts -d '{"id": "acme"}'
    curl -X POST localhost:2019/agent_router/accounts/acme/users \
         -d '{"email": "dev@acme.example", "role": "owner"}'

--store and --master-key default to the agent_router app's defaults (the
store under Caddy's data directory, the master.key file beside it);
--master-key also reads AGENT_ROUTER_MASTER_KEY. --site is the console's
origin, printed in front of the setup path. In fleet mode, pass the etcd
--endpoints (and --prefix, TLS flags, --username with $ETCD_PASSWORD): the
user is written to etcd, which works whether or not the gateways run.

agent-router migrate copies a single-node store's shared records (accounts,
API keys, sealed BYOK credentials, policies, credential health, console
users and sessions) into etcd for fleet mode, in bounded batches. Records
already in etcd are kept, so re-running it is safe. Stop the single-node
Caddy first; the master key must be the fleet's. The request log and usage
stay in the file (use it as one instance's store to keep them).

    caddy agent-router migrate --from /var/lib/caddy/agent_router.db \
         --to etcd --endpoints https://10.0.0.1:2379,https://10.0.0.2:2379
`,
		CobraFunc: func(cmd *cobra.Command) {
			add := &cobra.Command{
				Use:   "add-user --account <id> --email <address> [--role owner|member]",
				Short: "Invites a console user into an account and prints its one-time setup link",
				Args:  cobra.NoArgs,
			}
			add.Flags().String("account", "", "Account id the user belongs to (required)")
			add.Flags().String("email", "", "The user's email address (required)")
			add.Flags().String("role", store.RoleOwner, "owner or member")
			add.Flags().Bool("create-account", false, "Create the account if it does not exist")
			add.Flags().String("store", "", "Path of the store file (default: the agent_router app's)")
			add.Flags().String("master-key", "", "Master key of the store (default: $AGENT_ROUTER_MASTER_KEY, else master.key beside the store)")
			add.Flags().String("site", "http://localhost:"+envOr("AGENT_ROUTER_HTTP_PORT", "8080"), "Origin of the site that serves the console (default port: $AGENT_ROUTER_HTTP_PORT, else 8080)")
			etcdFlags(add, "Fleet mode: ", "comma-separated etcd client URLs; the user is written to etcd (password from $ETCD_PASSWORD)")
			add.RunE = caddycmd.WrapCommandFuncForCobra(cmdAddUser)
			cmd.AddCommand(add)

			mig := &cobra.Command{
				Use:   "migrate --from <bbolt file> --to etcd --endpoints <url>,...",
				Short: "Copies a single-node store's shared records into etcd for fleet mode (safe to re-run)",
				Args:  cobra.NoArgs,
			}
			mig.Flags().String("from", "", "Path of the single-node store file (required)")
			mig.Flags().String("to", "etcd", "Destination: etcd")
			mig.Flags().String("master-key", "", "Master key of the store (default: $AGENT_ROUTER_MASTER_KEY, else master.key beside the store)")
			etcdFlags(mig, "", "comma-separated etcd client URLs (required; password from $ETCD_PASSWORD)")
			mig.Flags().Int("batch", 100, "Records per etcd transaction (at most 120)")
			mig.RunE = caddycmd.WrapCommandFuncForCobra(cmdMigrate)
			cmd.AddCommand(mig)

			imp := &cobra.Command{
				Use:   "import-prices [--format caddyfile|json] <model_prices_and_context_window.json | ->",
				Short: "Prints price blocks from a LiteLLM price file (read from disk, never fetched)",
				Long: `
import-prices reads LiteLLM's model_prices_and_context_window.json (USD per
token; "-" reads stdin) and prints, for the models the embedded price book
prices, the prices that differ from the book: provider blocks of price
blocks to merge into an agent_router block (or, with --format json, the
handler's "providers" object holding them). Prices are converted exactly,
never through a float. What it leaves out (malformed or implausible prices,
duplicates) goes to stderr with the reason. It makes no network call.`,
				Args: cobra.ExactArgs(1),
			}
			imp.Flags().String("format", "caddyfile", "caddyfile or json")
			imp.RunE = caddycmd.WrapCommandFuncForCobra(cmdImportPrices)
			cmd.AddCommand(imp)
		},
	})
}

func cmdAddUser(fl caddycmd.Flags) (int, error) {
	account, email, role := fl.String("account"), fl.String("email"), fl.String("role")
	if account == "" || email == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--account and --email are required")
	}
	if !store.ValidRole(role) {
		return caddy.ExitCodeFailedStartup, errors.New("--role must be owner or member")
	}
	path := fl.String("store")
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), "agent_router", "agent_router.db")
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	mk := fl.String("master-key")
	if mk == "" {
		mk = os.Getenv("AGENT_ROUTER_MASTER_KEY")
	}
	if mk == "" && fl.String("endpoints") != "" {
		return caddy.ExitCodeFailedStartup, errors.New("fleet mode: give the fleet's master key with --master-key or $AGENT_ROUTER_MASTER_KEY")
	}
	var key []byte
	if mk != "" {
		if key, err = store.ParseMasterKey(mk); err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("master key: %v", err)
		}
	} else {
		if err := mkdirPrivate(filepath.Dir(path)); err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("creating store directory: %v", err)
		}
		if key, _, err = store.LoadOrCreateMasterKey(filepath.Join(filepath.Dir(path), "master.key")); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	}
	var s *store.Store
	if fl.String("endpoints") != "" {
		// Fleet mode: users live in etcd; a throwaway local file holds
		// what this command never writes (request log, usage).
		var cleanup func()
		s, cleanup, err = openFleetForCommand(fl, key)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		defer cleanup()
	} else {
		s, err = store.Open(path, key, store.Options{OpenTimeout: time.Second})
	}
	if errors.Is(err, store.ErrLocked) {
		return caddy.ExitCodeFailedStartup, lockedStoreHint(path, account, email, role, fl.Bool("create-account"))
	}
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer s.Close()
	// The same operations as the admin API's POST accounts and POST
	// accounts/{account}/users.
	o := &ops.Ops{Store: s}
	if _, err := o.Account(account); ops.KindOf(err) == ops.NotFound {
		if !fl.Bool("create-account") {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("account %q does not exist (add --create-account to create it)", account)
		}
		if _, err := o.CreateAccount(account, account); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	}
	inv, err := o.InviteUser(account, email, role)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	fmt.Printf("created %s %s in account %s\nsetup link (works once, until %s):\n  %s%s\n",
		inv.Role, inv.Email, inv.AccountID, inv.SetupExpiresAt.Format(time.RFC3339), strings.TrimRight(fl.String("site"), "/"), inv.SetupPath)
	return 0, nil
}

// lockedStoreHint is the error of add-user while Caddy holds the store:
// the admin API calls that do the same, the account's first when the
// command was to create it (the user call alone would answer 404). One
// line: Caddy prints command errors through its logger.
func lockedStoreHint(path, account, email, role string, createAccount bool) error {
	admin := "localhost:" + envOr("AGENT_ROUTER_ADMIN_PORT", "2019")
	acct, _ := json.Marshal(map[string]string{"id": account})
	user, _ := json.Marshal(map[string]string{"email": email, "role": role})
	call := fmt.Sprintf("curl -X POST %s/agent_router/accounts/%s/users -d %s", admin, url.PathEscape(account), shellQuote(string(user)))
	what := "create the user"
	if createAccount {
		what = "create the account, then the user"
		call = fmt.Sprintf("curl -X POST %s/agent_router/accounts -d %s && %s (the first answers 409 if the account exists)", admin, shellQuote(string(acct)), call)
	}
	return fmt.Errorf("%s is in use by a running Caddy (bbolt allows one process): %s through its admin API instead: %s "+
		"(the admin port is $AGENT_ROUTER_ADMIN_PORT if set, else 2019, as in the root Caddyfile)", path, what, call)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// envOr is the environment variable name, or def when it is unset or empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func cmdMigrate(fl caddycmd.Flags) (int, error) {
	from, to := fl.String("from"), fl.String("to")
	if from == "" || fl.String("endpoints") == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--from and --endpoints are required")
	}
	if to != "etcd" {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("--to must be etcd, got %q", to)
	}
	path, err := filepath.Abs(from)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if _, err := os.Stat(path); err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("--from: %v", err)
	}
	mk := fl.String("master-key")
	if mk == "" {
		mk = os.Getenv("AGENT_ROUTER_MASTER_KEY")
	}
	var key []byte
	if mk != "" {
		if key, err = store.ParseMasterKey(mk); err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("master key: %v", err)
		}
	} else {
		kp := filepath.Join(filepath.Dir(path), "master.key")
		if _, err := os.Stat(kp); err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("no --master-key, no $AGENT_ROUTER_MASTER_KEY and no %s", kp)
		}
		if key, _, err = store.LoadOrCreateMasterKey(kp); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	}
	ec, err := etcdFromFlags(fl)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	cli, err := ec.client(zap.NewNop())
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer cli.Close()
	n, err := store.MigrateToFleet(context.Background(), path, key, store.Options{OpenTimeout: time.Second},
		store.FleetOptions{Client: cli, Prefix: ec.Prefix, LoadTimeout: time.Duration(ec.DialTimeout)}, fl.Int("batch"))
	if errors.Is(err, store.ErrLocked) {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("%s is in use by a running Caddy: stop it before migrating", path)
	}
	if err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("migrate: %v (%d records were copied; re-running is safe)", err, n)
	}
	fmt.Printf("copied %d records from %s to etcd %s (prefix %s); records already there were kept\n", n, path, strings.Join(ec.Endpoints, ","), ec.Prefix)
	return 0, nil
}

// etcdFromFlags is the etcd configuration of a command's --endpoints,
// --prefix, --username, --ca, --cert and --key flags ($ETCD_PASSWORD).
func etcdFromFlags(fl caddycmd.Flags) (EtcdConfig, error) {
	ec := EtcdConfig{Endpoints: strings.Split(fl.String("endpoints"), ","), Prefix: fl.String("prefix"),
		Username: fl.String("username"), Password: os.Getenv("ETCD_PASSWORD")}
	if d := fl.Duration("dial-timeout"); d > 0 {
		ec.DialTimeout = caddy.Duration(d)
	}
	if fl.String("ca") != "" || fl.String("cert") != "" {
		ec.TLS = &EtcdTLS{CA: fl.String("ca"), Cert: fl.String("cert"), Key: fl.String("key")}
	}
	return ec.resolved(caddy.NewReplacer())
}

// openFleetForCommand opens the fleet's records for a command, with a
// temporary local file and without registering as a member.
func openFleetForCommand(fl caddycmd.Flags, key []byte) (*store.Store, func(), error) {
	ec, err := etcdFromFlags(fl)
	if err != nil {
		return nil, nil, err
	}
	cli, err := ec.client(zap.NewNop())
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "agentrouter-cmd-")
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	s, err := store.OpenFleet(filepath.Join(dir, "local.db"), key, store.Options{}, store.FleetOptions{
		Client: cli, Prefix: ec.Prefix, LoadTimeout: time.Duration(ec.DialTimeout), NoRegistration: true})
	if err != nil {
		cli.Close()
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("etcd at %s: %w", strings.Join(ec.Endpoints, ","), err)
	}
	return s, func() { s.Close(); cli.Close(); os.RemoveAll(dir) }, nil
}

// etcdFlags adds the flags that reach a fleet's etcd to c, each help text
// led by lead.
func etcdFlags(c *cobra.Command, lead, endpoints string) {
	c.Flags().String("endpoints", "", lead+endpoints)
	c.Flags().String("prefix", store.DefaultFleetPrefix, lead+"key prefix of the fleet's records")
	c.Flags().String("username", "", lead+"etcd user")
	c.Flags().String("ca", "", lead+"CA bundle to verify etcd's TLS certificate with")
	c.Flags().String("cert", "", lead+"client certificate for etcd")
	c.Flags().String("key", "", lead+"client certificate key for etcd")
	c.Flags().Duration("dial-timeout", 5*time.Second, lead+"timeout for reaching etcd")
}
