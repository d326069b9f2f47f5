package proxy

import (
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// accessLog writes the request's access-log line (and, with tracing on,
// names its span): the resolved client address, never the token (its
// fingerprint), the verified identity, and why a request was refused.
func (h *Handler) accessLog(r *http.Request, st *state, token, name, decision string, status int, elapsed time.Duration) {
	if ce := h.log.Check(zapcore.InfoLevel, "request"); ce != nil {
		// The fields live in st (already allocated): the line's encoding
		// is the only allocation the access log adds.
		fields := append(st.fields[:0],
			zap.String("method", r.Method),
			zap.String("path", st.path),
			zap.String("route", name),
			zap.Int("status", status),
			zap.String("decision", decision),
			zap.Duration("latency", elapsed),
			zap.String("client", st.client),
		)
		tokenID := ""
		if p := st.principal; p != nil {
			fields = append(fields, zap.String("sub", p.Subject), zap.String("client_id", p.ClientID), zap.String("issuer", p.Source))
			tokenID = p.TokenID() // the cache's hash, not a second one
		}
		if tokenID == "" && token != "" {
			tokenID = TokenID(token)
		}
		if tokenID != "" {
			fields = append(fields, zap.String("token_id", tokenID))
		}
		if st.client == "" {
			fields = append(fields, zap.String("peer", r.RemoteAddr)) // the proxy whose X-Forwarded-For was refused
		}
		if st.err != nil {
			fields = append(fields, zap.String("reason", st.err.Error()))
		}
		if h.prop != nil {
			fields = h.traceRequest(r.Context(), r, st, decision, fields)
		}
		ce.Write(fields...)
	} else if h.prop != nil {
		h.traceRequest(r.Context(), r, st, decision, nil)
	}
}
