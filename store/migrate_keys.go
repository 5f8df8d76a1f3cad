package store

import (
	"bytes"
	"encoding/json"
)

// Stores written before key_index existed list an account's API keys only
// by walking every key. Opening one indexes the keys in place, in
// transactions of a bounded size, idempotently (an interrupted run, or two
// fleet instances at once, finish the job), then marks the store indexed.
// A fleet must not run instances older than the index once it is built:
// their new keys would be missing from it.

// keyIndexSchemaKey in meta holds "1" once every API key is in key_index.
var keyIndexSchemaKey = []byte("key_index_schema")

// migrateKeyIndex runs the indexing to completion, batch keys per
// transaction.
func (s *Store) migrateKeyIndex(batch int) error {
	var from []byte
	for {
		var done bool
		var next []byte
		err := s.kv.update(func(tx kvTx) error {
			done, next = false, nil
			meta := tx.Bucket(bucketMeta)
			if string(meta.Get(keyIndexSchemaKey)) == "1" {
				done = true
				return nil
			}
			idx := tx.Bucket(bucketKeyIndex)
			c := tx.Bucket(bucketKeys).Cursor()
			n := 0
			k, v := c.Seek(from)
			for ; k != nil && n < batch; k, v = c.Next() {
				n++
				var r keyRecord
				if json.Unmarshal(v, &r) != nil || r.ID == "" {
					continue
				}
				ik := keyIndexKey(r.AccountID, r.CreatedAt, r.ID)
				if idx.Get(ik) != nil {
					continue
				}
				if err := idx.Put(ik, bytes.Clone(k)); err != nil {
					return err
				}
			}
			if k == nil {
				done = true
				return meta.Put(keyIndexSchemaKey, []byte("1"))
			}
			next = bytes.Clone(k)
			return nil
		})
		if err != nil || done {
			return err
		}
		from = next
	}
}
