/*
 * Thin N-API layer over the syscalls Node does not expose: netlink sockets with
 * forced buffers and NETLINK_* options, socket creation inside another network
 * namespace, batched non-blocking receive, readiness polling through libuv, and
 * a reader thread that drains the event socket into a ring of our memory.
 * Everything protocol-related lives in TypeScript; this file only moves bytes.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, "ENAPI", "N-API call failed: " #call);         \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static napi_value throw_errno(napi_env env, const char *syscall, int err) {
  napi_value msg, code, error, errnoval, sysval;
  char text[160];
  snprintf(text, sizeof text, "%s: %s", syscall, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, "ESYSCALL", NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, err, &errnoval);
  napi_set_named_property(env, error, "errno", errnoval);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sysval);
  napi_set_named_property(env, error, "syscall", sysval);
  napi_throw(env, error);
  return NULL;
}

static int get_int(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

/* socketOpen(domain, type, protocol, netnsPath|null) -> fd
 * When netnsPath is given the socket is created inside that namespace: the
 * calling thread enters it, creates the socket and returns to its own
 * namespace. A socket stays bound to the namespace it was created in. */
static napi_value socket_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t domain, type, protocol;
  if (argc < 3 || !get_int(env, argv[0], &domain) || !get_int(env, argv[1], &type) ||
      !get_int(env, argv[2], &protocol)) {
    napi_throw_type_error(env, "EARG", "socketOpen(domain, type, protocol, netns?)");
    return NULL;
  }
  char nspath[512] = {0};
  if (argc >= 4) {
    napi_valuetype t;
    CHECK(napi_typeof(env, argv[3], &t));
    if (t == napi_string) {
      size_t len;
      CHECK(napi_get_value_string_utf8(env, argv[3], nspath, sizeof nspath, &len));
    }
  }
  int saved = -1, target = -1;
  if (nspath[0]) {
    saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (saved < 0) return throw_errno(env, "open(/proc/thread-self/ns/net)", errno);
    target = open(nspath, O_RDONLY | O_CLOEXEC);
    if (target < 0) {
      int e = errno;
      close(saved);
      return throw_errno(env, "open(netns)", e);
    }
    if (setns(target, CLONE_NEWNET) < 0) {
      int e = errno;
      close(saved);
      close(target);
      return throw_errno(env, "setns", e);
    }
  }
  int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  int sockerr = errno;
  if (nspath[0]) {
    /* Returning to our own namespace must not fail silently: a thread left in
     * a foreign namespace would open every later socket there. */
    if (setns(saved, CLONE_NEWNET) < 0) abort();
    close(saved);
    close(target);
  }
  if (fd < 0) return throw_errno(env, "socket", sockerr);
  napi_value out;
  CHECK(napi_create_int32(env, fd, &out));
  return out;
}

/* netlinkBind(fd, groups) -> portid assigned by the kernel */
static napi_value netlink_bind(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, groups = 0;
  if (argc < 1 || !get_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, "EARG", "netlinkBind(fd, groups)");
    return NULL;
  }
  if (argc >= 2) get_int(env, argv[1], &groups);
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = (uint32_t)groups;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return throw_errno(env, "bind", errno);
  socklen_t len = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) return throw_errno(env, "getsockname", errno);
  napi_value out;
  CHECK(napi_create_uint32(env, sa.nl_pid, &out));
  return out;
}

/* setIntOption(fd, level, name, value) */
static napi_value set_int_option(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, level, name, value;
  if (argc < 4 || !get_int(env, argv[0], &fd) || !get_int(env, argv[1], &level) ||
      !get_int(env, argv[2], &name) || !get_int(env, argv[3], &value)) {
    napi_throw_type_error(env, "EARG", "setIntOption(fd, level, name, value)");
    return NULL;
  }
  int v = value;
  if (setsockopt(fd, level, name, &v, sizeof v) < 0) return throw_errno(env, "setsockopt", errno);
  return NULL;
}

/* getIntOption(fd, level, name) -> value */
static napi_value get_int_option(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, level, name;
  if (argc < 3 || !get_int(env, argv[0], &fd) || !get_int(env, argv[1], &level) ||
      !get_int(env, argv[2], &name)) {
    napi_throw_type_error(env, "EARG", "getIntOption(fd, level, name)");
    return NULL;
  }
  int v = 0;
  socklen_t len = sizeof v;
  if (getsockopt(fd, level, name, &v, &len) < 0) return throw_errno(env, "getsockopt", errno);
  napi_value out;
  CHECK(napi_create_int32(env, v, &out));
  return out;
}

/* receiveQueueBytes(fd) -> bytes the receive queue holds now: SO_MEMINFO's
 * SK_MEMINFO_RMEM_ALLOC, what the kernel counts against SO_RCVBUF (socket
 * buffers' true size, not payload). Lets a reader tell how close the queue is
 * to overrunning without reading it. */
