#ifndef SWERVE_CMICROHTTPD_SHIM_H
#define SWERVE_CMICROHTTPD_SHIM_H
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <microhttpd.h>

/* MHD_start_daemon is C-variadic and Swift cannot call it; pass every option through one
   MHD_OPTION_ARRAY instead. */
static inline struct MHD_Daemon *
swerve_mhd_start_daemon(unsigned int flags, uint16_t port, MHD_AccessHandlerCallback handler,
                        void *handler_cls, struct MHD_OptionItem *options) {
  return MHD_start_daemon(flags, port, NULL, NULL, handler, handler_cls,
                          MHD_OPTION_ARRAY, options, MHD_OPTION_END);
}

/* The port the daemon actually bound (for --port 0). */
static inline uint16_t swerve_mhd_bound_port(struct MHD_Daemon *d) {
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  return info ? info->port : 0;
}

/* The connection's socket, to set TCP_NODELAY on it. */
static inline int swerve_mhd_connection_fd(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  return info ? info->connect_fd : -1;
}
#endif
