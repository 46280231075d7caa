package queue

import "sync"

// bodyCacheBytes bounds the memory of the bodies kept after Enqueue (the
// capacity of the buffers they were received into is what counts): a few
// thousand messages, enough for delivery to catch up with a burst.
const bodyCacheBytes = 32 << 20

// bodyCache keeps the bodies of recently enqueued messages, so that the
// delivery that usually follows within milliseconds does not read them back
// from badger. Bodies never change once stored; a body leaves the cache
// when its message leaves the queue or when newer ones need the room
// (oldest first).
type bodyCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	m     map[string]cachedBody
	order []string // ids in insertion order; may name ids already dropped
}

type cachedBody struct {
	body []byte // capacity cut to the length: an append copies
	cost int64  // the memory it keeps: the capacity of its buffer
}

func newBodyCache(max int64) *bodyCache {
	return &bodyCache{max: max, m: map[string]cachedBody{}}
}

func (c *bodyCache) put(id string, body []byte) {
	cost := int64(cap(body))
	if cost > c.max/4 {
		return // a large body would push out many small ones
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[id]; ok {
		c.size -= old.cost
	} else {
		c.order = append(c.order, id)
	}
	c.m[id] = cachedBody{body: body[:len(body):len(body)], cost: cost}
	c.size += cost
	for c.size > c.max && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		if e, ok := c.m[old]; ok {
			c.size -= e.cost
			delete(c.m, old)
		}
	}
	if len(c.order) > 2*len(c.m)+64 {
		// Mostly dropped ids: keep only the live ones, in order.
		live := make([]string, 0, len(c.m))
		for _, id := range c.order {
			if _, ok := c.m[id]; ok {
				live = append(live, id)
			}
		}
		c.order = live
	}
}

// get returns the cached body (read-only: its capacity ends at its length,
// so an append copies).
func (c *bodyCache) get(id string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	return e.body, ok
}

func (c *bodyCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok {
		c.size -= e.cost
		delete(c.m, id)
	}
}