static napi_value receive_queue_bytes(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || !get_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, "EARG", "receiveQueueBytes(fd)");
    return NULL;
  }
  uint32_t mem[SK_MEMINFO_VARS];
  memset(mem, 0, sizeof mem);
  socklen_t len = sizeof mem;
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) < 0) return throw_errno(env, "getsockopt", errno);
  napi_value out;
  CHECK(napi_create_uint32(env, mem[SK_MEMINFO_RMEM_ALLOC], &out));
  return out;
}

/* A Unix socket address from a JS string ("@name": the abstract namespace).
 * Returns 0 and fills sa/salen, EINVAL for an empty or too long path, or -1
 * when the argument is not a string. */
static int unix_address(napi_env env, napi_value v, struct sockaddr_un *sa, socklen_t *salen) {
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1] = {0};
  size_t plen = 0;
  if (napi_get_value_string_utf8(env, v, path, sizeof path, &plen) != napi_ok) return -1;
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (plen == 0 || plen >= sizeof sa->sun_path) return EINVAL;
  memcpy(sa->sun_path, path, plen);
  if (path[0] == '@') sa->sun_path[0] = 0;
  *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
  return 0;
}

/* unixDgramSend(path, buffer) -> 0 or errno. One datagram to a Unix datagram
 * socket, e.g. systemd's NOTIFY_SOCKET ("@name" is the abstract namespace).
 * Node has no Unix datagram sockets. Blocks while the receiver's queue is
 * full: for rare messages only (sd_notify). */
static napi_value unix_dgram_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data = NULL;
  size_t len = 0;
  bool isbuf = false;
  struct sockaddr_un sa;
  socklen_t salen = 0;
  int aerr = argc < 2 ? -1 : unix_address(env, argv[0], &sa, &salen);
  if (aerr < 0 || napi_is_buffer(env, argv[1], &isbuf) != napi_ok || !isbuf ||
      napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, "EARG", "unixDgramSend(path, buffer)");
    return NULL;
  }
  napi_value out;
  if (aerr > 0) {
    CHECK(napi_create_int32(env, aerr, &out));
    return out;
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int err = 0;
  if (fd < 0) err = errno;
  else {
    if (sendto(fd, data, len, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0) err = errno;
    close(fd);
  }
  CHECK(napi_create_int32(env, err, &out));
  return out;
}

/* unixDgramOpen() -> fd. A non-blocking Unix datagram socket of our own,
 * kept open for many unixDgramSendTo calls (the flow log's syslog output);
 * closed with close(fd). */
static napi_value unix_dgram_open(napi_env env, napi_callback_info info) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  napi_value out;
  CHECK(napi_create_int32(env, fd, &out));
  return out;
}

/* unixDgramSendTo(fd, path, buffer, offset, length) -> 0 or errno. Never
 * blocks (MSG_DONTWAIT): a receiver whose queue is full gives EAGAIN, which
 * the caller counts as a dropped message; it never holds the event loop. */
static napi_value unix_dgram_send_to(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, off, len;
  void *data = NULL;
  size_t size = 0;
  bool isbuf = false;
  struct sockaddr_un sa;
  socklen_t salen = 0;
  int aerr = argc < 5 ? -1 : unix_address(env, argv[1], &sa, &salen);
  if (aerr < 0 || !get_int(env, argv[0], &fd) || napi_is_buffer(env, argv[2], &isbuf) != napi_ok || !isbuf ||
      napi_get_buffer_info(env, argv[2], &data, &size) != napi_ok || !get_int(env, argv[3], &off) ||
      !get_int(env, argv[4], &len) || off < 0 || len < 0 || (size_t)off + (size_t)len > size) {
    napi_throw_type_error(env, "EARG", "unixDgramSendTo(fd, path, buffer, offset, length)");
    return NULL;
  }
  int err = aerr;
  if (err == 0 && sendto(fd, (char *)data + off, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
    err = errno;
  napi_value out;
  CHECK(napi_create_int32(env, err, &out));
  return out;
}

/* attachFilter(fd, program) attaches a classic BPF socket filter; program is
 * an array of struct sock_filter (8 bytes each), built in TypeScript. An empty
 * program detaches the current filter. */
static napi_value attach_filter(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  void *data = NULL;
  size_t len = 0;
  bool isbuf = false;
  if (argc < 2 || !get_int(env, argv[0], &fd) || napi_is_buffer(env, argv[1], &isbuf) != napi_ok || !isbuf ||
      napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok || len % sizeof(struct sock_filter) != 0 ||
      len / sizeof(struct sock_filter) > BPF_MAXINSNS) {
    napi_throw_type_error(env, "EARG", "attachFilter(fd, program: Buffer of sock_filter)");
    return NULL;
  }
  if (len == 0) {
    int dummy = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &dummy, sizeof dummy) < 0 && errno != ENOENT)
      return throw_errno(env, "setsockopt(SO_DETACH_FILTER)", errno);
    return NULL;
  }
  struct sock_fprog prog = {(unsigned short)(len / sizeof(struct sock_filter)), (struct sock_filter *)data};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0)
    return throw_errno(env, "setsockopt(SO_ATTACH_FILTER)", errno);
  return NULL;
}

/* netlinkSend(fd, buffer, offset, length) -> bytes sent, or -errno.
 * Many nlmsgs concatenated in one buffer go to the kernel in one sendmsg. */
