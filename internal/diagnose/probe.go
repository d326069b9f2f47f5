package diagnose

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Probe GETs url and succeeds on 200, printing the answer to out: a
// healthcheck (the admin /readyz) for distroless images, which have no
// curl. timeout bounds the request.
func Probe(url string, timeout time.Duration, out io.Writer) error {
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprint(out, string(body))
	return nil
}
