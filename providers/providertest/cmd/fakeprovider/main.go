// Command fakeprovider runs a fake provider (any kind of providertest) on
// loopback for smoke tests, demos and benchmarks. It prints its base URL on
// stdout and serves its ledger at GET /_fake/records: one JSON line per
// request received, with the credential that came with it.
//
//	fakeprovider -addr 127.0.0.1:9900 [-kind openai|azure|anthropic|gemini|cohere] [-accept key1,key2]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	kind := flag.String("kind", "openai", "openai, azure, anthropic, gemini or cohere")
	accept := flag.String("accept", "", "comma-separated keys to accept (default: any)")
	flag.Parse()

	fake := providertest.NewHandler(*kind)
	if *accept != "" {
		fake.AcceptOnly(strings.Split(*accept, ",")...)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_fake/records", func(w http.ResponseWriter, r *http.Request) {
		enc := json.NewEncoder(w)
		for _, rec := range fake.Records() {
			enc.Encode(map[string]any{"path": rec.Path, "query": rec.Query, "credential_header": rec.CredentialHeader,
				"credential": rec.Credential, "model": rec.Model, "stream": rec.Stream})
		}
	})
	mux.Handle("/", fake)
	fmt.Println(fake.BaseURLFor("http://" + ln.Addr().String()))
	srv := &http.Server{Handler: mux}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