static napi_value netlink_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, offset, length;
  void *data;
  size_t size;
  if (argc < 4 || !get_int(env, argv[0], &fd) ||
      napi_get_buffer_info(env, argv[1], &data, &size) != napi_ok || !get_int(env, argv[2], &offset) ||
      !get_int(env, argv[3], &length) || offset < 0 || length < 0 || (size_t)offset + (size_t)length > size) {
    napi_throw_type_error(env, "EARG", "netlinkSend(fd, buffer, offset, length)");
    return NULL;
  }
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(fd, (char *)data + offset, (size_t)length, 0, (struct sockaddr *)&sa, sizeof sa);
  } while (n < 0 && errno == EINTR);
  napi_value out;
  CHECK(napi_create_int32(env, n < 0 ? -errno : (int32_t)n, &out));
  return out;
}

/* netlinkSendAsync(fd, buffer, offset, length, callback(bytesOrNegErrno))
 * The same sendto as netlinkSend, on a libuv pool thread. The kernel handles
 * a netlink batch inside the call (ctnetlink's creates run in the sender's
 * context), so the calling thread can encode the next batch meanwhile; a
 * commit of many batches then takes about the kernel's time alone. The
 * buffer is held by a reference until the callback; the caller must not
 * write to it, nor close fd, before then. */
typedef struct {
  napi_async_work work;
  napi_ref buffer;
  napi_ref callback;
  int fd;
  char *data;
  size_t length;
  ssize_t result;
} send_job_t;

static void send_job_execute(napi_env env, void *data) {
  (void)env;
  send_job_t *j = (send_job_t *)data;
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(j->fd, j->data, j->length, 0, (struct sockaddr *)&sa, sizeof sa);
  } while (n < 0 && errno == EINTR);
  j->result = n < 0 ? -errno : n;
}

static void send_job_complete(napi_env env, napi_status status, void *data) {
  send_job_t *j = (send_job_t *)data;
  napi_value fn, recv, argv[1], result;
  if (napi_get_reference_value(env, j->callback, &fn) == napi_ok && napi_get_global(env, &recv) == napi_ok) {
    /* A cancelled job never ran: ECANCELED (125). */
    napi_create_int32(env, status == napi_ok ? (int32_t)j->result : -125, &argv[0]);
    if (napi_call_function(env, recv, fn, 1, argv, &result) == napi_pending_exception) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);
    }
  }
  napi_delete_reference(env, j->callback);
  napi_delete_reference(env, j->buffer);
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value netlink_send_async(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, offset, length;
  void *data;
  size_t size;
  napi_valuetype t;
  if (argc < 5 || !get_int(env, argv[0], &fd) ||
      napi_get_buffer_info(env, argv[1], &data, &size) != napi_ok || !get_int(env, argv[2], &offset) ||
      !get_int(env, argv[3], &length) || offset < 0 || length < 0 || (size_t)offset + (size_t)length > size ||
      napi_typeof(env, argv[4], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, "EARG", "netlinkSendAsync(fd, buffer, offset, length, callback)");
    return NULL;
  }
  send_job_t *j = calloc(1, sizeof *j);
  if (!j) return throw_errno(env, "calloc", ENOMEM);
  j->fd = fd;
  j->data = (char *)data + offset;
  j->length = (size_t)length;
  napi_value name;
  if (napi_create_string_utf8(env, "ctsyncd:netlinkSend", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_reference(env, argv[1], 1, &j->buffer) != napi_ok) {
    free(j);
    napi_throw_error(env, "ENAPI", "netlinkSendAsync: setup failed");
    return NULL;
  }
  if (napi_create_reference(env, argv[4], 1, &j->callback) != napi_ok) {
    napi_delete_reference(env, j->buffer);
    free(j);
    napi_throw_error(env, "ENAPI", "netlinkSendAsync: setup failed");
    return NULL;
  }
  int created = napi_create_async_work(env, NULL, name, send_job_execute, send_job_complete, j, &j->work) == napi_ok;
  if (!created || napi_queue_async_work(env, j->work) != napi_ok) {
    if (created) napi_delete_async_work(env, j->work);
    napi_delete_reference(env, j->buffer);
    napi_delete_reference(env, j->callback);
    free(j);
    napi_throw_error(env, "ENAPI", "netlinkSendAsync: could not queue the send");
    return NULL;
  }
  return NULL;
}

/* Reads netlink datagrams from fd back to back into data[0, size), while at
 * least min_space is left and fewer than max_dgrams were read; returns the
 * bytes used. *err: the errno that ended it (EAGAIN: read empty), else 0.
 * Datagrams from anyone but the kernel are dropped. recvBatch and the
 * reader thread both read this way. */
static size_t read_batch(int fd, int flags, uint8_t *data, size_t size, size_t min_space, int max_dgrams, int *err,
                         int *dgrams, int *trunc) {
  size_t used = 0;
  while (*dgrams < max_dgrams && size - used >= min_space) {
    struct iovec iov = {data + used, size - used};
    struct sockaddr_nl sa;
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_name = &sa;
    mh.msg_namelen = sizeof sa;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t n = recvmsg(fd, &mh, flags);
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      break;
    }
    if (mh.msg_flags & MSG_TRUNC) *trunc = 1;
    /* Only the kernel (nl_pid 0) may speak to us; anything else is dropped. */
    if (mh.msg_namelen >= sizeof(sa.nl_family) && sa.nl_family == AF_NETLINK && sa.nl_pid != 0) continue;
    used += (size_t)n;
    (*dgrams)++;
  }
  return used;
}

