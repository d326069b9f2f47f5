// Package logging builds the process logger of tokengate's commands: zap,
// JSON by default, passed to every component and never global. serve's
// logger buffers (the access log writes a line per request: buffered, a
// line costs an encode and a copy, not a write(2)) and flushes every
// second, when the buffer fills, at stop, and at once after any warning
// or error, so problems are never held back.
package logging
