package router

// SessionsPerHost counts the bound sessions of each served host (hosts
// without a session are 0), for metrics: it walks every shard, so it is
// for a scrape now and then, not for the message path.
func (r *Router) SessionsPerHost() map[string]int {
	out := make(map[string]int, len(r.hosts))
	for h := range r.hosts {
		out[h] = 0
	}
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		for bare, res := range sh.m {
			out[bare.Domain()] += len(res)
		}
		sh.mu.RUnlock()
	}
	return out
}
