package lease

import "container/heap"

// dueHeap orders entries by due time, earliest first. Manager.mu guards
// it.
type dueHeap struct{ h entries }

type entries []*entry

func (h entries) Len() int           { return len(h) }
func (h entries) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h entries) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *entries) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *entries) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}

func (q *dueHeap) len() int      { return len(q.h) }
func (q *dueHeap) peek() *entry  { return q.h[0] }
func (q *dueHeap) push(e *entry) { heap.Push(&q.h, e) }
func (q *dueHeap) pop() *entry   { return heap.Pop(&q.h).(*entry) }
func (q *dueHeap) fix(i int)     { heap.Fix(&q.h, i) }
func (q *dueHeap) remove(i int)  { heap.Remove(&q.h, i) }
