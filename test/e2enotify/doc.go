// Package e2enotify holds end-to-end tests of notify(): real `harules run`
// agents in network namespaces (internal/clustertest) send their events to
// a webhook receiver listening on the client host of the lab. The tests
// need root; they fail loudly without it unless HARULES_SKIP_ROOT_TESTS=1.
package e2enotify
