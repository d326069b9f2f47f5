package telemetry

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/tokengate/tokengate/config"
)

// The OTEL_* variables tokengate or the OpenTelemetry SDK read for
// traces are checked before the SDK sees any of them: the SDK logs a
// value it cannot parse (a header's, an endpoint's credentials) and goes
// on with a default. An error names the variable; it never holds the
// value of one that may carry a secret.

// Bounds of the numeric variables: beyond them a millisecond count
// overflows a time.Duration, or a queue allocates gigabytes at start.
const (
	maxMillis = 3_600_000
	maxCount  = 1_000_000
)

// otelVar is a set of variables read alike and the check of a value.
type otelVar struct {
	names []string
	// raw: the SDK reads the value as it is (strconv.Atoi, no trimming),
	// so it is checked as it is; otherwise trimmed, as the SDK does.
	raw   bool
	check func(string) error
}

// otelVars are the variables checked when tracing is on.
var otelVars = []otelVar{
	{names: pair("ENDPOINT"), check: config.CheckCollectorURL},
	{names: pair("PROTOCOL"), check: checkProtocol},
	{names: pair("TIMEOUT"), check: wholeNumber(1, maxMillis, "milliseconds")},
	{names: pair("HEADERS"), check: checkHeaders},
	{names: pair("COMPRESSION"), check: oneOf("gzip", "none")},
	{names: pair("INSECURE"), check: checkBool},
	{names: pair("CERTIFICATE"), check: checkCAFile},
	{names: []string{"OTEL_TRACES_SAMPLER"}, check: checkSampler},
	{names: []string{"OTEL_TRACES_SAMPLER_ARG"}, check: checkRatio},
	{names: []string{"OTEL_RESOURCE_ATTRIBUTES"}, check: checkResourceAttributes},
	{names: []string{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"}, raw: true,
		check: wholeNumber(1, MaxAttributeLength, "bytes (tokengate cuts every attribute at 256)")},
	{names: []string{"OTEL_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_EVENT_COUNT_LIMIT",
		"OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_LINK_COUNT_LIMIT", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT"}, raw: true,
		check: wholeNumber(0, maxCount, "")},
	{names: []string{"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT"}, raw: true, check: wholeNumber(1, maxMillis, "milliseconds")},
	{names: []string{"OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"}, raw: true, check: wholeNumber(1, maxCount, "")},
}

// pair names OTEL_EXPORTER_OTLP_<s> and OTEL_EXPORTER_OTLP_TRACES_<s>.
func pair(s string) []string {
	return []string{"OTEL_EXPORTER_OTLP_" + s, "OTEL_EXPORTER_OTLP_TRACES_" + s}
}

// checkEnv checks every variable of otelVars that is set, and the client
// certificate pairs; the error joins one line per variable.
func checkEnv(getenv func(string) string) error {
	var errs []error
	for _, ov := range otelVars {
		for _, n := range ov.names {
			v := getenv(n)
			if !ov.raw {
				v = strings.TrimSpace(v)
			}
			if v == "" {
				continue
			}
			if err := ov.check(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", n, err))
			}
		}
	}
	for _, p := range []string{"OTEL_EXPORTER_OTLP_", "OTEL_EXPORTER_OTLP_TRACES_"} {
		if err := checkClientCert(getenv, p+"CLIENT_CERTIFICATE", p+"CLIENT_KEY"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// envBool reads a true|false variable (any case); unset is false.
func envBool(getenv func(string) string, name string) (bool, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return false, nil
	}
	if err := checkBool(v); err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	return strings.EqualFold(v, "true"), nil
}

func checkBool(v string) error {
	if !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
		return fmt.Errorf("%q is not true or false", v)
	}
	return nil
}

func checkProtocol(v string) error {
	switch v {
	case config.ProtocolHTTPProtobuf, config.ProtocolGRPC:
		return nil
	}
	return fmt.Errorf("%q is not supported (http/protobuf or grpc)", v)
}

func checkSampler(v string) error {
	if !slices.Contains(config.TracingSamplers, v) {
		return fmt.Errorf("unknown sampler %q (one of %s)", v, strings.Join(config.TracingSamplers, ", "))
	}
	return nil
}

// checkRatio: a finite number from 0 to 1 (NaN compares false to both
// bounds, and would sample everything).
func checkRatio(v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
		return fmt.Errorf("%q is not a ratio from 0 to 1", v)
	}
	return nil
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(vals, v) {
			return fmt.Errorf("%q is not one of %s", v, strings.Join(vals, ", "))
		}
		return nil
	}
}

// wholeNumber: a decimal integer from lo to hi.
func wholeNumber(lo, hi int, unit string) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			u := unit
			if u != "" {
				u = " " + u
			}
			return fmt.Errorf("%q is not a whole number from %d to %d%s", v, lo, hi, u)
		}
		return nil
	}
}

// checkHeaders reads key=value,… as the exporter does: the key a header
// name, the value percent-decoded to a valid header value. Values are
// never shown: they are the collector's credentials.
func checkHeaders(v string) error {
	for i, e := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(e, "=")
		k = strings.TrimSpace(k)
		if !ok || !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("entry %d is not name=value with a header name (values are not shown: they may be credentials)", i+1)
		}
		d, err := url.PathUnescape(val)
		if err != nil {
			return fmt.Errorf("the value of %s (entry %d) is not valid percent-encoding (values are not shown)", k, i+1)
		}
		if !httpguts.ValidHeaderFieldValue(strings.TrimSpace(d)) {
			return fmt.Errorf("the value of %s (entry %d) decodes to a character a header value cannot hold (values are not shown)", k, i+1)
		}
	}
	return nil
}

// checkResourceAttributes reads key=value,… as the SDK does (values
// percent-decoded). Values are not shown.
func checkResourceAttributes(v string) error {
	for i, e := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(e, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("entry %d is not key=value (values are not shown)", i+1)
		}
		if _, err := url.PathUnescape(strings.TrimSpace(val)); err != nil {
			return fmt.Errorf("the value of %s (entry %d) is not valid percent-encoding (values are not shown)", strings.TrimSpace(k), i+1)
		}
	}
	return nil
}

// checkCAFile: a readable file holding at least one PEM certificate (the
// exporter would silently use the system roots instead).
func checkCAFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return fmt.Errorf("%s holds no PEM certificate", path)
	}
	return nil
}

// checkClientCert: a client certificate and its key come together and
// load as a pair (the exporter would silently go without either).
func checkClientCert(getenv func(string) string, certVar, keyVar string) error {
	c, k := strings.TrimSpace(getenv(certVar)), strings.TrimSpace(getenv(keyVar))
	switch {
	case c == "" && k == "":
		return nil
	case c == "" || k == "":
		return fmt.Errorf("%s and %s: set both or neither", certVar, keyVar)
	}
	if _, err := tls.LoadX509KeyPair(c, k); err != nil {
		return fmt.Errorf("%s and %s: %w", certVar, keyVar, err)
	}
	return nil
}
