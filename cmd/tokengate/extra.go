package main

import (
	"fmt"
	"io"
)

// extraCommand runs the commands beyond serve, check and version.
func extraCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return fmt.Errorf("%w: unknown command %q (see tokengate help)", errUsage, args[0])
}
