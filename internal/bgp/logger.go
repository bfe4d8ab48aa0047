//go:build !nogobgp

package bgp

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// slogAdapter implements GoBGP's log.Logger on a *slog.Logger. GoBGP's
// level is kept here (it asks for it before building debug messages).
type slogAdapter struct {
	l     *slog.Logger
	level atomic.Uint32
}

var _ gobgplog.Logger = (*slogAdapter)(nil)

func newSlogAdapter(l *slog.Logger, level gobgplog.LogLevel) *slogAdapter {
	a := &slogAdapter{l: l}
	a.level.Store(uint32(level))
	return a
}

func (a *slogAdapter) log(level slog.Level, min gobgplog.LogLevel, msg string, f gobgplog.Fields) {
	if gobgplog.LogLevel(a.level.Load()) < min {
		return
	}
	args := make([]any, 0, 2*len(f))
	for k, v := range f {
		args = append(args, strings.ToLower(k), v)
	}
	a.l.Log(context.Background(), level, msg, args...)
}

func (a *slogAdapter) Panic(msg string, f gobgplog.Fields) {
	a.log(slog.LevelError, gobgplog.PanicLevel, msg, f)
	panic(msg)
}

// Fatal is logged as an error: the daemon, not a library, decides to exit.
func (a *slogAdapter) Fatal(msg string, f gobgplog.Fields) {
	a.log(slog.LevelError, gobgplog.FatalLevel, msg, f)
}
func (a *slogAdapter) Error(msg string, f gobgplog.Fields) {
	a.log(slog.LevelError, gobgplog.ErrorLevel, msg, f)
}
func (a *slogAdapter) Warn(msg string, f gobgplog.Fields) {
	a.log(slog.LevelWarn, gobgplog.WarnLevel, msg, f)
}
func (a *slogAdapter) Info(msg string, f gobgplog.Fields) {
	a.log(slog.LevelInfo, gobgplog.InfoLevel, msg, f)
}
func (a *slogAdapter) Debug(msg string, f gobgplog.Fields) {
	a.log(slog.LevelDebug, gobgplog.DebugLevel, msg, f)
}
func (a *slogAdapter) SetLevel(l gobgplog.LogLevel) { a.level.Store(uint32(l)) }
func (a *slogAdapter) GetLevel() gobgplog.LogLevel  { return gobgplog.LogLevel(a.level.Load()) }

// levelFor maps logSeverityScreen (Trace, Debug, Info, Warning, Error,
// Fatal; any case) to GoBGP's level; GoBGP's Info is chatty about every
// session, so Info maps to Warn plus our own session logs.
func levelFor(severity string) gobgplog.LogLevel {
	switch strings.ToLower(severity) {
	case "trace", "debug":
		return gobgplog.DebugLevel
	case "error", "fatal":
		return gobgplog.ErrorLevel
	case "info", "warning", "":
		return gobgplog.WarnLevel
	}
	return gobgplog.WarnLevel
}