/* recvBatch(fd, buffer, status: Int32Array, maxDatagrams, minSpace) -> bytes
 * Drains datagrams back to back into buffer until the socket is empty, the
 * budget is spent or less than minSpace bytes remain. status[0] receives the
 * errno that ended the batch (0 when the budget or space ended it). Netlink
 * datagrams are whole, 4-byte aligned nlmsg sequences, so the result is itself
 * a valid nlmsg stream. status[1] counts datagrams, status[2] flags MSG_TRUNC. */
static napi_value recv_batch(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, max_dgrams, min_space;
  void *data, *sdata;
  size_t size, slen;
  napi_typedarray_type stype;
  napi_value sbuf;
  size_t soff;
  if (argc < 5 || !get_int(env, argv[0], &fd) || napi_get_buffer_info(env, argv[1], &data, &size) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &stype, &slen, &sdata, &sbuf, &soff) != napi_ok ||
      stype != napi_int32_array || slen < 3 || !get_int(env, argv[3], &max_dgrams) ||
      !get_int(env, argv[4], &min_space) || min_space <= 0) {
    napi_throw_type_error(env, "EARG", "recvBatch(fd, buffer, status, maxDatagrams, minSpace)");
    return NULL;
  }
  int32_t *status = (int32_t *)sdata;
  int dgrams = 0, err = 0, trunc = 0;
  size_t used = read_batch(fd, 0, (uint8_t *)data, size, (size_t)min_space, max_dgrams, &err, &dgrams, &trunc);
  status[0] = err;
  status[1] = dgrams;
  status[2] = trunc;
  napi_value out;
  CHECK(napi_create_int32(env, (int32_t)used, &out));
  return out;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || !get_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, "EARG", "close(fd)");
    return NULL;
  }
  if (close(fd) < 0) return throw_errno(env, "close", errno);
  return NULL;
}

/* --- readiness polling ------------------------------------------------- */

typedef struct {
  uv_poll_t handle;
  /* pollPause's: restarts the poll when the pause ends. */
  uv_timer_t resume;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int closing;
  int paused;
  /* Handles not yet closed by libuv (the poll and the timer); freed at 0. */
  int open_handles;
} poller_t;

static void poll_closed(uv_handle_t *h) {
  poller_t *p = (poller_t *)h->data;
  if (--p->open_handles == 0) free(p);
}

static void poll_cb(uv_poll_t *h, int status, int events) {
  poller_t *p = (poller_t *)h->data;
  if (p->closing) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, argv[1], result;
  napi_get_reference_value(env, p->callback, &fn);
  napi_get_global(env, &recv);
  napi_create_int32(env, status < 0 ? status : events, &argv[0]);
  if (napi_make_callback(env, p->context, recv, fn, 1, argv, &result) == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
  /* libuv stops a poll handle on POLLERR, which is how a netlink overrun
   * (sk_err = ENOBUFS) shows up. The callback has read the error by now
   * (recvmsg clears it), so polling resumes; otherwise the socket would go
   * deaf after its first overrun. */
  if (status < 0 && !p->closing && !p->paused) uv_poll_start(&p->handle, UV_READABLE, poll_cb);
}

static void resume_cb(uv_timer_t *t) {
  poller_t *p = (poller_t *)t->data;
  p->paused = 0;
  if (!p->closing) uv_poll_start(&p->handle, UV_READABLE, poll_cb);
}

static void poller_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  (void)hint;
  /* The poller is freed by pollClose; an unclosed poller is kept alive by
   * libuv as long as it is active, so nothing to do here. */
}

/* pollStart(fd, callback, writable) -> handle; callback(eventsOrNegativeStatus) */
static napi_value poll_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  napi_valuetype t;
  if (argc < 2 || !get_int(env, argv[0], &fd) || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, "EARG", "pollStart(fd, callback)");
    return NULL;
  }
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  poller_t *p = calloc(1, sizeof *p);
  if (!p) return throw_errno(env, "calloc", ENOMEM);
  p->env = env;
  int rc = uv_poll_init(loop, &p->handle, fd);
  if (rc < 0) {
    free(p);
    return throw_errno(env, "uv_poll_init", -rc);
  }
  p->handle.data = p;
  p->open_handles = 1;
  rc = uv_timer_init(loop, &p->resume);
  if (rc < 0) {
    uv_close((uv_handle_t *)&p->handle, poll_closed);
    return throw_errno(env, "uv_timer_init", -rc);
  }
  p->resume.data = p;
  p->open_handles = 2;
  /* The poll alone keeps the loop alive (pollRef): the pause's timer follows its state. */
  napi_value name;
  CHECK(napi_create_string_utf8(env, "ctsyncd:poll", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &p->context));
  CHECK(napi_create_reference(env, argv[1], 1, &p->callback));
  rc = uv_poll_start(&p->handle, UV_READABLE, poll_cb);
  if (rc < 0) {
    uv_close((uv_handle_t *)&p->handle, poll_closed);
    uv_close((uv_handle_t *)&p->resume, poll_closed);
    return throw_errno(env, "uv_poll_start", -rc);
  }
  napi_value ext;
  CHECK(napi_create_external(env, p, poller_finalize, NULL, &ext));
  return ext;
}

