package probes

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// maxHTTPBody bounds how much of a response body is read for matching.
const maxHTTPBody = 1 << 20

// HTTPConfig configures an HTTP/HTTPS check.
type HTTPConfig struct {
	// URL to request (http or https).
	URL string
	// Method defaults to GET.
	Method string
	// ExpectStatus is the required status code; 0 accepts any 2xx.
	ExpectStatus int
	// BodyContains, if set, must occur in the body.
	BodyContains string
	// BodyRegexp, if set, must match the body.
	BodyRegexp string
	// InsecureSkipVerify disables TLS certificate verification (self-signed
	// service certificates on a private network).
	InsecureSkipVerify bool
	// Header adds request headers (e.g. Host).
	Header http.Header
}

// HTTPCheck requests a URL and checks status and body. Redirects are not
// followed (a 3xx is judged as it is), proxies from the environment are not
// used and connections are not kept alive, so each run tests the service.
type HTTPCheck struct {
	cfg    HTTPConfig
	re     *regexp.Regexp
	client *http.Client
}

var _ Check = (*HTTPCheck)(nil)

// NewHTTP validates cfg and returns the check.
func NewHTTP(cfg HTTPConfig) (*HTTPCheck, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("http check: url %q: %w", cfg.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("http check: url %q: scheme must be http or https", cfg.URL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("http check: url %q has no host", cfg.URL)
	}
	if cfg.Method == "" {
		cfg.Method = http.MethodGet
	}
	if cfg.ExpectStatus != 0 && (cfg.ExpectStatus < 100 || cfg.ExpectStatus > 599) {
		return nil, fmt.Errorf("http check: expected status %d is not an HTTP status (100..599)", cfg.ExpectStatus)
	}
	c := &HTTPCheck{cfg: cfg}
	if cfg.BodyRegexp != "" {
		if c.re, err = regexp.Compile(cfg.BodyRegexp); err != nil {
			return nil, fmt.Errorf("http check: body regexp: %w", err)
		}
	}
	transport := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: cfg.InsecureSkipVerify}, //nolint:gosec // opt-in per probe
	}
	c.client = &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// Run performs the request; Value is the latency in ms, Values["status"]
// the status code, Text the status line.
func (c *HTTPCheck) Run(ctx context.Context) Result {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, c.cfg.Method, c.cfg.URL, nil)
	if err != nil {
		return failure(start, "http request", err)
	}
	for k, vs := range c.cfg.Header {
		for _, v := range vs {
			if strings.EqualFold(k, "Host") {
				req.Host = v
				continue
			}
			req.Header.Add(k, v)
		}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return failure(start, "http "+c.cfg.Method+" "+c.cfg.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody))
	lat := time.Since(start)
	res := Result{
		Value:   ms(lat),
		Values:  map[string]float64{"status": float64(resp.StatusCode)},
		Text:    resp.Status,
		Latency: lat,
	}
	if err != nil && !errors.Is(err, io.EOF) {
		res.Err = "reading body: " + err.Error()
		return res
	}
	switch {
	case c.cfg.ExpectStatus != 0 && resp.StatusCode != c.cfg.ExpectStatus:
		res.Err = fmt.Sprintf("status %d, want %d", resp.StatusCode, c.cfg.ExpectStatus)
	case c.cfg.ExpectStatus == 0 && (resp.StatusCode < 200 || resp.StatusCode > 299):
		res.Err = fmt.Sprintf("status %d, want 2xx", resp.StatusCode)
	case c.cfg.BodyContains != "" && !strings.Contains(string(body), c.cfg.BodyContains):
		res.Err = fmt.Sprintf("body does not contain %q", c.cfg.BodyContains)
	case c.re != nil && !c.re.Match(body):
		res.Err = fmt.Sprintf("body does not match /%s/", c.cfg.BodyRegexp)
	default:
		res.OK = true
	}
	return res
}
