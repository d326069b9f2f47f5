package diagnose

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/listener"
	"github.com/tokengate/tokengate/proxy"
)

// certWarnWindow: certificates expiring sooner than this are reported.
const certWarnWindow = 14 * 24 * time.Hour

// checkCertPair reports what is wrong with a certificate and key pair:
// unreadable, not matching, expired or expiring soon, or not covering name.
func checkCertPair(path, certFile, keyFile, name string, now time.Time) (summary string, problems []string) {
	pair, _, err := listener.LoadPair(certFile, keyFile, now)
	if pe, ok := errors.AsType[*listener.PairError](err); ok {
		// name the file at fault: tls.key_file, not tls.cert_file
		return "INVALID", []string{fmt.Sprintf("%s%s: %v", strings.TrimSuffix(path, "cert_file"), pe.File, pe.Err)}
	}
	if err != nil {
		return "INVALID", []string{fmt.Sprintf("%s: %v", path, err)}
	}
	leaf := pair.Leaf
	summary = fmt.Sprintf("%s, valid until %s", leaf.Subject.String(), leaf.NotAfter.Format("2006-01-02"))
	if left := leaf.NotAfter.Sub(now); left < certWarnWindow {
		problems = append(problems, fmt.Sprintf("%s: certificate expires in %s (on %s)", path, left.Round(time.Hour), leaf.NotAfter.Format(time.RFC3339)))
	}
	if name != "" {
		if err := leaf.VerifyHostname(name); err != nil {
			problems = append(problems, fmt.Sprintf("%s: certificate does not cover server_name %q: %v", path, name, err))
		}
	}
	return summary, problems
}

// checkCAFile reports a CA file that cannot be read or holds no PEM
// certificate.
func checkCAFile(path, file string) []string {
	b, err := os.ReadFile(file)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	n := 0
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if _, err := x509.ParseCertificate(block.Bytes); err == nil {
			n++
		}
	}
	if n == 0 {
		return []string{fmt.Sprintf("%s: no PEM certificate in %s", path, file)}
	}
	return nil
}

// checkTLS covers the public listener's and the upstream's certificates,
// and for an https upstream makes one TLS handshake with tokengate's own
// settings (CA file, client certificate, server_name).
func checkTLS(ctx context.Context, cfg *config.Config, now time.Time) (lines, problems []string) {
	if t := cfg.TLS; t != nil {
		sum, p := checkCertPair("tls.cert_file", t.CertFile, t.KeyFile, t.ServerName, now)
		lines = append(lines, "tls      "+sum)
		problems = append(problems, p...)
		if t.ClientCAFile != "" {
			problems = append(problems, checkCAFile("tls.client_ca_file", t.ClientCAFile)...)
		}
	}
	u := cfg.Upstream
	if u.CertFile != "" {
		sum, p := checkCertPair("upstream.cert_file", u.CertFile, u.KeyFile, "", now)
		lines = append(lines, "upstream client certificate "+sum)
		problems = append(problems, p...)
	}
	if u.CAFile != "" {
		problems = append(problems, checkCAFile("upstream.ca_file", u.CAFile)...)
	}
	pu, err := url.Parse(u.URL)
	if err != nil || pu.Scheme != "https" || len(problems) > 0 {
		return lines, problems
	}
	tr, err := proxy.NewTransport(u)
	if err != nil {
		return lines, append(problems, err.Error())
	}
	host := pu.Host
	if pu.Port() == "" {
		host = net.JoinHostPort(pu.Hostname(), "443")
	}
	tc := tr.TLSClientConfig.Clone()
	if tc.ServerName == "" {
		tc.ServerName = pu.Hostname()
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{Config: tc}).DialContext(dctx, "tcp", host)
	if err != nil {
		if isTLSError(err) {
			return lines, append(problems, fmt.Sprintf("upstream.url: TLS to %s fails: %v", host, err))
		}
		return append(lines, fmt.Sprintf("upstream TLS not checked: %s unreachable (%v)", host, err)), problems
	}
	defer conn.Close()
	cs := conn.(*tls.Conn).ConnectionState()
	lines = append(lines, fmt.Sprintf("upstream TLS ok: %s, %s", tls.VersionName(cs.Version), cs.PeerCertificates[0].Subject.String()))
	return lines, problems
}

// isTLSError tells a certificate or handshake failure from an unreachable
// host: only the first is a configuration problem.
func isTLSError(err error) bool {
	var (
		hostErr   x509.HostnameError
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
		recordErr tls.RecordHeaderError
		alertErr  tls.AlertError
	)
	return errors.As(err, &hostErr) || errors.As(err, &unknownCA) || errors.As(err, &invalid) ||
		errors.As(err, &verifyErr) || errors.As(err, &recordErr) || errors.As(err, &alertErr)
}
