package core

// OnThread, if set, runs on the goroutine that starts each call's work,
// so on whichever of Go's threads runs it: the binding uses it to adjust
// per-thread settings of Go's threads lazily (pyext/slack.go). Set it once,
// before the first call; it must be cheap and must not block.
var OnThread func()

func onThread() {
	if f := OnThread; f != nil {
		f()
	}
}
