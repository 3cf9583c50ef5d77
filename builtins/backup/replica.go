package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Replica is a second place a completed backup is copied to. A backup is
// "safe" once every configured replica verified its copy. DirReplica is a
// second directory; a peer node over the network can implement the same.
type Replica interface {
	// Name identifies the replica in Record.Copies.
	Name() string
	// Put copies the backup's files (opened with open, named in rec.Files)
	// and verifies each against rec's size and SHA-256 on arrival.
	Put(ctx context.Context, rec Record, open func(name string) (io.ReadCloser, error)) error
	// Verify re-reads the copy and checks it as Store.Verify does.
	Verify(ctx context.Context, job, id string) error
	// Delete removes the copy; a missing copy is not an error.
	Delete(ctx context.Context, job, id string) error
}

// Locator is implemented by replicas that can say where their copies live
// (recorded in Copy.Location).
type Locator interface {
	Location() string
}

// DirReplica keeps copies in another Store, e.g. on a second disk.
type DirReplica struct {
	name  string
	store *Store
}

var (
	_ Replica = (*DirReplica)(nil)
	_ Locator = (*DirReplica)(nil)
)

// NewDirReplica returns a replica named name storing copies in store.
func NewDirReplica(name string, store *Store) *DirReplica {
	return &DirReplica{name: name, store: store}
}

// Name implements Replica.
func (d *DirReplica) Name() string { return d.name }

// Location implements Locator: the replica store's directory.
func (d *DirReplica) Location() string { return d.store.Dir() }

// Store returns the store holding the copies.
func (d *DirReplica) Store() *Store { return d.store }

// Put implements Replica.
func (d *DirReplica) Put(ctx context.Context, rec Record, open func(string) (io.ReadCloser, error)) error {
	if err := d.store.Import(ctx, rec, open); err != nil {
		return fmt.Errorf("replica %s: %w", d.name, err)
	}
	return nil
}

// Verify implements Replica.
func (d *DirReplica) Verify(ctx context.Context, job, id string) error {
	if err := d.store.Verify(ctx, job, id); err != nil {
		return fmt.Errorf("replica %s: %w", d.name, err)
	}
	return nil
}

// Delete implements Replica.
func (d *DirReplica) Delete(_ context.Context, job, id string) error {
	if err := d.store.Delete(job, id); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("replica %s: %w", d.name, err)
	}
	return nil
}
