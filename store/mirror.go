package store

import (
	"bytes"

	"github.com/google/btree"
)

// The fleet backend's in-memory mirror of the etcd prefix: one ordered,
// persistent tree per bucket. A published view is never modified: the
// watch changes private copy-on-write clones of the trees (btree.Clone is
// lazy: a change copies the nodes on its path, a few KB, and shares the
// rest), then publishes new clones. So a transaction reads one consistent
// view for as long as it likes, a watch event costs what it changes, and a
// cursor seeks in O(log n) instead of sorting the bucket.

type mirrorItem struct {
	k   string
	v   []byte
	mod int64 // etcd mod revision
}

func itemLess(a, b mirrorItem) bool { return a.k < b.k }

type tree = btree.BTreeG[mirrorItem]

// mirrorDegree is the trees' B-tree degree (nodes of 31 to 63 items).
const mirrorDegree = 32

func newTree() *tree { return btree.NewG(mirrorDegree, itemLess) }

// mirror is a published view: bucket name -> tree. Never modified.
type mirror map[string]*tree

func (m mirror) get(bucket, k string) (mirrorItem, bool) {
	t := m[bucket]
	if t == nil {
		return mirrorItem{}, false
	}
	return t.Get(mirrorItem{k: k})
}

// mirrorWriter holds the trees the watch changes; only the goroutine that
// applies watch events (under fleetKV.applyMu) touches it.
type mirrorWriter struct {
	trees   map[string]*tree
	touched map[string]bool
}

func newMirrorWriter() *mirrorWriter {
	return &mirrorWriter{trees: make(map[string]*tree), touched: make(map[string]bool)}
}

func (w *mirrorWriter) put(bucket, k string, v []byte, mod int64) {
	t := w.trees[bucket]
	if t == nil {
		t = newTree()
		w.trees[bucket] = t
	}
	t.ReplaceOrInsert(mirrorItem{k, v, mod})
	w.touched[bucket] = true
}

func (w *mirrorWriter) del(bucket, k string) {
	if t := w.trees[bucket]; t != nil {
		if _, ok := t.Delete(mirrorItem{k: k}); ok {
			w.touched[bucket] = true
		}
	}
}

// publish returns a view with the trees changed since the last publish
// cloned from the writer's, and prev's other trees.
func (w *mirrorWriter) publish(prev mirror) mirror {
	next := make(mirror, len(w.trees))
	for b, t := range prev {
		next[b] = t
	}
	for b := range w.touched {
		next[b] = w.trees[b].Clone()
	}
	clear(w.touched)
	return next
}

// diffTrees calls fn for every key whose value differs between a and b, with b's
// value (nil: absent in b), in key order.
func diffTrees(a, b *tree, fn func(k string, v []byte)) {
	var as, bs []mirrorItem
	if a != nil {
		as = make([]mirrorItem, 0, a.Len())
		a.Ascend(func(it mirrorItem) bool { as = append(as, it); return true })
	}
	if b != nil {
		bs = make([]mirrorItem, 0, b.Len())
		b.Ascend(func(it mirrorItem) bool { bs = append(bs, it); return true })
	}
	i, j := 0, 0
	for i < len(as) || j < len(bs) {
		switch {
		case j == len(bs) || i < len(as) && as[i].k < bs[j].k:
			fn(as[i].k, nil)
			i++
		case i == len(as) || bs[j].k < as[i].k:
			fn(bs[j].k, nonNil(bs[j].v))
			j++
		default:
			if !bytes.Equal(as[i].v, bs[j].v) {
				fn(bs[j].k, nonNil(bs[j].v))
			}
			i++
			j++
		}
	}
}

// nonNil returns v, or an empty slice for nil (a change's nil value means
// a deletion).
func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// treeStream reads a tree in key order from a seek point, a batch at a
// time (the btree package iterates with callbacks only).
type treeStream struct {
	t    *tree
	buf  []mirrorItem
	i    int
	done bool
}

const streamBatch = 64

func (s *treeStream) seek(from string) {
	s.buf, s.i, s.done = s.buf[:0], 0, false
	s.fill(from, true)
}

func (s *treeStream) fill(from string, inclusive bool) {
	if s.t == nil {
		s.done = true
		return
	}
	s.t.AscendGreaterOrEqual(mirrorItem{k: from}, func(it mirrorItem) bool {
		if !inclusive && it.k == from {
			return true
		}
		s.buf = append(s.buf, it)
		return len(s.buf) < streamBatch
	})
	if len(s.buf) < streamBatch {
		s.done = true
	}
}

func (s *treeStream) peek() (mirrorItem, bool) {
	if s.i < len(s.buf) {
		return s.buf[s.i], true
	}
	if s.done || len(s.buf) == 0 {
		return mirrorItem{}, false
	}
	last := s.buf[len(s.buf)-1].k
	s.buf, s.i = s.buf[:0], 0
	s.fill(last, false)
	if len(s.buf) == 0 {
		return mirrorItem{}, false
	}
	return s.buf[0], true
}

func (s *treeStream) advance() { s.i++ }
