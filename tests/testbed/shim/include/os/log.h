/* Mirrors <os/log.h> as DriverKit uses it: os_log(OS_LOG_DEFAULT, fmt, ...). The host shim
 * formats with printf semantics after dropping the {public}/{private} annotations and hands the
 * line to the test-bed's trace. */
#pragma once
#include <stdarg.h>

typedef struct dksim_os_log_s *os_log_t;
#define OS_LOG_DEFAULT ((os_log_t)0)

enum { DKSIM_LOG_DEFAULT = 0, DKSIM_LOG_ERROR = 1 };

/* `%{public}s` is not printf: the shim rewrites annotations before formatting, so the format
 * is checked by the compiler only after that rewrite (at run time). */
#define os_log(log, format, ...) ((void)(log), dksim_os_log_unchecked(DKSIM_LOG_DEFAULT, format, ##__VA_ARGS__))
#define os_log_info(log, format, ...) os_log(log, format, ##__VA_ARGS__)
#define os_log_debug(log, format, ...) os_log(log, format, ##__VA_ARGS__)
#define os_log_error(log, format, ...) ((void)(log), dksim_os_log_unchecked(DKSIM_LOG_ERROR, format, ##__VA_ARGS__))
#define os_log_fault(log, format, ...) os_log_error(log, format, ##__VA_ARGS__)

#ifdef __cplusplus
extern "C" {
#endif
void dksim_os_log_unchecked(int level, const char *format, ...);
#ifdef __cplusplus
}
#endif
