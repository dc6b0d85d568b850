// Package logging holds the one policy every package applies to the
// logger it is given, so that a line's origin is always named and a
// missing logger means the same thing everywhere.
package logging

import "log/slog"

// For returns log with the attribute component=name, so that every line a
// package writes says which package wrote it. A nil log discards: a part
// built without a logger (in tests, in tools) stays silent rather than
// writing to the process-wide default, which nobody configured for it.
func For(log *slog.Logger, name string) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log.With("component", name)
}
