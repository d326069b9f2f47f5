package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// TestMalformedOTELVariablesStopTheStartQuietly runs the real binary
// (serve, then check) with a collector header whose value is not valid
// percent-encoding and an endpoint with a password that does not parse:
// neither starts, each names the variables, nothing on stdout or stderr
// holds the header's value or the password, and serve's log stays JSON
// (up to the error it exits with).
func TestMalformedOTELVariablesStopTheStartQuietly(t *testing.T) {
	bin := buildBinary(t)
	idp := verifiertest.New()
	defer idp.Close()
	path := writeConfig(t, gateYAML(idp, "http://127.0.0.1:9", hooksRoute))
	env := append(os.Environ(),
		"OTEL_EXPORTER_OTLP_HEADERS=x-api-key=OTLPAPIKEY_Rr5%zz",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://u:OTLPURLPASS_Tt8@[::1",
		"OTEL_TRACES_SAMPLER=bogus")
	for _, args := range [][]string{{"serve", "--config", path, "--log-format", "json"}, {"check", "--config", path}} {
		t.Run(args[0], func(t *testing.T) {
			cmd := exec.Command(bin, args...)
			cmd.Env = env
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("%s started with malformed OTEL_* variables:\n%s", args[0], stderr.String())
			}
			all := stdout.String() + stderr.String()
			if err == nil {
				t.Errorf("%s exited 0 with malformed OTEL_* variables:\n%s", args[0], all)
			}
			for _, v := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER"} {
				if !strings.Contains(all, v) {
					t.Errorf("%s does not name %s:\n%s", args[0], v, all)
				}
			}
			for _, secret := range []string{"OTLPAPIKEY", "OTLPURLPASS"} {
				if strings.Contains(all, secret) {
					t.Errorf("%s shows a collector credential:\n%s", args[0], all)
				}
			}
			if args[0] != "serve" {
				return
			}
			for _, l := range strings.Split(stderr.String(), "\n") {
				if strings.HasPrefix(l, "tokengate: ") {
					break // the error, to its end
				}
				if l != "" && !json.Valid([]byte(l)) {
					t.Errorf("a log line is not JSON: %q", l)
				}
			}
		})
	}
}
