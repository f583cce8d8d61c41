// Kernel peer credentials for Unix sockets, and the pidfd calls needed to trust them.
//
// Hand-written because Node exposes no SO_PEERCRED (nor pidfd_open), and no
// maintained npm package does SO_PEERPIDFD; the few SO_PEERCRED packages are
// unmaintained or ship prebuilt binaries we cannot fetch. Keep this file tiny:
// each function is one syscall plus error handling. Linux only.
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; missing from Debian 12's headers
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434  // Linux 5.3; same number on every architecture
#endif

namespace {

// Throws an Error shaped like Node's ErrnoException: "<syscall>: <strerror>",
// with .errno, .code (e.g. "EBADF") and .syscall.
Napi::Value ThrowErrno(Napi::Env env, const char* syscall, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
  if (const char* name = strerrorname_np(err)) e.Set("code", Napi::String::New(env, name));
#endif
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

// Reads info[0] as a non-negative int32 (an fd or a pid); false after throwing.
bool IntArg(const Napi::CallbackInfo& info, const char* what, int* out) {
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must be a number").ThrowAsJavaScriptException();
    return false;
  }
  double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 2147483647.0) || d != static_cast<int>(d)) {
    Napi::RangeError::New(info.Env(), std::string(what) + " must be a non-negative integer").ThrowAsJavaScriptException();
    return false;
  }
  *out = static_cast<int>(d);
  return true;
}

Napi::Value GetPeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!IntArg(info, "fd", &fd)) return env.Undefined();
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return ThrowErrno(env, "getsockopt(SO_PEERCRED)", errno);
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

// -1 when the kernel does not know the option (< 6.5), so the caller can fall
// back to pidfd_open. Any other failure (e.g. a peer that is already gone on
// kernels that refuse reaped tasks) throws: falling back then would trust a pid
// number that may already belong to someone else.
Napi::Value GetPeerPidfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!IntArg(info, "fd", &fd)) return env.Undefined();
  int pidfd = -1;
  socklen_t len = sizeof(pidfd);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0) {
    if (errno == ENOPROTOOPT || errno == EOPNOTSUPP) return Napi::Number::New(env, -1);
    return ThrowErrno(env, "getsockopt(SO_PEERPIDFD)", errno);
  }
  return Napi::Number::New(env, pidfd);
}

Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid;
  if (!IntArg(info, "pid", &pid)) return env.Undefined();
  if (pid == 0) return ThrowErrno(env, "pidfd_open", EINVAL);  // 0 would not name a process
  long pidfd = syscall(SYS_pidfd_open, pid, 0);  // the kernel always sets O_CLOEXEC
  if (pidfd < 0) return ThrowErrno(env, "pidfd_open", errno);
  return Napi::Number::New(env, static_cast<double>(pidfd));
}

// A pidfd polls readable once the process has exited (zombies included).
Napi::Value PidfdIsAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!IntArg(info, "pidfd", &fd)) return env.Undefined();
  struct pollfd p {fd, POLLIN, 0};
  int n;
  do n = poll(&p, 1, 0); while (n < 0 && errno == EINTR);
  if (n < 0) return ThrowErrno(env, "poll", errno);
  if (p.revents & POLLNVAL) return ThrowErrno(env, "poll", EBADF);
  return Napi::Boolean::New(env, (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!IntArg(info, "fd", &fd)) return env.Undefined();
  // On Linux the fd is released even when close() reports EINTR; never retry.
  if (close(fd) != 0 && errno != EINTR) return ThrowErrno(env, "close", errno);
  return env.Undefined();
}

// Ends both directions of a connected socket without closing the fd: the owner of
// the fd (Node's HTTP/2 session, once grpc-js has taken the socket over, where
// socket.destroy() no longer reaches it) then reads EOF and closes it itself.
Napi::Value ShutdownSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!IntArg(info, "fd", &fd)) return env.Undefined();
  if (shutdown(fd, SHUT_RDWR) != 0 && errno != ENOTCONN) return ThrowErrno(env, "shutdown", errno);
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("getPeerCred", Napi::Function::New(env, GetPeerCred, "getPeerCred"));
  exports.Set("getPeerPidfd", Napi::Function::New(env, GetPeerPidfd, "getPeerPidfd"));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen, "pidfdOpen"));
  exports.Set("pidfdIsAlive", Napi::Function::New(env, PidfdIsAlive, "pidfdIsAlive"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("shutdownSocket", Napi::Function::New(env, ShutdownSocket, "shutdownSocket"));
  return exports;
}

}  // namespace

NODE_API_MODULE(peercred, Init)