/* The handle (an external) in argv[0] of a call with at least `want` arguments; NULL when there is none. */
/* Throws the EARG TypeError naming the call's form; returns NULL for the caller to return. */
static napi_value arg_error(napi_env env, const char *usage) {
  napi_throw_type_error(env, "EARG", usage);
  return NULL;
}

/* The handle in argv[0] of a call with `want` arguments; NULL after throwing (arg_error) when missing. */
static void *get_handle(napi_env env, napi_callback_info info, napi_value *argv, size_t want, const char *usage) {
  size_t argc = want;
  void *p = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want ||
      napi_get_value_external(env, argv[0], &p) != napi_ok || !p) {
    arg_error(env, usage);
    return NULL;
  }
  return p;
}

/* (handle, bool): the handle, and the bool in *on; NULL after throwing when either is missing. */
static void *get_handle_and_bool(napi_env env, napi_callback_info info, bool *on, const char *usage) {
  napi_value argv[2];
  void *p = get_handle(env, info, argv, 2, usage);
  if (p && napi_get_value_bool(env, argv[1], on) != napi_ok) return arg_error(env, usage);
  return p;
}

/* pollClose(handle): stops polling; the fd itself is closed separately. */
static napi_value poll_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  poller_t *p = (poller_t *)get_handle(env, info, argv, 1, "pollClose(handle)");
  if (!p) return NULL;
  if (p->closing) return NULL;
  p->closing = 1;
  uv_poll_stop(&p->handle);
  uv_timer_stop(&p->resume);
  napi_delete_reference(env, p->callback);
  napi_async_destroy(env, p->context);
  uv_close((uv_handle_t *)&p->handle, poll_closed);
  uv_close((uv_handle_t *)&p->resume, poll_closed);
  return NULL;
}

/* pollPause(handle, ms): stops polling for `ms` milliseconds, then polls
 * again (a readable socket then calls back at once). What arrives meanwhile
 * waits in the socket's queue and is read in one go: fewer wake-ups at a
 * modest event rate, where each would otherwise carry one event. */
static napi_value poll_pause(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  poller_t *p = (poller_t *)get_handle(env, info, argv, 2, "pollPause(handle, ms)");
  int32_t ms = 0;
  if (!p) return NULL;
  if (!get_int(env, argv[1], &ms) || ms < 0) return arg_error(env, "pollPause(handle, ms)");
  if (p->closing || p->paused) return NULL;
  p->paused = 1;
  uv_poll_stop(&p->handle);
  uv_timer_start(&p->resume, resume_cb, (uint64_t)ms, 0);
  return NULL;
}

/* pollRef(handle, bool): whether this poller keeps the process alive. */
static napi_value poll_ref(napi_env env, napi_callback_info info) {
  bool on = true;
  poller_t *p = (poller_t *)get_handle_and_bool(env, info, &on, "pollRef(handle, on)");
  if (!p) return NULL;
  if (p->closing) return NULL;
  if (on) {
    uv_ref((uv_handle_t *)&p->handle);
    uv_ref((uv_handle_t *)&p->resume);
  } else {
    uv_unref((uv_handle_t *)&p->handle);
    uv_unref((uv_handle_t *)&p->resume);
  }
  return NULL;
}


/* --- the event socket's reader thread ----------------------------------
 * A thread of its own reads the conntrack event socket into a ring of our
 * memory as fast as the kernel delivers, so that what stalls the JavaScript
 * thread (V8 compiling a hot function, a long event-loop turn, a commit)
 * does not leave events in the kernel's queue to overflow it (an overrun,
 * repaired only by a full dump). The ring is handed to JavaScript as one
 * Buffer: a sequence of segments, each a 16-byte header {bytes, errno,
 * datagrams, truncated} and what one batch of reads returned (whole
 * netlink datagrams back to back, padded to 16), exactly what recvBatch
 * returns for a batch. A header with bytes == RING_WRAP says the rest of
 * the ring is unused and the next segment starts at offset 0. Positions
 * are byte counts that only grow (offset = position % size): the thread
 * advances `tail` after writing a segment, JavaScript advances `head` after
 * handling segments. When the ring is full the thread waits for room and
 * the kernel's queue holds what arrives meanwhile, as without the thread.
 * The only call from the thread into Node is uv_async_send. */

#define RING_HDR 16
#define RING_WRAP 0xffffffffu

