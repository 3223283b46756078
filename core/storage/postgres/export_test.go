package postgres

// QueuedTxns returns how many Txns wait for a group batch, for tests that
// must know a Txn is queued.
func QueuedTxns(b *Backend) int {
	b.group.mu.Lock()
	defer b.group.mu.Unlock()
	return len(b.group.queue)
}
