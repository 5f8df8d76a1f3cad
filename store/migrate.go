package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// MigrateToFleet copies the shared records (the schema's migrate
// property: SharedBuckets) of the single-node bbolt file at path into the
// fleet's etcd prefix, in transactions of at most batch records (default
// 100, at most 120: etcd allows 128 operations per transaction). Records the fleet already holds
// are left alone, so re-running it is safe and never overwrites a change
// made in the fleet since. masterKey must be the one the file is sealed
// under, and the fleet's if the prefix is already in use (sealed records
// are copied as ciphertext). It returns how many records it wrote.
//
// The file must not be open elsewhere (stop the single-node Caddy first).
func MigrateToFleet(ctx context.Context, path string, masterKey []byte, opts Options, fo FleetOptions, batch int) (int, error) {
	if batch <= 0 {
		batch = 100
	}
	batch = min(batch, 120)
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("source store: %v", err)
	}
	src, err := Open(path, masterKey, opts)
	if err != nil {
		return 0, fmt.Errorf("source store: %w", err)
	}
	defer src.Close()
	tmp, err := os.MkdirTemp("", "agentrouter-migrate-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	fo.NoRegistration = true
	dst, err := OpenFleet(filepath.Join(tmp, "local.db"), masterKey, Options{OldMasterKeys: opts.OldMasterKeys}, fo)
	if err != nil {
		return 0, err
	}
	defer dst.Close()

	written := 0
	for _, bk := range schema {
		if !bk.migrate {
			continue
		}
		name := bk.String()
		var items []kvItem
		err := src.kv.view(func(tx kvTx) error {
			b := tx.Bucket(bk)
			if bb, ok := b.(boltBucket); ok && bb.Bucket == nil {
				return nil // a bucket this file does not have
			}
			return b.ForEach(func(k, v []byte) error {
				items = append(items, kvItem{bytes.Clone(k), bytes.Clone(v)})
				return nil
			})
		})
		if err != nil {
			return written, fmt.Errorf("reading %s: %w", name, err)
		}
		for len(items) > 0 {
			if err := ctx.Err(); err != nil {
				return written, err
			}
			n := min(batch, len(items))
			chunk := items[:n]
			items = items[n:]
			var w int
			err := dst.kv.update(func(tx kvTx) error {
				w = 0
				b := tx.Bucket(bk)
				for _, it := range chunk {
					if b.Get(it.k) != nil {
						continue
					}
					if err := b.Put(it.k, it.v); err != nil {
						return err
					}
					w++
				}
				return nil
			})
			if err != nil {
				return written, fmt.Errorf("writing %s: %w", name, err)
			}
			written += w
		}
	}
	return written, nil
}