typedef struct {
  int fd;
  /* eventfds: stop (close asks the thread to end), space (JavaScript freed room). */
  int stop_fd;
  int space_fd;
  uint8_t *ring;
  size_t size;
  size_t min_space;
  int budget;
  int coalesce_ms;
  _Atomic uint64_t head;
  _Atomic uint64_t tail;
  _Atomic int waiting_space;
  /* Times the thread found the ring full, and the most bytes it held. */
  _Atomic uint64_t full_waits;
  _Atomic uint64_t max_held;
  uv_async_t async;
  napi_env env;
  napi_ref callback;
  napi_ref ring_ref;
  napi_async_context context;
  pthread_t thread;
  int closing;
} reader_t;

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* Waits until fd is readable or stop is signalled; 0 on stop. timeout_ms < 0: no timeout. */
static int wait_readable(reader_t *r, int fd, int timeout_ms) {
  for (;;) {
    struct pollfd w[2] = {{fd, POLLIN, 0}, {r->stop_fd, POLLIN, 0}};
    int n = poll(w, 2, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (w[1].revents) return 0;
    return 1;
  }
}

static void *reader_main(void *arg) {
  reader_t *r = (reader_t *)arg;
  prctl(PR_SET_NAME, "ctsyncd-events", 0, 0, 0);
  int idle = 1;
  int last_empty = 0;
  for (;;) {
    uint64_t tail = atomic_load(&r->tail);
    uint64_t head = atomic_load(&r->head);
    size_t off = (size_t)(tail % r->size);
    size_t held = (size_t)(tail - head);
    size_t free_total = r->size - held;
    size_t to_end = r->size - off;
    size_t need = RING_HDR + r->min_space;
    if (held > atomic_load(&r->max_held)) atomic_store(&r->max_held, held);
    if (to_end < need && free_total >= to_end + need) {
      /* Not enough room before the end: the rest is skipped, the next segment starts at 0. */
      put_u32(r->ring + off, RING_WRAP);
      atomic_store(&r->tail, tail + to_end);
      continue;
    }
    if (to_end < need || free_total < need) {
      /* Full: wait for JavaScript to free room (set the flag, then look again, so no wake-up is lost). */
      atomic_fetch_add(&r->full_waits, 1);
      atomic_store(&r->waiting_space, 1);
      uint64_t h2 = atomic_load(&r->head);
      if (h2 == head) {
        if (!wait_readable(r, r->space_fd, -1)) break;
        uint64_t v;
        if (read(r->space_fd, &v, sizeof v) < 0 && errno != EAGAIN) break;
      }
      atomic_store(&r->waiting_space, 0);
      continue;
    }
    if (idle) {
      if (!wait_readable(r, r->fd, -1)) break;
      idle = 0;
    }
    uint8_t *data = r->ring + off + RING_HDR;
    size_t cap = (to_end < free_total ? to_end : free_total) - RING_HDR;
    int dgrams = 0, err = 0, trunc = 0;
    size_t used = read_batch(r->fd, MSG_DONTWAIT, data, cap, r->min_space, r->budget, &err, &dgrams, &trunc);
    if (used == 0 && err == EAGAIN && last_empty) {
      /* Woken for nothing new: "read empty" was said already. */
      idle = 1;
      continue;
    }
    uint8_t *h = r->ring + off;
    put_u32(h, (uint32_t)used);
    put_u32(h + 4, (uint32_t)err);
    put_u32(h + 8, (uint32_t)dgrams);
    put_u32(h + 12, (uint32_t)trunc);
    atomic_store(&r->tail, tail + RING_HDR + align16(used));
    uv_async_send(&r->async);
    last_empty = err == EAGAIN;
    /* ENOBUFS (an overrun) is said once and reading goes on; any other error waits for readiness again. */
    if (err != 0 && err != ENOBUFS) {
      idle = 1;
      /* Emptied: what comes next is read after a pause, several events to a wake-up. */
      if (err == EAGAIN && r->coalesce_ms > 0) {
        struct pollfd s1 = {r->stop_fd, POLLIN, 0};
        int n;
        do n = poll(&s1, 1, r->coalesce_ms);
        while (n < 0 && errno == EINTR);
        if (n > 0) break;
      }
    }
  }
  return NULL;
}

static void reader_async_cb(uv_async_t *a) {
  reader_t *r = (reader_t *)a->data;
  if (r->closing) return;
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, result;
  napi_get_reference_value(env, r->callback, &fn);
  napi_get_global(env, &recv);
  if (napi_make_callback(env, r->context, recv, fn, 0, NULL, &result) == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

static void ring_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static void reader_closed(uv_handle_t *h) { free(h->data); }

/* readerStart(fd, ringBytes, minSpace, maxDatagrams, coalesceMs, callback) -> { handle, ring }
 * Starts the reader thread on fd; callback() runs on the event loop after
 * the thread has written segments (several writes may share one call). */
static napi_value reader_start(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, size, min_space, budget, coalesce;
  napi_valuetype t;
  if (argc < 6 || !get_int(env, argv[0], &fd) || !get_int(env, argv[1], &size) || !get_int(env, argv[2], &min_space) ||
      !get_int(env, argv[3], &budget) || !get_int(env, argv[4], &coalesce) || napi_typeof(env, argv[5], &t) != napi_ok ||
      t != napi_function || min_space <= 0 || budget <= 0 || coalesce < 0 || size < 2 * (RING_HDR + min_space) ||
      size % RING_HDR != 0) {
    napi_throw_type_error(env, "EARG", "readerStart(fd, ringBytes, minSpace, maxDatagrams, coalesceMs, callback)");
    return NULL;
  }
  reader_t *r = calloc(1, sizeof *r);
  if (!r) return throw_errno(env, "calloc", ENOMEM);
  uint8_t *ring = malloc((size_t)size);
  if (!ring) {
    free(r);
    return throw_errno(env, "malloc", ENOMEM);
  }
  r->fd = fd;
  r->ring = ring;
  r->size = (size_t)size;
  r->min_space = (size_t)min_space;
  r->budget = budget;
  r->coalesce_ms = coalesce;
  r->env = env;
  r->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  r->space_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->stop_fd < 0 || r->space_fd < 0) {
    int e = errno;
    if (r->stop_fd >= 0) close(r->stop_fd);
    if (r->space_fd >= 0) close(r->space_fd);
    free(ring);
    free(r);
    return throw_errno(env, "eventfd", e);
  }
  napi_value ringbuf;
  if (napi_create_external_buffer(env, (size_t)size, ring, ring_finalize, NULL, &ringbuf) != napi_ok) {
    close(r->stop_fd);
    close(r->space_fd);
    free(ring);
    free(r);
    napi_throw_error(env, "ENAPI", "readerStart: the ring could not be handed over");
    return NULL;
  }
  /* From here the ring is the Buffer's to free; the reader keeps the Buffer alive until it is closed. */
  uv_loop_t *loop;
  napi_value name;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || uv_async_init(loop, &r->async, reader_async_cb) != 0) {
    close(r->stop_fd);
    close(r->space_fd);
    free(r);
    napi_throw_error(env, "ENAPI", "readerStart: uv_async_init failed");
    return NULL;
  }
  r->async.data = r;
  if (napi_create_reference(env, ringbuf, 1, &r->ring_ref) != napi_ok ||
      napi_create_reference(env, argv[5], 1, &r->callback) != napi_ok ||
      napi_create_string_utf8(env, "ctsyncd:events", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &r->context) != napi_ok) {
    r->closing = 1;
    if (r->ring_ref) napi_delete_reference(env, r->ring_ref);
    if (r->callback) napi_delete_reference(env, r->callback);
    close(r->stop_fd);
    close(r->space_fd);
    uv_close((uv_handle_t *)&r->async, reader_closed);
    napi_throw_error(env, "ENAPI", "readerStart: setup failed");
    return NULL;
  }
  int rc = pthread_create(&r->thread, NULL, reader_main, r);
  if (rc != 0) {
    r->closing = 1;
    napi_delete_reference(env, r->ring_ref);
    napi_delete_reference(env, r->callback);
    napi_async_destroy(env, r->context);
    close(r->stop_fd);
    close(r->space_fd);
    uv_close((uv_handle_t *)&r->async, reader_closed);
    return throw_errno(env, "pthread_create", rc);
  }
  napi_value out, ext;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_external(env, r, NULL, NULL, &ext));
  CHECK(napi_set_named_property(env, out, "handle", ext));
  CHECK(napi_set_named_property(env, out, "ring", ringbuf));
  return out;
}

