// virtq_io: the system calls Node cannot make by itself, for the TAP and vhost-user backends.
// N-API only (ABI-stable across Node versions). Every call returns a negative errno instead of
// throwing for the expected I/O outcomes (EAGAIN, EINTR) so hot loops do not pay for exceptions;
// argument errors throw TypeError.
//   tapOpen(name, flags) -> { fd, name }      TUNSETIFF on /dev/net/tun (O_NONBLOCK, O_CLOEXEC)
//   setVnetHdrSz(fd, n) / setOffload(fd, f)   TUNSETVNETHDRSZ / TUNSETOFFLOAD
//   read(fd, u8) / write(fd, u8)              one read(2)/write(2) into/from a typed array
//                                             (works on views of SharedArrayBuffers)
//   poll(fds: Int32Array, events: Int16Array, revents: Int16Array, timeoutMs) -> ready count
//   close(fd), setNonblock(fd)
//   eventfd(initval, nonblock) -> fd; eventfdRead(fd) -> count or -errno; eventfdWrite(fd, n)
//   unixListen(path) -> fd, unixConnect(path) -> fd, accept(fd) -> fd
//   recvMsg(fd, u8, fdsOut: Int32Array) -> { bytes, fds }   recvmsg(2) with SCM_RIGHTS
//   sendMsg(fd, u8, fds: Int32Array) -> bytes               sendmsg(2) with SCM_RIGHTS
//   memfd(name, size) -> fd                                  memfd_create + ftruncate
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 16

static napi_value num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

static int args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < want) {
    napi_throw_type_error(env, "EINVAL", "too few arguments");
    return -1;
  }
  return 0;
}

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "expected a number");
    return -1;
  }
  return 0;
}

static int get_bytes(napi_env env, napi_value v, void **data, size_t *len) {
  napi_typedarray_type t;
  size_t n;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, &n, data, &ab, &off) != napi_ok || t != napi_uint8_array) {
    napi_throw_type_error(env, "EINVAL", "expected a Uint8Array");
    return -1;
  }
  *len = n;
  return 0;
}

static int get_i32s(napi_env env, napi_value v, int32_t **data, size_t *len) {
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, len, (void **)data, &ab, &off) != napi_ok || t != napi_int32_array) {
    napi_throw_type_error(env, "EINVAL", "expected an Int32Array");
    return -1;
  }
  return 0;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t cap) {
  size_t n;
  if (napi_get_value_string_utf8(env, v, buf, cap, &n) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "expected a string");
    return -1;
  }
  if (n >= cap - 1) {
    napi_throw_type_error(env, "EINVAL", "string too long");
    return -1;
  }
  return 0;
}

static napi_value tap_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[IFNAMSIZ + 1];
  int32_t flags;
  if (args(env, info, 2, argv) || get_string(env, argv[0], name, sizeof name) || get_i32(env, argv[1], &flags)) return NULL;
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return num(env, -errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = (short)flags;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return num(env, -e);
  }
  napi_value obj, s;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "fd", num(env, fd));
  napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, obj, "name", s);
  return obj;
}

static napi_value set_vnet_hdr_sz(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd, n;
  if (args(env, info, 2, argv) || get_i32(env, argv[0], &fd) || get_i32(env, argv[1], &n)) return NULL;
  int sz = n;
  return num(env, ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0 ? -errno : 0);
}

static napi_value set_offload(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd, f;
  if (args(env, info, 2, argv) || get_i32(env, argv[0], &fd) || get_i32(env, argv[1], &f)) return NULL;
  return num(env, ioctl(fd, TUNSETOFFLOAD, (unsigned long)(uint32_t)f) < 0 ? -errno : 0);
}

static napi_value do_read(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  void *p;
  size_t n;
  if (args(env, info, 2, argv) || get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], &p, &n)) return NULL;
  ssize_t r = read(fd, p, n);
  return num(env, r < 0 ? -errno : (double)r);
}

