package clientsecret

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// ErrNoSecret: Hash read an empty secret.
var ErrNoSecret = errors.New(`give the secret on stdin, e.g. printf %s "$SECRET" | tokengate hash-secret`)

// NewClient makes a client named name for the token endpoint: a random
// 32-byte secret, printed to out once, and the YAML of the client (its
// scopes, comma- or space-separated, and the secret's bcrypt hash at
// cost) to add under token_endpoint.clients.
func NewClient(name, scopes string, cost int, out io.Writer) error {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return err
	}
	// base64url has no '+' or '%', so senders that skip the RFC 6749
	// §2.3.1 form-encoding of Basic credentials still work.
	secret := base64.RawURLEncoding.EncodeToString(raw[:])
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), cost)
	if err != nil {
		return err
	}
	list := strings.FieldsFunc(scopes, func(r rune) bool { return r == ',' || r == ' ' })
	quoted := make([]string, len(list))
	for i, s := range list {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	fmt.Fprintf(out, "client_id:     %s\nclient_secret: %s\n\n", name, secret)
	fmt.Fprintln(out, "The secret is shown only this once: give it to the sender now.")
	fmt.Fprintln(out, "Add this client under token_endpoint.clients in your tokengate config:")
	fmt.Fprintf(out, "\n  - client_id: %s\n    client_secret_hash: %q\n    scopes: [%s]\n", name, hash, strings.Join(quoted, ", "))
	return nil
}

// Hash reads a secret (one line) from in and prints its bcrypt hash at
// cost to out. An empty secret is ErrNoSecret; bcrypt takes at most 72
// bytes, so a longer one is refused rather than cut.
func Hash(in io.Reader, cost int, out io.Writer) error {
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	secret := strings.TrimRight(line, "\r\n")
	switch {
	case secret == "":
		return ErrNoSecret
	case len(secret) > 72:
		return errors.New("bcrypt uses at most 72 bytes of a secret; use a shorter one")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), cost)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, string(hash))
	return nil
}
