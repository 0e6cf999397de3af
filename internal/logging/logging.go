// Package logging makes the one root logger of an eipd command (hclog, text
// or JSON, durations written as Go durations) and hands the AWS SDK's own
// messages to it.
package logging

import (
	"fmt"
	"io"
	"time"

	smithylogging "github.com/aws/smithy-go/logging"
	"github.com/hashicorp/go-hclog"
)

// New is the one root logger of a command. In JSON mode every line
// is one object with @level, @message, @timestamp and @module.
func New(level, format string, w io.Writer) hclog.Logger {
	return durationsAsText{hclog.New(&hclog.LoggerOptions{
		Name: "eipd", Level: hclog.LevelFromString(level), Output: w,
		JSONFormat: format == "json", TimeFormat: "2006-01-02T15:04:05.000Z07:00",
	})}
}

// durationsAsText writes time.Duration arguments as Go duration strings
// ("1.5s"): hclog's JSON format would write nanosecond integers, which a
// reader cannot tell from counts. Converting here, once, keeps every call
// site (leader, eip, health) free to pass durations as they are. Text mode
// prints the same as before.
type durationsAsText struct{ hclog.Logger }

func textArgs(args []any) []any {
	var out []any
	for i, a := range args {
		var s any
		switch v := a.(type) {
		case time.Duration:
			s = v.String()
		case []time.Duration:
			ss := make([]string, len(v))
			for j, d := range v {
				ss[j] = d.String()
			}
			s = ss
		default:
			if out != nil {
				out[i] = a
			}
			continue
		}
		if out == nil {
			out = make([]any, len(args))
			copy(out, args[:i])
		}
		out[i] = s
	}
	if out == nil {
		return args // nothing to convert: no copy
	}
	return out
}

func (l durationsAsText) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, msg, textArgs(args)...)
}
func (l durationsAsText) Trace(msg string, args ...any) { l.Logger.Trace(msg, textArgs(args)...) }
func (l durationsAsText) Debug(msg string, args ...any) { l.Logger.Debug(msg, textArgs(args)...) }
func (l durationsAsText) Info(msg string, args ...any)  { l.Logger.Info(msg, textArgs(args)...) }
func (l durationsAsText) Warn(msg string, args ...any)  { l.Logger.Warn(msg, textArgs(args)...) }
func (l durationsAsText) Error(msg string, args ...any) { l.Logger.Error(msg, textArgs(args)...) }

func (l durationsAsText) With(args ...any) hclog.Logger {
	return durationsAsText{l.Logger.With(textArgs(args)...)}
}
func (l durationsAsText) Named(name string) hclog.Logger {
	return durationsAsText{l.Logger.Named(name)}
}
func (l durationsAsText) ResetNamed(name string) hclog.Logger {
	return durationsAsText{l.Logger.ResetNamed(name)}
}

// SDK sends the AWS SDK's own messages (it logs warnings, e.g. about a
// response it could not check) to log, so they follow --log-format
// instead of going to stderr as plain text.
func SDK(log hclog.Logger) smithylogging.Logger { return sdkLogger{log} }

type sdkLogger struct{ log hclog.Logger }

func (s sdkLogger) Logf(c smithylogging.Classification, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if c == smithylogging.Warn {
		s.log.Warn(msg)
		return
	}
	s.log.Debug(msg)
}
