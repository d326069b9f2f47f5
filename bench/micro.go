package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// micro is one Go micro-benchmark result.
type micro struct {
	nsPerOp, allocs float64
}

// runMicro runs the verifier's micro-benchmarks in this run, so the crypto
// floor and the verification cost are measured side by side.
func runMicro(smoke bool) (map[string]micro, error) {
	n := "3000x"
	if smoke {
		n = "50x"
	}
	cmd := exec.Command("go", "test", "./verifier", "-run", "^$", "-bench",
		"^Benchmark(SHA256Token1KB|CacheHit1KB|VerifyRS256|VerifyES256|RawRSAVerify|RawECDSAVerify)$", "-benchmem", "-benchtime", n, "-count", "1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("micro-benchmarks: %v\n%s", err, out.String())
	}
	res := map[string]micro{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
		ns, _ := strconv.ParseFloat(f[2], 64)
		allocs, _ := strconv.ParseFloat(f[6], 64)
		res[name] = micro{ns, allocs}
	}
	return res, nil
}

// microTargets checks the verification and cache-hit targets.
func microTargets(m map[string]micro) []string {
	ratio := func(a, b string) float64 {
		if m[b].nsPerOp == 0 {
			return 0
		}
		return m[a].nsPerOp / m[b].nsPerOp
	}
	rs, es, hit := ratio("VerifyRS256", "RawRSAVerify"), ratio("VerifyES256", "RawECDSAVerify"), ratio("CacheHit1KB", "SHA256Token1KB")
	return []string{
		verdict(rs > 0 && rs <= 2, "RS256 verification (crypto/rsa, keys from the JWKS) ≤ 2× raw crypto/rsa verify", fmt.Sprintf("%.1f µs vs %.1f µs = %.2f×", m["VerifyRS256"].nsPerOp/1000, m["RawRSAVerify"].nsPerOp/1000, rs)),
		verdict(es > 0 && es <= 2, "ES256 verification (crypto/ecdsa, keys from the JWKS) ≤ 2× raw crypto/ecdsa verify", fmt.Sprintf("%.1f µs vs %.1f µs = %.2f×", m["VerifyES256"].nsPerOp/1000, m["RawECDSAVerify"].nsPerOp/1000, es)),
		verdict(hit > 0 && hit <= 1.5, "cache hit for a 1 KB token ≤ 1.5× SHA-256 of the token", fmt.Sprintf("%.0f ns vs %.0f ns = %.2f×", m["CacheHit1KB"].nsPerOp, m["SHA256Token1KB"].nsPerOp, hit)),
		verdict(m["CacheHit1KB"].allocs <= 2, "cache hit ≤ 2 allocations", fmt.Sprintf("%.0f", m["CacheHit1KB"].allocs)),
	}
}
