package proxywasm

import (
	"fmt"

	"github.com/sluice-proxy/sluice/sdk/internal/abi"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// Log lines go to the host's log under the plugin's name.

func log(level types.LogLevel, msg string) {
	abi.ProxyLog(uint32(level), abi.StringPtr(msg), uint32(len(msg)))
}

func LogTrace(msg string)    { log(types.LogLevelTrace, msg) }
func LogDebug(msg string)    { log(types.LogLevelDebug, msg) }
func LogInfo(msg string)     { log(types.LogLevelInfo, msg) }
func LogWarn(msg string)     { log(types.LogLevelWarn, msg) }
func LogError(msg string)    { log(types.LogLevelError, msg) }
func LogCritical(msg string) { log(types.LogLevelCritical, msg) }

func LogTracef(format string, args ...any) { log(types.LogLevelTrace, fmt.Sprintf(format, args...)) }
func LogDebugf(format string, args ...any) { log(types.LogLevelDebug, fmt.Sprintf(format, args...)) }
func LogInfof(format string, args ...any)  { log(types.LogLevelInfo, fmt.Sprintf(format, args...)) }
func LogWarnf(format string, args ...any)  { log(types.LogLevelWarn, fmt.Sprintf(format, args...)) }
func LogErrorf(format string, args ...any) { log(types.LogLevelError, fmt.Sprintf(format, args...)) }
func LogCriticalf(format string, args ...any) {
	log(types.LogLevelCritical, fmt.Sprintf(format, args...))
}

// GetLogLevel returns the host's current log level (ABI 0.2.1), so a filter
// can skip building messages nobody will see.
func GetLogLevel() (types.LogLevel, error) {
	var l uint32
	if err := statusToError(abi.ProxyGetLogLevel(&l)); err != nil {
		return 0, err
	}
	return types.LogLevel(l), nil
}

// The SDK's own messages are built without fmt: a filter that formats
// nothing itself then links none of fmt's printer (0.23 MB of Wasm code,
// and 1.5 MiB of compiled code the host keeps per module). The package
// still imports fmt for the Log*f functions above, so the package
// initialisation of what fmt imports (os, time, reflect) stays.

// decimal is strconv.FormatUint(uint64(n), 10).
func decimal(n uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// quote is fmt's %q for the names the SDK logs: printable ASCII as is,
// anything else escaped as \xNN, so a name with control bytes cannot
// forge a log line.
func quote(s string) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c >= 0x7f:
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '"'))
}
