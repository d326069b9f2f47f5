package status

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"time"
)

// statusTimeout bounds the work behind one page (the queue's counts).
const statusTimeout = 3 * time.Second

//go:embed page.html style.css
var files embed.FS

// css is the page's only style, inline; the policy allows it by hash.
var css = mustRead("style.css")

// ContentSecurityPolicy is sent with the page: nothing may load, no
// script may run, no form may post and no site may frame it; only the
// page's own inline style (by its SHA-256) applies.
var ContentSecurityPolicy = fmt.Sprintf("default-src 'none'; style-src 'sha256-%s'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	base64.StdEncoding.EncodeToString(func() []byte { h := sha256.Sum256([]byte(css)); return h[:] }()))

var pageTemplate = template.Must(template.New("page.html").Funcs(template.FuncMap{
	// css is trusted: it is the embedded file the policy's hash covers.
	"css":       func() template.CSS { return template.CSS(css) },
	"dur":       func(s float64) string { return seconds(s) },
	"stamp":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"minute":    func(t time.Time) string { return t.UTC().Format("15:04Z") },
	"maxMinute": maxMinute,
	"bar":       bar,
}).ParseFS(files, "page.html"))

func mustRead(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// view is what the template renders: the snapshot and its helpers.
type view struct{ Snapshot }

// Ago tells how long before the snapshot t was ("never" for zero).
func (v view) Ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return seconds(v.Now.Sub(t).Seconds()) + " ago"
}

// seconds spells a duration in seconds the way an operator reads it.
func seconds(s float64) string {
	d := time.Duration(math.Max(s, 0) * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func maxMinute(ms []Minute) uint64 {
	var m uint64
	for _, x := range ms {
		m = max(m, x.Requests)
	}
	return m
}

// bar is the height class of a per-minute bar: h0 for none, h1…h8 in
// proportion to the busiest minute.
func bar(n, top uint64) string {
	if n == 0 || top == 0 {
		return "h0"
	}
	return fmt.Sprintf("h%d", 1+n*7/top) // 1…8
}

// securityHeaders are sent with both answers: no sniffing, no caching,
// nothing loaded, no referrer, never framed.
func securityHeaders(w http.ResponseWriter, contentType string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// Page serves src's status page, each request building it anew; a
// listener serves a Cache's instead.
func Page(src Source) http.Handler {
	return NewCache(src, CacheOptions{CacheFor: time.Nanosecond}).Page()
}

// JSON serves src's snapshot as JSON, each request building it anew; a
// listener serves a Cache's instead.
func JSON(src Source) http.Handler {
	return NewCache(src, CacheOptions{CacheFor: time.Nanosecond}).JSON()
}
