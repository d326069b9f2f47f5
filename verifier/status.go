package verifier

import (
	"errors"
	"slices"
	"time"
)

// Discovery states of a JWT issuer's key set (KeyStatus.Discovery).
const (
	// DiscoveryNone: the JWKS URL is configured, or the keys are held in
	// memory; no discovery runs.
	DiscoveryNone = "not used"
	// DiscoveryPending: discovery has not run yet.
	DiscoveryPending = "pending"
	// DiscoveryRunning: discovery is running now.
	DiscoveryRunning = "running"
	// DiscoveryDone: discovery found the JWKS URL.
	DiscoveryDone = "done"
	// DiscoveryFailed: the last discovery attempt failed (Error says why).
	DiscoveryFailed = "failed"
)

// KeyStatus is what a JWT issuer's key set holds, read from memory only
// (never waiting for a fetch or discovery): for the status page. It holds
// key ids and times, never key material.
type KeyStatus struct {
	// InMemory is true for keys held in memory (the embedded token
	// endpoint's): never fetched, never stale.
	InMemory bool
	// KeyIDs are the kids of the keys held, in JWKS order, each once.
	KeyIDs []string
	// Fetched is the last successful fetch (or 304); zero: never.
	Fetched time.Time
	// Attempted is the last fetch attempt; zero: none.
	Attempted time.Time
	// Error is the last attempt's error, "" when it succeeded; or, while
	// no JWKS URL is known, the last discovery error.
	Error string
	// Discovery is one of the Discovery… states.
	Discovery string
}

// KeyStatus reports the keys the issuer holds, when they were fetched and
// the last fetch or discovery error. It reads memory only.
func (j *JWT) KeyStatus() KeyStatus { return j.keys.status() }

func (s *StaticKeySet) status() KeyStatus {
	return KeyStatus{InMemory: true, KeyIDs: keyIDs(s.all), Discovery: DiscoveryNone}
}

func (k *RemoteKeySet) status() KeyStatus {
	k.mu.RLock()
	st := KeyStatus{KeyIDs: keyIDs(k.all), Fetched: k.fetched, Attempted: k.attempted}
	if k.lastErr != nil {
		st.Error = k.lastErr.Error()
	}
	k.mu.RUnlock()
	var derr string
	st.Discovery, derr = k.loc.state()
	if st.Error == "" && derr != "" {
		st.Error = derr
	}
	return st
}

// state is the discovery state and its last error, without waiting: a
// discovery in flight holds the lock, and is reported as running.
func (l *jwksLocation) state() (string, string) {
	if l.discovering == nil {
		return DiscoveryNone, ""
	}
	if l.known() != "" {
		return DiscoveryDone, ""
	}
	select {
	case l.discovering <- struct{}{}:
		defer func() { <-l.discovering }()
	default:
		return DiscoveryRunning, ""
	}
	switch {
	case l.known() != "":
		return DiscoveryDone, ""
	case l.discoverErr != nil:
		return DiscoveryFailed, l.discoverErr.Error()
	}
	return DiscoveryPending, ""
}

func keyIDs(all []key) []string {
	ids := []string{}
	for _, k := range all {
		if !slices.Contains(ids, k.jwk.KeyID) {
			ids = append(ids, k.jwk.KeyID)
		}
	}
	return ids
}

// IntrospectionStatus is what an introspection issuer knows of its
// endpoint: when it last answered and its last failure (never a token).
type IntrospectionStatus struct {
	// LastAnswer is when the endpoint last gave a usable answer (active
	// or not); zero: never.
	LastAnswer time.Time
	// LastFailure is when a call last failed (ErrUnavailable); Error is
	// that failure's text. Zero and "": no failure since the last answer.
	LastFailure time.Time
	Error       string
}

// Status reports the endpoint's last answer and failure. It reads memory
// only.
func (in *Introspection) Status() IntrospectionStatus {
	if p := in.last.Load(); p != nil {
		return *p
	}
	return IntrospectionStatus{}
}

// record notes a call's outcome for Status: an unavailable endpoint is a
// failure; any other outcome (active, inactive, refused claims) is an
// answer and clears the failure.
func (in *Introspection) record(err error) {
	now := in.o.Now()
	var r IntrospectionStatus
	if p := in.last.Load(); p != nil {
		r = *p
	}
	if errors.Is(err, ErrUnavailable) {
		r.LastFailure, r.Error = now, err.Error()
	} else {
		r.LastAnswer, r.LastFailure, r.Error = now, time.Time{}, ""
	}
	in.last.Store(&r)
}
