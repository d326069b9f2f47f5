package queue

import (
	"context"
	"errors"
	"time"
)

// Errors of Enqueue and of the stores. A sender whose message was not
// stored gets 503 with Retry-After: ErrFull and ErrUnavailable are never
// a drop, and nothing was acknowledged.
var (
	// ErrFull: the stored messages reached queue.max_bytes.
	ErrFull = errors.New("queue full")
	// ErrUnavailable: the store could not be written (disk, Redis).
	ErrUnavailable = errors.New("queue store unavailable")
	// ErrNotFound: no stored message has this id.
	ErrNotFound = errors.New("no such message")
	// ErrInUse: another process (a running gate) holds the file store.
	ErrInUse = errors.New("store locked")
	// ErrUnknownRoute: the message names a route that is not queued.
	ErrUnknownRoute = errors.New("route is not queued")
)

// Store keeps messages durably. Implementations must be safe for
// concurrent use. Every method that changes a message is checked against
// the stored message: one that was dropped meanwhile is not brought back
// (ErrNotFound).
type Store interface {
	// Add stores a new message (payload and Progress) and returns only
	// once it is durable. It refuses with ErrFull when the stored bytes
	// would pass the store's bound. The store may keep m.Header (never
	// changed): the caller hands it over and does not change it after;
	// m.Body stays the caller's. When ctx has ended and the store's
	// write has stalled (a disk that hangs) before it took this one, Add
	// may return ctx's error with nothing stored; otherwise, and once
	// taken, the write is finished whatever ctx does, within the store's
	// own bound.
	Add(ctx context.Context, m *Message) error
	// Lease hands out up to n pending messages of route that are due at
	// now and not leased already; each stays leased until Ack, Retry or
	// Bury (or, in a shared store, until its lease runs out because its
	// holder died). With an error it may still return messages, leased
	// like any other: the caller attempts them.
	Lease(ctx context.Context, route string, now time.Time, n int) ([]*Message, error)
	// Ack removes a leased message: the receiver took it.
	Ack(ctx context.Context, m *Message) error
	// Retry stores m.Progress and puts the message back, due at m.Next.
	Retry(ctx context.Context, m *Message) error
	// Bury stores m.Progress and makes the message a dead letter.
	Bury(ctx context.Context, m *Message) error
	// Get returns one message, or ErrNotFound.
	Get(ctx context.Context, id string) (*Message, error)
	// List returns up to limit messages of route in state, oldest first,
	// without their heads and bodies (a listing is a summary whatever a
	// sender put in them; Get reads one message whole).
	List(ctx context.Context, route string, state State, limit int) ([]*Message, error)
	// Revive makes a dead letter pending again with p, or makes a pending
	// message that is not leased due at p.Next (keeping its attempts);
	// a leased message is left alone. ErrNotFound when there is none.
	Revive(ctx context.Context, id string, p Progress) error
	// Drop removes a message, whatever its state.
	Drop(ctx context.Context, id string) error
	// Stats counts the stored messages of every route that has any.
	Stats(ctx context.Context) ([]RouteStats, error)
	// Close releases the store.
	Close() error
}

// RouteStats describes one route's stored messages.
type RouteStats struct {
	Route string
	// Pending and Dead count messages; Bytes are their payloads' bytes.
	Pending, Dead int64
	Bytes         int64
	// Oldest is when the oldest pending message arrived (zero: none).
	Oldest time.Time
}
