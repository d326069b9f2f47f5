package issuer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// MaxRequestBody bounds a token request body.
const MaxRequestBody = 64 << 10

// tokenRequest is a parsed client_credentials request.
type tokenRequest struct {
	grantType    string
	clientID     string
	clientSecret string
	scope        string
	scopeGiven   bool
	viaBasic     bool // credentials came in an Authorization: Basic header
	// rawSecret is the Basic password as sent, when form-decoding changed
	// it: many senders (curl -u, the seeds' examples) do not encode.
	rawSecret string
}

// oauthError is an RFC 6749 §5.2 error answer.
type oauthError struct {
	status int
	code   string
	desc   string
	basic  bool // add WWW-Authenticate: Basic (the client used Basic)
}

func (e *oauthError) Error() string { return e.code + ": " + e.desc }

func badRequest(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: desc}
}

// parseTokenRequest reads the request in every shape the seed vendors use:
// credentials in HTTP Basic (RFC 6749 §2.3.1, form-encoded id and secret)
// or in the body; bodies as application/x-www-form-urlencoded,
// application/json (MyParcel) or multipart/form-data (curl -F, Akamai).
func parseTokenRequest(w http.ResponseWriter, r *http.Request) (*tokenRequest, error) {
	if r.Method != http.MethodPost {
		return nil, &oauthError{status: http.StatusMethodNotAllowed, code: "invalid_request", desc: "the token endpoint accepts POST only"}
	}
	q := r.URL.Query()
	for _, k := range []string{"client_secret", "client_id", "grant_type", "scope"} {
		if q.Has(k) {
			return nil, badRequest("parameters belong in the request body, not the URL")
		}
	}
	params, err := readParams(w, r)
	if err != nil {
		return nil, err
	}
	get := func(k string) (string, bool, error) {
		v, ok := params[k]
		if !ok {
			return "", false, nil
		}
		if len(v) != 1 {
			return "", true, badRequest(fmt.Sprintf("parameter %s given more than once", k))
		}
		return v[0], true, nil
	}
	tr := &tokenRequest{}
	var has bool
	if tr.grantType, has, err = get("grant_type"); err != nil {
		return nil, err
	} else if !has || tr.grantType == "" {
		return nil, badRequest("grant_type is required")
	}
	if tr.scope, tr.scopeGiven, err = get("scope"); err != nil {
		return nil, err
	}
	bodyID, hasID, err := get("client_id")
	if err != nil {
		return nil, err
	}
	bodySecret, hasSecret, err := get("client_secret")
	if err != nil {
		return nil, err
	}
	if auth := r.Header.Values("Authorization"); len(auth) > 0 {
		id, secret, raw, err := basicCredentials(auth)
		if err != nil {
			return nil, err
		}
		if raw != secret {
			tr.rawSecret = raw
		}
		if hasSecret {
			return nil, badRequest("client credentials given both in the Authorization header and in the body: use one")
		}
		if hasID && bodyID != id {
			return nil, badRequest("client_id in the body differs from the Authorization header")
		}
		tr.clientID, tr.clientSecret, tr.viaBasic = id, secret, true
		return tr, nil
	}
	tr.clientID, tr.clientSecret = bodyID, bodySecret
	return tr, nil
}

// basicCredentials decodes an Authorization: Basic header whose user and
// password are form-urlencoded (RFC 6749 §2.3.1).
// It also returns the password as sent, for senders that skip encoding.
func basicCredentials(values []string) (id, secret, raw string, err error) {
	if len(values) != 1 {
		return "", "", "", badRequest("more than one Authorization header")
	}
	r := http.Request{Header: http.Header{"Authorization": values}}
	id, raw, ok := r.BasicAuth()
	if !ok {
		return "", "", "", &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: "the Authorization header is not valid HTTP Basic", basic: true}
	}
	if dec, err := url.QueryUnescape(id); err == nil {
		id = dec
	}
	secret = raw
	if dec, err := url.QueryUnescape(raw); err == nil {
		secret = dec
	}
	return id, secret, raw, nil
}

// readParams reads the body's parameters, keeping repeated keys so that
// duplicates can be refused (RFC 6749 §3.2).
func readParams(w http.ResponseWriter, r *http.Request) (map[string][]string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBody)
	ct := r.Header.Get("Content-Type")
	mt, mparams, err := mime.ParseMediaType(ct)
	if ct == "" {
		mt, err = "application/x-www-form-urlencoded", nil
	}
	if err != nil {
		return nil, badRequest("unreadable Content-Type")
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, bodyError(err)
		}
		if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
			return nil, badRequest(errJSONAsForm)
		}
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, badRequest("malformed form body")
		}
		return v, nil
	case "application/json":
		return jsonParams(r.Body)
	case "multipart/form-data":
		if mparams["boundary"] == "" {
			return nil, badRequest("multipart body without boundary")
		}
		if err := r.ParseMultipartForm(MaxRequestBody); err != nil {
			return nil, bodyError(err)
		}
		defer func() { _ = r.MultipartForm.RemoveAll() }()
		if len(r.MultipartForm.File) > 0 {
			return nil, badRequest("file parts are not accepted")
		}
		return r.MultipartForm.Value, nil
	default:
		return nil, badRequest("Content-Type must be application/x-www-form-urlencoded, application/json or multipart/form-data")
	}
}

// jsonParams reads a JSON object of string parameters (MyParcel's shape),
// keeping every occurrence of a name so that a duplicate is refused like a
// repeated form parameter (encoding/json would keep the last one).
func jsonParams(body io.Reader) (map[string][]string, error) {
	dec := json.NewDecoder(body)
	if t, err := dec.Token(); err != nil {
		return nil, bodyError(err)
	} else if t != json.Delim('{') {
		return nil, badRequest("the JSON body must be an object")
	}
	out := map[string][]string{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, bodyError(err)
		}
		k, _ := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, bodyError(err)
		}
		s, ok := v.(string)
		if !ok {
			return nil, badRequest(fmt.Sprintf("parameter %s must be a string", k))
		}
		out[k] = append(out[k], s)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, bodyError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("trailing data after the JSON object")
	}
	return out, nil
}

// grantedScopes resolves the requested scope against a client's allowance:
// absent → the client's defaults; "*" → everything it may have (MyParcel);
// otherwise each space-separated scope must be allowed, compared as a plain
// string (never a pattern: "*:webhooks/**" is just a name).
func grantedScopes(requested string, given bool, allowed, defaults []string) ([]string, error) {
	if !given || strings.TrimSpace(requested) == "" {
		return defaults, nil
	}
	fields := strings.Fields(requested)
	if len(fields) == 1 && fields[0] == "*" {
		return allowed, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, s := range fields {
		ok := false
		for _, a := range allowed {
			if s == a {
				ok = true
				break
			}
		}
		if !ok {
			return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: "a requested scope is not allowed for this client"}
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, nil
}

// errJSONAsForm answers a JSON object sent with a form Content-Type.
const errJSONAsForm = "the body is JSON but its Content-Type is a form's: send Content-Type: application/json, or a form body (grant_type=client_credentials&...)"
