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