/* readerTail(handle) -> position up to which segments are written */
static napi_value reader_tail(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  reader_t *r = (reader_t *)get_handle(env, info, argv, 1, "readerTail(handle)");
  if (!r) return NULL;
  CHECK(napi_create_double(env, (double)atomic_load(&r->tail), &out));
  return out;
}

/* readerRelease(handle, head): segments before head are handled; their room is the thread's again. */
static napi_value reader_release(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  reader_t *r = (reader_t *)get_handle(env, info, argv, 2, "readerRelease(handle, head)");
  double head;
  if (!r) return NULL;
  if (napi_get_value_double(env, argv[1], &head) != napi_ok || head < 0 || (uint64_t)head > atomic_load(&r->tail) ||
      (uint64_t)head < atomic_load(&r->head))
    return arg_error(env, "readerRelease(handle, head)");
  atomic_store(&r->head, (uint64_t)head);
  if (atomic_load(&r->waiting_space)) {
    uint64_t one = 1;
    if (write(r->space_fd, &one, sizeof one) < 0 && errno != EAGAIN) return throw_errno(env, "write(eventfd)", errno);
  }
  return NULL;
}

/* readerStats(handle) -> [maxHeldBytes, fullWaits] */
static napi_value reader_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1], out, v;
  reader_t *r = (reader_t *)get_handle(env, info, argv, 1, "readerStats(handle)");
  if (!r) return NULL;
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_double(env, (double)atomic_load(&r->max_held), &v));
  CHECK(napi_set_element(env, out, 0, v));
  CHECK(napi_create_double(env, (double)atomic_load(&r->full_waits), &v));
  CHECK(napi_set_element(env, out, 1, v));
  return out;
}

