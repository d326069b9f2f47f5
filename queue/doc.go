// Package queue stores verified webhooks durably and delivers them to the
// receiver until it takes them: routes with delivery.mode queued answer
// the sender once the message is stored, and the Queue's worker does the
// rest (at least once).
//
// A message travels like this:
//
//  1. Enqueue (called by the proxy after every check passed): the store
//     adds it and returns only once it is durable — the file store
//     (FileStore, bbolt) after its group commit's fsync, shared by all
//     messages that arrived meanwhile; the Redis store (RedisStore) once
//     Redis has it. Past max_bytes, or when the store cannot be written,
//     Enqueue fails (ErrFull, ErrUnavailable) and the sender gets 503:
//     never a drop, never an acknowledgement.
//  2. Lease (worker.go, Run): at most a route's Concurrency due messages
//     are handed to this process; a Redis lease of a replica that died is
//     claimed by another (XAUTOCLAIM); a file store's leases end with the
//     process, and every pending message is due again after a restart.
//  3. Attempt: the stored request, joined to the target like the reverse
//     proxy does, with X-Tokengate-Delivery-Id (stable) and
//     X-Tokengate-Attempt, through the RoundTripper given.
//  4. Outcome: a Success answer removes the message (Ack); a 4xx other
//     than 408, 409, 425 and 429 (unless RetryOn) makes it a dead letter
//     at once (Bury); anything else is tried again after the backoff or
//     the receiver's Retry-After (Retry), until MaxAttempts or MaxAge make
//     it a dead letter, kept with its last answer.
//
// Operators reach a Queue through Operator: on a running gate over its
// control socket (ControlSocket, a 0600 Unix socket in the file store's
// directory, since the gate holds the file's lock), or on the store
// itself when no gate runs (Connect picks).
//
//	store, _ := queue.OpenFromConfig(cfg)
//	q, _ := queue.New(store, queue.Options{Routes: queue.RoutesFromConfig(cfg), Target: upstreamURL, Transport: upstreamTransport})
//	go q.Run(ctx) // returns after ctx ends and the grace for attempts in flight
//	h, _ := proxy.New(cfg, verifier, proxy.Options{Queue: q, ...})
package queue
