package clientsecret

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestNewClientPrintsTheSecretOnceAndItsHash: the YAML holds the hash of
// the secret printed, never the secret, and the scopes as given.
func TestNewClientPrintsTheSecretOnceAndItsHash(t *testing.T) {
	var out strings.Builder
	if err := NewClient("aftership", "webhooks:write, orders:read", bcrypt.MinCost, &out); err != nil {
		t.Fatal(err)
	}
	secret := regexp.MustCompile(`(?m)^client_secret: (\S+)$`).FindStringSubmatch(out.String())
	hash := regexp.MustCompile(`client_secret_hash: "(\S+)"`).FindStringSubmatch(out.String())
	if secret == nil || hash == nil {
		t.Fatalf("no secret or hash in:\n%s", out.String())
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash[1]), []byte(secret[1])); err != nil {
		t.Fatalf("the hash is not the secret's: %v", err)
	}
	if strings.Count(out.String(), secret[1]) != 1 || strings.ContainsAny(secret[1], "+/%=") {
		t.Errorf("the secret is printed more than once, or needs form-encoding: %q", secret[1])
	}
	if !strings.Contains(out.String(), `scopes: ["webhooks:write", "orders:read"]`) {
		t.Errorf("scopes not as given:\n%s", out.String())
	}
}

func TestHash(t *testing.T) {
	for _, c := range []struct {
		in   string
		fail bool
	}{{"s3cret\n", false}, {"\n", true}, {strings.Repeat("a", 73), true}} {
		var out strings.Builder
		err := Hash(strings.NewReader(c.in), bcrypt.MinCost, &out)
		if (err != nil) != c.fail {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if c.in == "\n" && !errors.Is(err, ErrNoSecret) {
			t.Errorf("an empty secret: %v, want ErrNoSecret", err)
		}
		if err == nil && bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(out.String())), []byte("s3cret")) != nil {
			t.Errorf("%q: the hash printed is not the secret's", c.in)
		}
	}
}