/* readerRef(handle, on): whether the reader keeps the process alive. */
static napi_value reader_ref(napi_env env, napi_callback_info info) {
  bool on = true;
  reader_t *r = (reader_t *)get_handle_and_bool(env, info, &on, "readerRef(handle, on)");
  if (!r) return NULL;
  if (r->closing) return NULL;
  if (on) uv_ref((uv_handle_t *)&r->async);
  else uv_unref((uv_handle_t *)&r->async);
  return NULL;
}

/* readerClose(handle): ends the thread (joined before this returns); the fd is closed separately, after. */
static napi_value reader_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  reader_t *r = (reader_t *)get_handle(env, info, argv, 1, "readerClose(handle)");
  if (!r) return NULL;
  if (r->closing) return NULL;
  r->closing = 1;
  uint64_t one = 1;
  while (write(r->stop_fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
  pthread_join(r->thread, NULL);
  close(r->stop_fd);
  close(r->space_fd);
  napi_delete_reference(env, r->callback);
  napi_delete_reference(env, r->ring_ref);
  napi_async_destroy(env, r->context);
  uv_close((uv_handle_t *)&r->async, reader_closed);
  return NULL;
}

/* setScheduler(tid, policy, priority): sched_setscheduler(2) on one thread
 * (0: the calling one). Linux applies a policy per thread, so the caller
 * walks /proc/self/task to set a whole process. Throws with errno. */
static napi_value set_scheduler(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t tid, policy, priority;
  if (argc < 3 || !get_int(env, argv[0], &tid) || !get_int(env, argv[1], &policy) ||
      !get_int(env, argv[2], &priority)) {
    napi_throw_type_error(env, "EARG", "setScheduler(tid, policy, priority)");
    return NULL;
  }
  struct sched_param param;
  memset(&param, 0, sizeof param);
  param.sched_priority = priority;
  if (sched_setscheduler(tid, policy, &param) < 0) return throw_errno(env, "sched_setscheduler", errno);
  return NULL;
}

/* threadId(): the calling thread's kernel id (gettid(2)), so another
 * thread can change its scheduling (setScheduler). */
static napi_value thread_id(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_int32(env, (int32_t)syscall(SYS_gettid), &out));
  return out;
}

/* setThreadName(name): prctl(PR_SET_NAME) on the calling thread, so top -H,
 * ps -L and /proc/PID/task/TID/comm tell the flow log's writer from the
 * daemon's own thread (every thread of node is "node" otherwise). The
 * kernel keeps the first 15 bytes. */
static napi_value set_thread_name(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[16];
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, "EARG", "setThreadName(name)");
    return NULL;
  }
  if (prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0) < 0) return throw_errno(env, "prctl", errno);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"socketOpen", NULL, socket_open, NULL, NULL, NULL, napi_default, NULL},
      {"netlinkBind", NULL, netlink_bind, NULL, NULL, NULL, napi_default, NULL},
      {"setIntOption", NULL, set_int_option, NULL, NULL, NULL, napi_default, NULL},
      {"getIntOption", NULL, get_int_option, NULL, NULL, NULL, napi_default, NULL},
      {"netlinkSend", NULL, netlink_send, NULL, NULL, NULL, napi_default, NULL},
      {"netlinkSendAsync", NULL, netlink_send_async, NULL, NULL, NULL, napi_default, NULL},
      {"recvBatch", NULL, recv_batch, NULL, NULL, NULL, napi_default, NULL},
      {"unixDgramSend", NULL, unix_dgram_send, NULL, NULL, NULL, napi_default, NULL},
      {"unixDgramOpen", NULL, unix_dgram_open, NULL, NULL, NULL, napi_default, NULL},
      {"unixDgramSendTo", NULL, unix_dgram_send_to, NULL, NULL, NULL, napi_default, NULL},
      {"attachFilter", NULL, attach_filter, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL},
      {"pollStart", NULL, poll_start, NULL, NULL, NULL, napi_default, NULL},
      {"pollClose", NULL, poll_close, NULL, NULL, NULL, napi_default, NULL},
      {"pollRef", NULL, poll_ref, NULL, NULL, NULL, napi_default, NULL},
      {"pollPause", NULL, poll_pause, NULL, NULL, NULL, napi_default, NULL},
      {"setScheduler", NULL, set_scheduler, NULL, NULL, NULL, napi_default, NULL},
      {"threadId", NULL, thread_id, NULL, NULL, NULL, napi_default, NULL},
      {"setThreadName", NULL, set_thread_name, NULL, NULL, NULL, napi_default, NULL},
      {"receiveQueueBytes", NULL, receive_queue_bytes, NULL, NULL, NULL, napi_default, NULL},
      {"readerStart", NULL, reader_start, NULL, NULL, NULL, napi_default, NULL},
      {"readerTail", NULL, reader_tail, NULL, NULL, NULL, napi_default, NULL},
      {"readerRelease", NULL, reader_release, NULL, NULL, NULL, napi_default, NULL},
      {"readerStats", NULL, reader_stats, NULL, NULL, NULL, napi_default, NULL},
      {"readerRef", NULL, reader_ref, NULL, NULL, NULL, napi_default, NULL},
      {"readerClose", NULL, reader_close, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
