package providers

import (
	"encoding/json"

	"github.com/tidwall/gjson"
)

// SetModel returns body with its top-level "model" string set to model. The
// body is returned as it is (not copied) when it already names model, so the
// common path costs nothing; otherwise only the model's bytes are replaced.
// A body without a top-level model string is returned unchanged (the gateway
// rejects those before it gets here).
func SetModel(body []byte, model string) []byte {
	r := gjson.GetBytes(body, "model")
	if r.Type != gjson.String || r.Str == model || r.Index <= 0 {
		return body
	}
	q, _ := json.Marshal(model)
	out := make([]byte, 0, len(body)-len(r.Raw)+len(q))
	out = append(out, body[:r.Index]...)
	out = append(out, q...)
	return append(out, body[r.Index+len(r.Raw):]...)
}
