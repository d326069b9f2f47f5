// Package quickstart is the demo half of `tokengate quickstart`: a
// "legacy" webhook receiver that checks nothing and prints every webhook
// tokengate forwards to it, and the checks that tell a newcomer what to
// do when the quickstart's files are not where it looks. The command runs
// tokengate in front of the receiver.
package quickstart
