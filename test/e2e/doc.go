// Package e2e holds end-to-end tests of the harules node agent: real
// `harules run` processes on two nodes in network namespaces, a client
// probing the VIP, and observers that catch two nodes holding the VIP at
// once (see internal/clustertest). The tests need root; they fail loudly
// without it unless HARULES_SKIP_ROOT_TESTS=1.
package e2e
