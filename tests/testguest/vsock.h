/*
 * Flint test guest: the virtio-vsock device (vsock.c) as a stream server, for the agent
 * (agent.c). One connection is served at a time; a REQUEST that arrives while one is
 * open is held (one at most, others get RST) and accepted once the current one closes.
 * All waits for the host are open-ended (the agent serves forever) except writes, which
 * give up after `ms` without credit or tx progress.
 */
#ifndef TG_VSOCK_H
#define TG_VSOCK_H

#include "tg.h"

/* Set the device up once (prints its info line); FAIL <name>: ... and -1 on errors. */
int vsock_up(const char *name);
/* Accept REQUESTs to `port` from now on (connections get a 64 KiB receive ring). */
void vsa_listen(u32 port);
/* Poll until a connection is established (forever). */
void vsa_accept(void);
/* Up to max bytes of the current connection into buf: > 0 bytes read, 0 once the host
 * closed or reset it (after everything it sent was read). Polls while nothing is there. */
int vsa_read(void *buf, u32 max);
/* All of d on the current connection; -1 when it is gone or stuck for ms. */
int vsa_write(const void *d, u32 len, u64 ms);
/* SHUTDOWN + RST (unless the host reset it); the next vsa_accept may take a new one. */
void vsa_close(void);

#endif
