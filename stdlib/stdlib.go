// Package stdlib embeds the Starlark library files shipped with harules.
// Policies load them as "@stdlib//NAME.star", e.g.
//
//	load("@stdlib//placement.star", "active_standby", "active_active")
//	load("@stdlib//rules.star", "gateway_guard", "path_down_alert")
//
// Everything here is ordinary Starlark built on the engine's primitives
// (placement(), rule decisions, facts), so operators can read it, copy it and
// write their own variants.
package stdlib

import "embed"

// FS holds the library files.
//
//go:embed *.star
var FS embed.FS
