package stats

// listElem links a task into the recency list without an allocation of
// its own (container/list would box every task in an interface).
type listElem struct {
	prev, next *listElem
	t          *task
}

// taskList is a doubly linked list of tasks, most recently used at the
// front. The zero value is an empty list. It is guarded by Recorder.tasksMu.
type taskList struct {
	root listElem // sentinel: root.next is the front, root.prev the back
}

func (l *taskList) lazyInit() {
	if l.root.next == nil {
		l.root.next, l.root.prev = &l.root, &l.root
	}
}

func (l *taskList) pushFront(t *task) *listElem {
	l.lazyInit()
	e := &listElem{t: t}
	l.insertAfter(e, &l.root)
	return e
}

func (l *taskList) insertAfter(e, at *listElem) {
	e.prev, e.next = at, at.next
	at.next.prev = e
	at.next = e
}

func (l *taskList) remove(e *listElem) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (l *taskList) moveToFront(e *listElem) {
	if l.root.next == e {
		return
	}
	l.remove(e)
	l.insertAfter(e, &l.root)
}

// back returns the least recently used task, or nil.
func (l *taskList) back() *task {
	l.lazyInit()
	if l.root.prev == &l.root {
		return nil
	}
	return l.root.prev.t
}
