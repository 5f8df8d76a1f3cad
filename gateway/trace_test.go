package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestTracing: under a recording span (what Caddy's tracing directive puts
// in the request context), the request span gets the GenAI attributes and
// the credential source, and each upstream attempt is a child span.
func TestTracing(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	ctx, parent := tp.Tracer("caddy").Start(context.Background(), "handler")
	req := httptest.NewRequestWithContext(ctx, "POST", "/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+keys[0])
	w := httptest.NewRecorder()
	e.g.ServeHTTP(w, req)
	parent.End()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}

	spans := rec.Ended()
	var handler, attempt sdktrace.ReadOnlySpan
	for _, s := range spans {
		switch s.Name() {
		case "handler":
			handler = s
		case "agent_router.attempt":
			attempt = s
		}
	}
	if handler == nil || attempt == nil {
		t.Fatalf("spans: %v", spans)
	}
	if attempt.Parent().SpanID() != handler.SpanContext().SpanID() {
		t.Error("the attempt span is not a child of the request span")
	}
	attrs := func(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
		m := map[attribute.Key]attribute.Value{}
		for _, kv := range s.Attributes() {
			m[kv.Key] = kv.Value
		}
		return m
	}
	h := attrs(handler)
	if h["gen_ai.system"].AsString() != "openai" || h["gen_ai.request.model"].AsString() != "gpt-4o" ||
		h["agent_router.credential_source"].AsString() != "platform" ||
		h["gen_ai.usage.input_tokens"].AsInt64() != 11 || h["gen_ai.usage.output_tokens"].AsInt64() != 5 {
		t.Errorf("request span attributes: %v", h)
	}
	// The cost: 11 prompt × 2.50 + 5 completion × 10 per 1M tokens.
	if h["agent_router.cost.usd"].AsString() != "0.0000775" || h["agent_router.cost.nano_usd"].AsInt64() != 77500 ||
		h["agent_router.cost.paid_by"].AsString() != "platform" || !strings.HasPrefix(h["agent_router.price_version"].AsString(), "1-") {
		t.Errorf("request span cost: %v", h)
	}
	a := attrs(attempt)
	if a["agent_router.credential_source"].AsString() != "platform" || a["http.response.status_code"].AsInt64() != 200 {
		t.Errorf("attempt span attributes: %v", a)
	}
	for _, s := range spans {
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.Emit(), "sk-") || strings.Contains(kv.Value.Emit(), "ar_") {
				t.Errorf("span %s carries key material in %s", s.Name(), kv.Key)
			}
		}
	}
}
