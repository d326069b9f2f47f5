package issuer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

var errRateLimited = errors.New("rate limited")

type rateLimitError struct{ wait time.Duration }

func (e *rateLimitError) Error() string { return errRateLimited.Error() }
func (e *rateLimitError) Is(t error) bool {
	return t == errRateLimited
}

// authenticate checks the client's secret with bcrypt, at most
// MaxConcurrentHashChecks at a time. Every client id, known or not, costs
// the same work on every path: the same comparisons (against a dummy hash
// for unknown ids; twice when a Basic password changed under
// form-decoding). The per-client bucket counts failures only, for known
// and unknown ids alike: the right secret is never refused because someone
// is guessing, and a 429 says nothing about whether the id exists.
func (s *Server) authenticate(ctx context.Context, tr *tokenRequest, ip string, now time.Time) (*Client, error) {
	invalidClient := &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: "client authentication failed", basic: tr.viaBasic}
	if tr.clientID == "" {
		return nil, invalidClient
	}
	client, known := s.clients[tr.clientID]
	hash := s.dummy
	if known {
		hash = client.SecretHash
	}
	var secrets [][]byte
	for _, sec := range []string{tr.clientSecret, tr.rawSecret} {
		if sec != "" && len(sec) <= maxSecretLen {
			secrets = append(secrets, []byte(sec))
		}
	}
	if known && s.known.match(client.ID, secrets, now) {
		return client, nil // a returning sender: its secret passed bcrypt before
	}
	// An address whose failures used up its bucket gets no more bcrypt
	// work (a returning sender with the right secret passed above).
	if spent, wait := s.ipFails.Spent(ctx, ip); spent {
		s.loginFailed(tr.clientID, known, ip, "too many failures from this address")
		return nil, &rateLimitError{wait}
	}
	ok := false
	var matched []byte
	if len(secrets) > 0 {
		// A queue of logins cannot hold connections forever.
		wctx, cancel := context.WithTimeout(ctx, s.o.MaxHashWait)
		err := s.hashSem.Acquire(wctx, 1)
		cancel()
		if err != nil {
			return nil, &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", desc: "retry later"}
		}
		for _, sec := range secrets { // no early exit: the same work either way
			if s.compare(hash, sec) == nil {
				ok, matched = true, sec
			}
		}
		s.hashSem.Release(1)
	}
	if ok && known {
		s.known.remember(client.ID, matched, now)
		return client, nil
	}
	s.ipFails.Take(ctx, ip)
	reason := "wrong secret"
	switch {
	case len(secrets) == 0:
		reason = "missing or overlong secret"
	case !known:
		reason = "unknown client"
	}
	s.loginFailed(tr.clientID, known, ip, reason)
	if allowed, wait := s.perCl.Take(ctx, tr.clientID); !allowed {
		return nil, &rateLimitError{wait}
	}
	return nil, invalidClient
}

// loginFailed logs a failed authentication: the client id when it names a
// configured client, otherwise only a hash of it (an attacker's guesses,
// or a secret pasted into the id field, never reach the logs).
func (s *Server) loginFailed(clientID string, known bool, ip, reason string) {
	if s.o.OnLoginFailed != nil {
		s.o.OnLoginFailed()
	}
	id := zap.String("client_id", clientID)
	if !known {
		sum := sha256.Sum256([]byte(clientID))
		id = zap.String("unknown_client_id_sha256", hex.EncodeToString(sum[:4]))
	}
	s.o.Logger.Warn("client authentication failed", id, zap.String("ip", ip), zap.String("reason", reason))
}

// hashClients indexes the clients, hashes the plain secrets and makes the
// dummy hash. Both cost what the dearest configured hash costs (default
// bcrypt.DefaultCost): an unknown id must never answer faster than a
// known one, or the timing tells which ids exist.
func (s *Server) hashClients() error {
	cost, mixed := 0, false
	for i := range s.o.Clients {
		c := &s.o.Clients[i]
		if c.Scopes == nil || c.ID == "" {
			return fmt.Errorf("issuer: client %d needs an id and scopes", i)
		}
		if (len(c.SecretHash) == 0) == (len(c.Secret) == 0) {
			return fmt.Errorf("issuer: client %s needs one of a secret hash and a secret", c.ID)
		}
		s.clients[c.ID] = c
		if len(c.SecretHash) == 0 {
			continue
		}
		cc, err := bcrypt.Cost(c.SecretHash)
		if err != nil {
			return fmt.Errorf("issuer: client %s: %w", c.ID, err)
		}
		mixed = mixed || (cost != 0 && cc != cost)
		cost = max(cost, cc)
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	if mixed {
		return fmt.Errorf("issuer: client secret hashes use different bcrypt costs (highest %d): a client hashed below it answers a wrong secret faster than an unknown id, which tells that its id exists; hash every secret at one cost (tokengate hash-secret)", cost)
	}
	for i := range s.o.Clients {
		c := &s.o.Clients[i]
		if len(c.Secret) == 0 {
			continue
		}
		if len(c.Secret) > maxSecretLen {
			return fmt.Errorf("issuer: client %s: the secret is longer than bcrypt's %d bytes", c.ID, maxSecretLen)
		}
		h, err := bcrypt.GenerateFromPassword(c.Secret, cost)
		if err != nil {
			return fmt.Errorf("issuer: client %s: %w", c.ID, err)
		}
		c.SecretHash, c.Secret = h, nil
	}
	var err error
	s.dummy, err = bcrypt.GenerateFromPassword([]byte("tokengate-no-such-client"), cost)
	return err
}
