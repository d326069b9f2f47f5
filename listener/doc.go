// Package listener is tokengate's one HTTP listener: the public side, the
// admin side, every egress entry, and the small servers of `tokengate
// quickstart` and `tokengate authorize` are each a Listener. A Listener
// binds its address once and keeps it; what a reload changes (the
// handler, the TLS settings) is swapped behind it for the next request or
// connection, without closing the socket.
//
// Every Listener bounds what a client can hold:
//
//   - ReadHeaderTimeout: a connection that sends no complete request head
//     (or no TLS handshake) in time is closed.
//   - IdleTimeout: a keep-alive connection idle this long is closed.
//   - MaxHeaderBytes: a larger request head gets 431.
//   - WriteStall: a write that makes no progress for this long ends the
//     connection (HTTP/1.x, a hijacked WebSocket, TLS handshakes, HTTP/2
//     frames) or the stream (an HTTP/2 stream whose client stops reading:
//     its flow-control window stays shut while the connection lives on).
//
// WriteStall replaces http.Server.WriteTimeout on purpose. WriteTimeout
// bounds a whole response from the end of its request head, so it cuts
// long streamed answers and WebSockets that are healthy; a client that
// never reads its answer only stops the writes, and that is what
// WriteStall measures: each write gets its own deadline, re-armed before
// it starts, so a stream that keeps flowing never hits it, however long
// it lasts, and a pause between writes (an upstream thinking) costs
// nothing. Bodies are not timed here: the handler that reads a body sets
// its read deadline (proxy: body_read_timeout).
//
// Certificates are re-read when their files change (fsnotify on their
// directories, and a poll every 30s); a new pair that does not load keeps
// the old one serving.
//
//	l, err := listener.New(listener.Options{Name: "public", Addr: ":8080", Handler: h, TLS: setup})
//	if err != nil { ... }
//	l.Start()
//	l.SetHandler(h2) // a reload
//	_ = l.Shutdown(ctx)
package listener