static napi_value do_write(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd, len;
  void *p;
  size_t n;
  if (args(env, info, 3, argv) || get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], &p, &n) || get_i32(env, argv[2], &len)) return NULL;
  if (len < 0 || (size_t)len > n) {
    napi_throw_range_error(env, "EINVAL", "length exceeds the buffer");
    return NULL;
  }
  ssize_t r = write(fd, p, (size_t)len);
  return num(env, r < 0 ? -errno : (double)r);
}

static napi_value do_poll(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t *fds, *ev, *rev, timeout;
  size_t nf, ne, nr;
  if (args(env, info, 4, argv) || get_i32s(env, argv[0], &fds, &nf) || get_i32s(env, argv[1], &ev, &ne) ||
      get_i32s(env, argv[2], &rev, &nr) || get_i32(env, argv[3], &timeout))
    return NULL;
  if (nf > MAX_FDS || ne < nf || nr < nf) {
    napi_throw_range_error(env, "EINVAL", "poll: at most 16 fds; events/revents as long as fds");
    return NULL;
  }
  struct pollfd p[MAX_FDS];
  for (size_t i = 0; i < nf; i++) {
    p[i].fd = fds[i];
    p[i].events = (short)ev[i];
    p[i].revents = 0;
  }
  int r = poll(p, nf, timeout);
  if (r < 0) return num(env, -errno);
  for (size_t i = 0; i < nf; i++) rev[i] = p[i].revents;
  return num(env, r);
}

static napi_value do_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (args(env, info, 1, argv) || get_i32(env, argv[0], &fd)) return NULL;
  return num(env, close(fd) < 0 ? -errno : 0);
}

static napi_value set_nonblock(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (args(env, info, 1, argv) || get_i32(env, argv[0], &fd)) return NULL;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return num(env, -errno);
  return num(env, 0);
}

static napi_value do_eventfd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t init;
  bool nb;
  if (args(env, info, 2, argv) || get_i32(env, argv[0], &init)) return NULL;
  napi_get_value_bool(env, argv[1], &nb);
  int fd = eventfd((unsigned)init, EFD_CLOEXEC | (nb ? EFD_NONBLOCK : 0));
  return num(env, fd < 0 ? -errno : fd);
}

static napi_value eventfd_rd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (args(env, info, 1, argv) || get_i32(env, argv[0], &fd)) return NULL;
  uint64_t v;
  ssize_t r = read(fd, &v, 8);
  if (r < 0) return num(env, -errno);
  if (r != 8) return num(env, -EIO);
  return num(env, (double)v);
}

static napi_value eventfd_wr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd, n;
  if (args(env, info, 2, argv) || get_i32(env, argv[0], &fd) || get_i32(env, argv[1], &n)) return NULL;
  uint64_t v = (uint64_t)(uint32_t)n;
  ssize_t r = write(fd, &v, 8);
  return num(env, r < 0 ? -errno : 0);
}

static int fill_sun(napi_env env, napi_value v, struct sockaddr_un *sa) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  return get_string(env, v, sa->sun_path, sizeof sa->sun_path);
}

static napi_value unix_listen(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct sockaddr_un sa;
  if (args(env, info, 1, argv) || fill_sun(env, argv[0], &sa)) return NULL;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return num(env, -errno);
  // No unlink before bind: a path that exists fails with EADDRINUSE. The caller decides whether
  // an existing path is a stale socket it may remove (claimSocketPath in src/vhost-user/server.ts),
  // as QEMU and DPDK do; unlinking here took over live sockets and deleted regular files.
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4) < 0) {
    int e = errno;
    close(fd);
    return num(env, -e);
  }
  return num(env, fd);
}

static napi_value unix_connect(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct sockaddr_un sa;
  if (args(env, info, 1, argv) || fill_sun(env, argv[0], &sa)) return NULL;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return num(env, -errno);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return num(env, -e);
  }
  return num(env, fd);
}

static napi_value do_accept(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (args(env, info, 1, argv) || get_i32(env, argv[0], &fd)) return NULL;
  int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
  return num(env, c < 0 ? -errno : c);
}

