// Package e2ebackup holds end-to-end tests of backups across nodes: real
// `harules run` agents on two nodes in network namespaces (see
// internal/clustertest) copy backups to each other over the cluster's
// authenticated channel, and the `harules backup` commands see the copies.
// The tests need root; they fail loudly without it unless
// HARULES_SKIP_ROOT_TESTS=1.
package e2ebackup
