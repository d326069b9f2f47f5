// The Source's state as readiness and the expiry gauge see it.

package egress

import (
	"fmt"
	"time"
)

// Ready reports why the Source holds no valid token, or nil.
func (s *Source) Ready() error {
	if s.usable(time.Now()) != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr != nil {
		return fmt.Errorf("egress %s: no valid token: %w", s.o.Name, s.lastErr)
	}
	return fmt.Errorf("egress %s: no token yet", s.o.Name)
}

// SecondsLeft is the time until the current token expires, 0 without one.
func (s *Source) SecondsLeft() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok == nil {
		return 0
	}
	return max(time.Until(s.tok.Expiry).Seconds(), 0)
}
