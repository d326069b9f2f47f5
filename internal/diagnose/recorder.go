package diagnose

import (
	"context"
	"sync"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/proxy"
	"github.com/tokengate/tokengate/signature"
)

// claimRecorder stands in for the replay store of a diagnosis: every
// claim is answered Fresh and counted, nothing is stored, so checking a
// captured message never makes the sender's real delivery (or retry) a
// duplicate.
type claimRecorder struct {
	mu                      sync.Mutex
	claims, takes, releases int
}

var _ signature.Store = (*claimRecorder)(nil)

// Claim counts the claim and answers Fresh.
func (c *claimRecorder) Claim(context.Context, signature.Ticket, time.Duration) (signature.State, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.claims++
	return signature.Fresh, nil
}

// Take counts the take; nothing is remembered.
func (c *claimRecorder) Take(context.Context, signature.Ticket, time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.takes++
	return nil
}

// Release counts the release.
func (c *claimRecorder) Release(context.Context, signature.Ticket) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releases++
	return nil
}

// claimed is how many claims the recorder answered.
func (c *claimRecorder) claimed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.claims
}

// build makes what the gate's handler decides with, as serve builds it
// (verifiers, cache, each route's signature verifier), except the replay
// store: rec stands in for it, so a diagnosis claims nothing in the
// configured memory or Redis store.
func build(cfg *config.Config, rec *claimRecorder) (*stack.Stack, []proxy.SignatureVerifier, error) {
	b := stack.NewBuilder(stack.Options{ReplayStore: rec})
	st, err := b.Verification(cfg)
	if err != nil {
		return nil, nil, err
	}
	sigs, err := b.Signatures(cfg)
	if err != nil {
		return nil, nil, err
	}
	return st, sigs, nil
}
