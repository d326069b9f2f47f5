package diagnose

// finding is one thing a diagnosis found: what it saw, and what is wrong
// with it ("" when nothing is). Check prints a component's summary and
// lists its problem at the end; the token explanation prints each
// comparison as "✓ summary" or "✗ problem".
type finding struct{ summary, problem string }

// line is the finding as the token explanation prints it.
func (f finding) line() string {
	if f.problem != "" {
		return "✗ " + f.problem
	}
	return "✓ " + f.summary
}
