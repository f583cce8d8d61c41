/**
 * Kernel peer credentials for Unix sockets, and pidfd helpers (Linux only).
 * Every function is synchronous and takes a raw fd number; for an accepted
 * `net.Socket` that is `(socket as any)._handle.fd`. Read it inside the
 * `connection` handler, before anything else: fd numbers are reused after close.
 *
 * Failures throw an Error like Node's ErrnoException: message
 * `"<syscall>: <strerror>"`, with `errno`, `code` (e.g. `"EBADF"`) and `syscall`.
 */

/** Credentials the kernel recorded for the peer when it called connect() (or socketpair()). */
export interface PeerCred {
  /** 0 when the peer is in a PID namespace the caller cannot see. */
  pid: number;
  /** Overflow uid (65534) when the peer's uid has no mapping in the caller's user namespace. */
  uid: number;
  gid: number;
}

/**
 * getsockopt(SO_PEERCRED). The pid may belong to a process that has since
 * exited (and the number may have been reused): pair it with {@link getPeerPidfd}.
 * @throws on failure (EBADF, ENOTSOCK, …)
 * @example const { pid, uid, gid } = getPeerCred((socket as any)._handle.fd);
 */
export function getPeerCred(fd: number): PeerCred;

/**
 * getsockopt(SO_PEERPIDFD) (Linux ≥ 6.5): a new pidfd (O_CLOEXEC) for the very
 * process that connected, immune to PID reuse. The caller owns it and must
 * {@link closeFd} it.
 * @returns -1 if the kernel does not support the option (ENOPROTOOPT), so the
 *   caller can fall back to {@link pidfdOpen} right away.
 * @throws on any other failure; do not fall back then, the pid may be stale.
 */
export function getPeerPidfd(fd: number): number;

/**
 * pidfd_open(pid, 0) (Linux ≥ 5.3): a new pidfd (O_CLOEXEC) for whatever
 * process has that pid *now*. Racy as a stand-in for SO_PEERPIDFD; call it at
 * accept time to keep the window small. The caller must {@link closeFd} it.
 * @throws ESRCH if no such process, EINVAL for pid 0
 */
export function pidfdOpen(pid: number): number;

/**
 * poll()s the pidfd with a zero timeout: false once the process has exited
 * (a zombie counts as exited), true while it runs.
 * @throws EBADF for a closed fd
 */
export function pidfdIsAlive(pidfd: number): boolean;

/**
 * The pid the pidfd refers to, from the `Pid:` line of /proc/self/fdinfo/<pidfd>:
 * -1 once the process has been reaped, 0 if it is in a PID namespace we cannot see.
 * @throws ENOENT for a closed fd, EINVAL for an fd that is not a pidfd
 */
export function pidfdGetPid(pidfd: number): number;

/** close(fd). @throws EBADF if the fd is not open */
export function closeFd(fd: number): void;

/**
 * shutdown(fd, SHUT_RDWR): ends a connected socket both ways without closing the
 * fd, so whoever owns the fd (an HTTP/2 session) sees EOF and closes it. Only for
 * an fd known to still be that socket (its 'close' event has not fired).
 */
export function shutdownSocket(fd: number): void;