static napi_value recv_msg(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  void *p;
  size_t n;
  int32_t *out;
  size_t nout;
  if (args(env, info, 3, argv) || get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], &p, &n) || get_i32s(env, argv[2], &out, &nout)) return NULL;
  char cbuf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
  struct iovec iov = {p, n};
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof cbuf;
  ssize_t r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
  if (r < 0) return num(env, -errno);
  int nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int *fds = (int *)CMSG_DATA(c);
    for (int i = 0; i < k; i++) {
      // More fds than the caller has room for: close the extras rather than leak them.
      if ((size_t)nfds < nout) out[nfds++] = fds[i];
      else close(fds[i]);
    }
  }
  napi_value obj;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "bytes", num(env, (double)r));
  napi_set_named_property(env, obj, "fds", num(env, nfds));
  napi_set_named_property(env, obj, "truncated", num(env, (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ? 1 : 0));
  return obj;
}

static napi_value send_msg(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd, len;
  void *p;
  size_t n;
  int32_t *fds;
  size_t nfds;
  if (args(env, info, 4, argv) || get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], &p, &n) || get_i32(env, argv[2], &len) ||
      get_i32s(env, argv[3], &fds, &nfds))
    return NULL;
  if (len < 0 || (size_t)len > n || nfds > MAX_FDS) {
    napi_throw_range_error(env, "EINVAL", "sendMsg: bad length or more than 16 fds");
    return NULL;
  }
  char cbuf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
  struct iovec iov = {p, (size_t)len};
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (nfds > 0) {
    mh.msg_control = cbuf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t r = sendmsg(fd, &mh, MSG_NOSIGNAL);
  return num(env, r < 0 ? -errno : (double)r);
}

static napi_value do_memfd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[64];
  double size;
  if (args(env, info, 2, argv) || get_string(env, argv[0], name, sizeof name)) return NULL;
  napi_get_value_double(env, argv[1], &size);
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return num(env, -errno);
  if (ftruncate(fd, (off_t)size) < 0) {
    int e = errno;
    close(fd);
    return num(env, -e);
  }
  return num(env, fd);
}

#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      FN("tapOpen", tap_open),       FN("setVnetHdrSz", set_vnet_hdr_sz), FN("setOffload", set_offload),
      FN("read", do_read),           FN("write", do_write),               FN("poll", do_poll),
      FN("close", do_close),         FN("setNonblock", set_nonblock),     FN("eventfd", do_eventfd),
      FN("eventfdRead", eventfd_rd), FN("eventfdWrite", eventfd_wr),      FN("unixListen", unix_listen),
      FN("unixConnect", unix_connect), FN("accept", do_accept),           FN("recvMsg", recv_msg),
      FN("sendMsg", send_msg),       FN("memfd", do_memfd),
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value c;
  napi_create_object(env, &c);
  napi_set_named_property(env, c, "IFF_TAP", num(env, IFF_TAP));
  napi_set_named_property(env, c, "IFF_NO_PI", num(env, IFF_NO_PI));
  napi_set_named_property(env, c, "IFF_VNET_HDR", num(env, IFF_VNET_HDR));
  napi_set_named_property(env, c, "TUN_F_CSUM", num(env, TUN_F_CSUM));
  napi_set_named_property(env, c, "TUN_F_TSO4", num(env, TUN_F_TSO4));
  napi_set_named_property(env, c, "TUN_F_TSO6", num(env, TUN_F_TSO6));
  napi_set_named_property(env, c, "TUN_F_TSO_ECN", num(env, TUN_F_TSO_ECN));
  napi_set_named_property(env, c, "TUN_F_UFO", num(env, TUN_F_UFO));
  napi_set_named_property(env, c, "POLLIN", num(env, POLLIN));
  napi_set_named_property(env, c, "POLLOUT", num(env, POLLOUT));
  napi_set_named_property(env, c, "POLLERR", num(env, POLLERR));
  napi_set_named_property(env, c, "POLLHUP", num(env, POLLHUP));
  napi_set_named_property(env, c, "EAGAIN", num(env, EAGAIN));
  napi_set_named_property(env, c, "EINTR", num(env, EINTR));
  napi_set_named_property(env, exports, "constants", c);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
