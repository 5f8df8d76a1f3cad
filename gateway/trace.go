package gateway

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// Tracing joins the span that Caddy's `tracing` directive opens for the
// request (it is in the request's context): the request span gets the
// OpenTelemetry GenAI attributes and the credential source, and each
// upstream attempt gets a child span. Without tracing the span is a no-op
// and none of this costs more than a context lookup.

// genAISystem maps a provider to the gen_ai.system value of the
// OpenTelemetry GenAI semantic conventions (well-known values where the
// conventions list one).
func genAISystem(provider string) string {
	switch provider {
	case "gemini":
		return "gcp.gemini"
	case "azure":
		return "az.ai.openai"
	case "mistral":
		return "mistral_ai"
	}
	return provider
}

// startAttemptSpan opens a child span for one upstream attempt when the
// request is traced.
func startAttemptSpan(ctx context.Context, parent trace.Span, provider, model, source string) (context.Context, trace.Span) {
	if !parent.IsRecording() {
		return ctx, parent
	}
	return parent.TracerProvider().Tracer("github.com/agentrouter/caddy-agentrouter").Start(ctx, "agent_router.attempt",
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("gen_ai.system", genAISystem(provider)),
			attribute.String("gen_ai.request.model", model),
			attribute.String("agent_router.credential_source", source),
		))
}

// endAttemptSpan closes an attempt's span with its outcome.
func endAttemptSpan(span, parent trace.Span, a *store.Attempt) {
	if span == parent || !span.IsRecording() {
		return
	}
	if a.Status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", a.Status))
	}
	if a.ErrorClass != "" {
		span.SetAttributes(attribute.String("agent_router.error_class", a.ErrorClass))
		span.SetStatus(codes.Error, a.ErrorClass)
	}
	span.End()
}

// annotateRequestSpan sets the request span's attributes once the request
// is done.
func annotateRequestSpan(span trace.Span, rec *store.LogRecord) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(
		attribute.String("gen_ai.system", genAISystem(rec.Provider)),
		attribute.String("gen_ai.request.model", rec.Model),
		attribute.String("gen_ai.response.model", rec.UpstreamModel),
		attribute.Int64("gen_ai.usage.input_tokens", rec.PromptTokens),
		attribute.Int64("gen_ai.usage.output_tokens", rec.CompletionTokens),
		attribute.String("agent_router.credential_source", rec.CredentialSource),
		attribute.String("agent_router.account", rec.AccountID),
		attribute.String("agent_router.request_id", rec.ID),
		attribute.Int("agent_router.attempts", len(rec.Attempts)),
	)
	annotateCost(span, rec)
}

// annotateCost puts the request's cost on its span: the total in USD (a
// decimal string, exact) and in nano-USD, who paid, the price version, or
// why it is unpriced; and a BYOK request's shadow platform cost.
func annotateCost(span trace.Span, rec *store.LogRecord) {
	c := &rec.Cost
	if c.IsZero() {
		return
	}
	span.SetAttributes(attribute.String("agent_router.cost.paid_by", c.PaidBy),
		attribute.String("agent_router.price_version", c.Version))
	if c.Unpriced {
		span.SetAttributes(attribute.String("agent_router.cost.unpriced_reason", c.Reason.String()))
	} else {
		span.SetAttributes(attribute.String("agent_router.cost.usd", c.USD()),
			attribute.Int64("agent_router.cost.nano_usd", int64(c.NanoUSD)))
	}
	if s := &rec.ShadowCost; s.Priced() {
		span.SetAttributes(attribute.String("agent_router.cost.shadow_usd", s.USD()))
	}
}
