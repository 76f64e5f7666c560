//go:build !linux

package core

// pollMute is pollmute_linux.go's; elsewhere Go's poller keeps its
// interest (a wake-up a packet while an event loop reads the socket).
type pollMute struct{}

func (m *pollMute) setRead(fd int, read bool) {}
func (m *pollMute) close(fd int)              {}
