// Package examples embeds the example policies and scenarios, so that
// `harules demo` works from the binary alone and every example runs as a test.
package examples

import "embed"

// FS holds every example: <name>/policy.star and <name>/scenarios/*.star.
//
//go:embed */policy.star */scenarios/*.star
var FS embed.FS
