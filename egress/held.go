package egress

import (
	"context"
	"errors"
)

// heldTokens are the access tokens a Source holds or held last: [0] the
// newest, [1] the one before. A token endpoint may echo one of them in an
// error ("your previous access token … has expired"); every text of a
// failed token request hides them, like the client secret, before it is
// cut short, logged or shown. A token dropped after an upstream refused
// it stays here until two newer ones came.
type heldTokens [2]string

// add notes a token the Source installed.
func (h *heldTokens) add(v string) {
	if v != "" && v != h[0] {
		h[1], h[0] = h[0], v
	}
}

type heldKey struct{}

// withHeld gives a token request's context the tokens its texts must
// hide (Fetch and the refresh grants add them to their redactor).
func withHeld(ctx context.Context, h heldTokens) context.Context {
	return context.WithValue(ctx, heldKey{}, h)
}

// heldFrom returns the tokens withHeld put in ctx ("" where none).
func heldFrom(ctx context.Context) []string {
	h, _ := ctx.Value(heldKey{}).(heldTokens)
	return h[:]
}

// scrub hides the held tokens from a failed token request's error once
// more before the Source keeps, logs or shows it: a TokenError is sealed
// in place; another error whose text holds one is replaced by its
// redacted text (still unwrapping to it).
func (h *heldTokens) scrub(err error) error {
	r := redactor{}
	for _, v := range h {
		r = r.with(tokenForms(v)...)
	}
	var te *TokenError
	if errors.As(err, &te) {
		r.seal(te)
	}
	if msg := err.Error(); r.hide(msg) != msg {
		return &scrubbedError{msg: clean(r.hide(msg), maxMessageLen), err: err}
	}
	return err
}

// scrubbedError is an error whose text had a held token in it.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
