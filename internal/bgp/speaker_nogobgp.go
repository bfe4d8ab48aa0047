//go:build nogobgp

package bgp

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
)

// This file replaces speaker.go, filter.go and logger.go in a build with
// the nogobgp tag, so that GoBGP is not linked at all. That build exists
// only to measure what linking GoBGP costs every applet (the CNI ADD
// benchmark in internal/e2e compares the two binaries); it is not a
// product. Its Speaker has the same API and reports BGP unavailable.

// ErrUnavailable is returned by Apply when BGP is wanted in a binary
// built without GoBGP.
var ErrUnavailable = errors.New("BGP is unavailable: this binary was built with the nogobgp tag")

// Speaker is the nogobgp build's stand-in: it never starts a server.
type Speaker struct{ log *slog.Logger }

// NewSpeaker returns a speaker that never runs.
func NewSpeaker(log *slog.Logger, _ func(sessions bool)) *Speaker { return &Speaker{log: log} }

// Apply returns ErrUnavailable when d enables BGP.
func (s *Speaker) Apply(_ context.Context, d Desired) error {
	if d.Enabled {
		return ErrUnavailable
	}
	return nil
}

// Stop does nothing.
func (s *Speaker) Stop(bool) {}

// Running is always false.
func (s *Speaker) Running() bool { return false }

// Learned is always empty.
func (s *Speaker) Learned() (map[netip.Prefix]Learned, uint64) { return nil, 0 }

// LearnedCount is always 0.
func (s *Speaker) LearnedCount() int { return 0 }

// TakeChanges never has any.
func (s *Speaker) TakeChanges(buf []Change) []Change { return buf }

// Status lists no sessions.
func (s *Speaker) Status(context.Context) []PeerStatus { return nil }
