package gate

import (
	"crypto/tls"
	"fmt"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/listener"
	"github.com/tokengate/tokengate/proxy"
)

// tlsSetup loads a listener's TLS configuration (public or egress): the
// certificate (re-read when its files change) and, with client_ca_file,
// client-certificate verification. nil t: plain HTTP.
func tlsSetup(t *config.TLS, log *zap.Logger) (*listener.TLSSetup, error) {
	if t == nil {
		return nil, nil
	}
	spec := listener.TLS{CertFile: t.CertFile, KeyFile: t.KeyFile}
	if t.ClientCAFile != "" {
		pool, err := proxy.LoadCertPool(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca_file: %w", err)
		}
		spec.ClientCAs = pool
		spec.ClientAuth = tls.RequireAndVerifyClientCert
		if t.ClientAuth == config.ClientAuthRequest {
			spec.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return listener.NewTLSSetup(spec, log.Named("tls"))
}
