// Package queuecli is `tokengate queue`: an operator's list, show, retry,
// drop and stats of the delivery queue's stored messages. It reaches the
// queue through queue.Connect: a running gate's control socket (the gate
// holds the file store's lock), or the store itself when no gate runs.
// The command parses flags; Run does the rest and prints plain text
// (show prints JSON).
package queuecli
