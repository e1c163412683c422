/*
 * Petrel benchmark load generator.
 *
 * A single-threaded epoll client speaking MQTT 3.1.1 over non-blocking TCP
 * sockets. Packets are pre-encoded (one PUBLISH template per publisher, only
 * packet id / sequence / timestamp patched per message), the receive side is
 * an incremental decoder that parses whole packets out of a per-connection
 * buffer and counts and checks them without copying.
 *
 * Modes
 *   throughput  N publishers -> M subscribers, QoS 0/1/2, as fast as the
 *               broker accepts (or paced with --rate), warm-up then a measured
 *               window, then a bounded drain, then a loss/duplicate check.
 *   idle        open N connections (CONNECT/CONNACK), report the connect rate
 *               and the broker's RSS growth per connection.
 *
 * Every payload starts with: u32 run id, u32 publisher id, u64 sequence number,
 * u64 send timestamp (CLOCK_MONOTONIC ns), little-endian. The rest is filler.
 *
 * The result is one JSON object on stdout. Progress and errors go to stderr.
 *
 * Build: gcc -O2 -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ utils */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "loadgen: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) die("out of memory (%zu bytes)", n);
  return p;
}

static void *xcalloc(size_t n, size_t s) {
  void *p = calloc(n ? n : 1, s ? s : 1);
  if (!p) die("out of memory");
  return p;
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n);
  if (!p) die("out of memory (%zu bytes)", n);
  return p;
}

static inline void wr16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline void wr32le(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void wr64le(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t rd32le(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t rd64le(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* ---------------------------------------------------------------- bitmap */

typedef struct {
  uint64_t *w;
  uint64_t nwords;
} bitmap_t;

static void bm_grow(bitmap_t *b, uint64_t need_words) {
  uint64_t n = b->nwords ? b->nwords : 1024;
  while (n < need_words) n *= 2;
  b->w = xrealloc(b->w, n * 8);
  memset(b->w + b->nwords, 0, (n - b->nwords) * 8);
  b->nwords = n;
}

/* returns previous value of bit i */
static inline int bm_test_set(bitmap_t *b, uint64_t i) {
  uint64_t wi = i >> 6;
  if (wi >= b->nwords) bm_grow(b, wi + 1);
  uint64_t m = 1ull << (i & 63);
  int was = (b->w[wi] & m) != 0;
  b->w[wi] |= m;
  return was;
}

static inline int bm_test(const bitmap_t *b, uint64_t i) {
  uint64_t wi = i >> 6;
  if (wi >= b->nwords) return 0;
  return (b->w[wi] >> (i & 63)) & 1;
}

/* count bits set in a but not in b, over [0, nbits) */
static uint64_t bm_count_missing(const bitmap_t *a, const bitmap_t *b, uint64_t nbits) {
  uint64_t words = (nbits + 63) >> 6, miss = 0;
  for (uint64_t i = 0; i < words; i++) {
    uint64_t aw = i < a->nwords ? a->w[i] : 0;
    uint64_t bw = i < b->nwords ? b->w[i] : 0;
    if (i == words - 1 && (nbits & 63)) aw &= (1ull << (nbits & 63)) - 1;
    miss += (uint64_t)__builtin_popcountll(aw & ~bw);
  }
  return miss;
}

/* ------------------------------------------------------------- histogram */
/* Log-linear histogram (HDR style), 7 sub-bucket bits: <= 0.8% error. */

#define HSUB 7
#define HBUCKETS ((64 - HSUB + 1) << HSUB)

typedef struct {
  uint64_t b[HBUCKETS];
  uint64_t count, max, min;
  long double sum;
} hist_t;

static inline unsigned h_index(uint64_t v) {
  if (v < (1u << HSUB)) return (unsigned)v;
  unsigned e = 63 - (unsigned)__builtin_clzll(v);
  return ((e - HSUB + 1) << HSUB) | (unsigned)((v >> (e - HSUB)) & ((1u << HSUB) - 1));
}

static inline uint64_t h_value(unsigned idx) { /* midpoint of bucket */
  if (idx < (1u << HSUB)) return idx;
  unsigned e = (idx >> HSUB) + HSUB - 1;
  uint64_t mant = idx & ((1u << HSUB) - 1);
  uint64_t lo = ((1ull << HSUB) | mant) << (e - HSUB);
  uint64_t width = 1ull << (e - HSUB);
  return lo + width / 2;
}

static inline void h_record(hist_t *h, uint64_t v) {
  h->b[h_index(v)]++;
  h->count++;
  h->sum += v;
  if (v > h->max) h->max = v;
  if (h->count == 1 || v < h->min) h->min = v;
}

static uint64_t h_pct(const hist_t *h, double p) {
  if (!h->count) return 0;
  uint64_t target = (uint64_t)((p / 100.0) * (double)h->count);
  if (target >= h->count) target = h->count - 1;
  uint64_t acc = 0;
  for (unsigned i = 0; i < HBUCKETS; i++) {
    acc += h->b[i];
    if (acc > target) {
      uint64_t v = h_value(i);
      return v > h->max ? h->max : v;
    }
  }
  return h->max;
}

/* ---------------------------------------------------------------- config */

enum { MODE_THROUGHPUT, MODE_IDLE };

static struct {
  const char *host;
  int port;
  int mode;
  int pubs, subs;
  const char *pub_topic;
  const char *sub_filter;
  int qos, sub_qos;
  int payload;
  int window;
  int refill; /* min free window slots before a publisher tops up (QoS 1/2) */
  int quickack;    /* re-arm TCP_QUICKACK after every recv (no delayed ACKs from the loadgen) */
  int qos0_window; /* QoS 0: max messages per publisher in transit (sent, not yet seen by all subscribers) */
  double rate; /* total msg/s over all publishers; 0 = unlimited */
  double warmup, duration, drain, setup_timeout;
  int clean_pub, clean_sub;
  const char *prefix;
  int broker_pid;
  int conns, concurrency;
  double settle;
  double idle_wait; /* idle mode: seconds more, after settle, before the idle RSS reading */
  int keepalive;
  int sndbuf;
  int sub_port;        /* subscribers connect here (0: --port); a cluster's other node */
  int cpu_pids[8];     /* more processes whose CPU time is measured over the window (--cpu-pids a,b) */
  int n_cpu_pids;
  int sub_alt;         /* 1: every other subscriber on --sub-port, the rest on --port */
  int verbose;
  uint32_t run_id;
  uint64_t max_msgs; /* per publisher cap (0 = none) */
} cfg;

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --port P [--host 127.0.0.1] [--mode throughput|idle]\n"
          "  throughput: --pubs N --subs M --pub-topic FMT --sub-filter FMT (%%d = index)\n"
          "              --qos Q [--sub-qos Q] [--payload 64] [--window 64] [--rate MSG_PER_S]\n"
          "              [--refill WINDOW/4] [--qos0-window auto] [--warmup 1] [--duration 5] [--drain 5] [--clean-sub 1] [--max-msgs N]\n"
          "  idle:       --conns N [--concurrency 100] [--settle 2] [--idle-wait 0]\n"
          "  common:     [--broker-pid PID] [--prefix lg] [--keepalive 60] [--sndbuf BYTES]\n"
          "              [--sub-port P [--sub-alt 1]] [--cpu-pids PID,PID...]\n"
          "              [--setup-timeout 60] [--verbose]\n");
  exit(2);
}

static void parse_args(int argc, char **argv) {
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.mode = MODE_THROUGHPUT;
  cfg.pubs = 1;
  cfg.subs = 1;
  cfg.pub_topic = "bench/%d";
  cfg.sub_filter = "bench/%d";
  cfg.qos = 0;
  cfg.sub_qos = -1;
  cfg.payload = 64;
  cfg.window = 64;
  cfg.refill = -1;
  cfg.qos0_window = -1; /* auto: ~10,000 deliveries in transit in total, 64..1000 per publisher */
  cfg.rate = 0;
  cfg.warmup = 1;
  cfg.duration = 5;
  cfg.drain = 5;
  cfg.setup_timeout = 60;
  cfg.clean_pub = 1;
  cfg.clean_sub = 1;
  cfg.prefix = "lg";
  cfg.broker_pid = 0;
  cfg.conns = 1000;
  cfg.concurrency = 100;
  cfg.settle = 2;
  cfg.idle_wait = 0;
  cfg.keepalive = 60;
  cfg.sndbuf = 0;
  cfg.sub_port = 0;
  cfg.n_cpu_pids = 0;
  cfg.sub_alt = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && (i++, 1))
    if (OPT("--host")) cfg.host = v;
    else if (OPT("--port")) cfg.port = atoi(v);
    else if (OPT("--mode")) {
      if (!strcmp(v, "throughput")) cfg.mode = MODE_THROUGHPUT;
      else if (!strcmp(v, "idle")) cfg.mode = MODE_IDLE;
      else usage();
    } else if (OPT("--pubs")) cfg.pubs = atoi(v);
    else if (OPT("--subs")) cfg.subs = atoi(v);
    else if (OPT("--pub-topic")) cfg.pub_topic = v;
    else if (OPT("--sub-filter")) cfg.sub_filter = v;
    else if (OPT("--qos")) cfg.qos = atoi(v);
    else if (OPT("--sub-qos")) cfg.sub_qos = atoi(v);
    else if (OPT("--payload")) cfg.payload = atoi(v);
    else if (OPT("--window")) cfg.window = atoi(v);
    else if (OPT("--refill")) cfg.refill = atoi(v);
    else if (OPT("--qos0-window")) cfg.qos0_window = atoi(v);
    else if (OPT("--quickack")) cfg.quickack = atoi(v);
    else if (OPT("--rate")) cfg.rate = atof(v);
    else if (OPT("--warmup")) cfg.warmup = atof(v);
    else if (OPT("--duration")) cfg.duration = atof(v);
    else if (OPT("--drain")) cfg.drain = atof(v);
    else if (OPT("--setup-timeout")) cfg.setup_timeout = atof(v);
    else if (OPT("--clean-sub")) cfg.clean_sub = atoi(v);
    else if (OPT("--clean-pub")) cfg.clean_pub = atoi(v);
    else if (OPT("--prefix")) cfg.prefix = v;
    else if (OPT("--broker-pid")) cfg.broker_pid = atoi(v);
    else if (OPT("--conns")) cfg.conns = atoi(v);
    else if (OPT("--concurrency")) cfg.concurrency = atoi(v);
    else if (OPT("--settle")) cfg.settle = atof(v);
    else if (OPT("--idle-wait")) cfg.idle_wait = atof(v);
    else if (OPT("--keepalive")) cfg.keepalive = atoi(v);
    else if (OPT("--sndbuf")) cfg.sndbuf = atoi(v);
    else if (OPT("--sub-port")) cfg.sub_port = atoi(v);
    else if (OPT("--sub-alt")) cfg.sub_alt = atoi(v);
    else if (OPT("--cpu-pids")) {
      const char *q = v;
      while (q && *q && cfg.n_cpu_pids < 8) {
        cfg.cpu_pids[cfg.n_cpu_pids++] = atoi(q);
        q = strchr(q, ',');
        if (q) q++;
      }
    }
    else if (OPT("--max-msgs")) cfg.max_msgs = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--verbose")) cfg.verbose = 1;
    else {
      fprintf(stderr, "loadgen: unknown or incomplete option %s\n", a);
      usage();
    }
#undef OPT
  }
  if (cfg.port <= 0) usage();
  if (cfg.sub_qos < 0) cfg.sub_qos = cfg.qos;
  if (cfg.qos < 0 || cfg.qos > 2 || cfg.sub_qos < 0 || cfg.sub_qos > 2) die("qos must be 0..2");
  if (cfg.payload < 24) cfg.payload = 24;
  if (cfg.window < 1) cfg.window = 1;
  if (cfg.window > 30000) cfg.window = 30000;
  if (cfg.refill < 0) cfg.refill = cfg.window / 4;
  if (cfg.refill < 1) cfg.refill = 1;
  if (cfg.refill > cfg.window) cfg.refill = cfg.window;
  if (cfg.pubs < 0 || cfg.subs < 0 || cfg.pubs > 100000 || cfg.subs > 100000) die("bad --pubs/--subs");
  if (cfg.concurrency < 1) cfg.concurrency = 1;
  /* run id: distinguishes our messages from stale ones of an earlier run */
  cfg.run_id = (uint32_t)(now_ns() ^ ((uint64_t)getpid() << 20)) | 1u;
}

/* -------------------------------------------------------- MQTT encoding */

enum {
  T_CONNECT = 1, T_CONNACK = 2, T_PUBLISH = 3, T_PUBACK = 4, T_PUBREC = 5, T_PUBREL = 6,
  T_PUBCOMP = 7, T_SUBSCRIBE = 8, T_SUBACK = 9, T_PINGREQ = 12, T_PINGRESP = 13, T_DISCONNECT = 14
};

static size_t enc_varint(uint8_t *p, uint32_t v) {
  size_t n = 0;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    if (v) b |= 0x80;
    p[n++] = b;
  } while (v);
  return n;
}

static size_t build_connect(uint8_t *buf, const char *cid, int clean, int keepalive) {
  size_t cl = strlen(cid);
  uint32_t rem = 10 + 2 + (uint32_t)cl;
  size_t n = 0;
  buf[n++] = 0x10;
  n += enc_varint(buf + n, rem);
  wr16(buf + n, 4); n += 2;
  memcpy(buf + n, "MQTT", 4); n += 4;
  buf[n++] = 4; /* protocol level 3.1.1 */
  buf[n++] = clean ? 0x02 : 0x00;
  wr16(buf + n, (uint16_t)keepalive); n += 2;
  wr16(buf + n, (uint16_t)cl); n += 2;
  memcpy(buf + n, cid, cl); n += cl;
  return n;
}

static size_t build_subscribe(uint8_t *buf, uint16_t pid, const char *filter, int qos) {
  size_t fl = strlen(filter);
  uint32_t rem = 2 + 2 + (uint32_t)fl + 1;
  size_t n = 0;
  buf[n++] = 0x82;
  n += enc_varint(buf + n, rem);
  wr16(buf + n, pid); n += 2;
  wr16(buf + n, (uint16_t)fl); n += 2;
  memcpy(buf + n, filter, fl); n += fl;
  buf[n++] = (uint8_t)qos;
  return n;
}

/* PUBLISH template: fixed header, topic, [pid], payload */
typedef struct {
  uint8_t *bytes;
  size_t len;
  size_t pid_off;     /* 0 if qos 0 */
  size_t payload_off; /* start of payload */
} pub_tmpl_t;

static void build_publish_tmpl(pub_tmpl_t *t, const char *topic, int qos, int payload, uint32_t pub_id) {
  size_t tl = strlen(topic);
  uint32_t rem = 2 + (uint32_t)tl + (qos ? 2 : 0) + (uint32_t)payload;
  t->bytes = xmalloc(5 + rem);
  size_t n = 0;
  t->bytes[n++] = (uint8_t)(0x30 | (qos << 1));
  n += enc_varint(t->bytes + n, rem);
  wr16(t->bytes + n, (uint16_t)tl); n += 2;
  memcpy(t->bytes + n, topic, tl); n += tl;
  t->pid_off = 0;
  if (qos) { t->pid_off = n; wr16(t->bytes + n, 1); n += 2; }
  t->payload_off = n;
  for (int i = 0; i < payload; i++) t->bytes[n + i] = (uint8_t)('a' + i % 26);
  wr32le(t->bytes + n, cfg.run_id);
  wr32le(t->bytes + n + 4, pub_id);
  n += payload;
  t->len = n;
}

/* MQTT topic filter match (+, #) */
static int topic_match(const char *f, const char *t) {
  while (*f) {
    if (*f == '#') return 1;
    if (*f == '+') {
      while (*t && *t != '/') t++;
      f++;
    } else {
      while (*f && *f != '/') {
        if (*f != *t) return 0;
        f++; t++;
      }
    }
    if (*f == '/') {
      if (*t != '/') {
        /* "a/#" matches "a" */
        return (f[1] == '#' && f[2] == 0 && *t == 0);
      }
      f++; t++;
    } else {
      return *t == 0;
    }
  }
  return *t == 0;
}

static char *fmt_index(const char *fmt, int idx) {
  char num[16];
  snprintf(num, sizeof num, "%d", idx);
  size_t out_cap = strlen(fmt) + 64, n = 0;
  char *out = xmalloc(out_cap);
  for (const char *p = fmt; *p; p++) {
    if (p[0] == '%' && p[1] == 'd') {
      size_t l = strlen(num);
      memcpy(out + n, num, l); n += l;
      p++;
    } else {
      out[n++] = *p;
    }
  }
  out[n] = 0;
  return out;
}

/* ------------------------------------------------------------ connection */

enum { ROLE_PUB, ROLE_SUB, ROLE_IDLE };
enum { ST_NEW, ST_CONNECTING, ST_WAIT_CONNACK, ST_WAIT_SUBACK, ST_READY, ST_CLOSED };

typedef struct pair {
  bitmap_t recv;
  uint64_t unique;
  uint64_t next; /* max seq seen + 1 */
} pair_t;

typedef struct conn {
  int fd;
  int role, idx, state;
  uint32_t ev; /* current epoll mask */
  uint8_t *rbuf;
  size_t rlen, rcap;
  uint8_t *wbuf;
  size_t wlen, woff, wcap;
  uint64_t t_connect, t_connack;
  uint64_t last_write;
  int dirty; /* queued for a deferred pump/flush at the end of the event-loop iteration */
  /* publisher */
  pub_tmpl_t tmpl;
  uint64_t sent, sent_at_measure_start, sent_at_measure_end;
  uint64_t acked;
  uint32_t inflight;
  uint16_t next_pid;
  uint8_t *pid_state; /* 0 free, 1 wait PUBACK/PUBREC, 2 wait PUBCOMP */
  uint64_t *pid_seq;
  bitmap_t acked_bm;
  struct pair **mypairs; /* the (subscriber, this publisher) pairs */
  int nmypairs;
  int transit_blocked;
  uint64_t forgiven, stall_since, stall_delivered;
  /* subscriber */
  char *filter;
  pair_t **pairs; /* by publisher id, NULL if not expected */
  uint64_t received;
  uint8_t *q2_pending; /* 65536 bits: inbound QoS 2 awaiting PUBREL */
} conn_t;

static int epfd;
static conn_t *conns;
static int nconns;
static conn_t **dirty_list;
static int ndirty;

static inline void mark_dirty(conn_t *c) {
  if (!c->dirty) {
    c->dirty = 1;
    dirty_list[ndirty++] = c;
  }
}

static struct {
  uint64_t received_total, received_measure;
  uint64_t duplicates, dup_redelivered, reordered, foreign, unexpected, short_payload;
  uint64_t q2_dup_suppressed, unexpected_ack, conn_errors, connack_refused, suback_refused;
  uint64_t closed_by_peer;
  int closed[3];
  uint64_t sends[3], recvs[3]; /* syscall counts per role */          /* closed connections per role */
  int idle_ok, idle_done; /* idle mode: CONNACKs received, connections finished (ok or failed) */
  uint64_t idle_t_last;
  hist_t *connack_lat;
  hist_t lat;
  int measuring;
  int sending;
  char first_error[256];
} G;

static void note_error(const char *fmt, ...) {
  if (G.first_error[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(G.first_error, sizeof G.first_error, fmt, ap);
  va_end(ap);
}

static void set_events(conn_t *c, uint32_t ev) {
  if (c->fd < 0 || c->ev == ev) return;
  struct epoll_event e = {.events = ev, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) < 0) die("epoll_ctl mod: %s", strerror(errno));
  c->ev = ev;
}

static void conn_close(conn_t *c, int graceful) {
  if (c->fd < 0) return;
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  if (graceful) {
    uint8_t d[2] = {0xe0, 0};
    (void)!send(c->fd, d, 2, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  /* abortive close: no TIME_WAIT on the load generator side */
  struct linger lg = {1, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(c->fd);
  c->fd = -1;
  c->state = ST_CLOSED;
}

static void conn_fail(conn_t *c, const char *why) {
  if (c->state == ST_CLOSED) return;
  G.conn_errors++;
  G.closed[c->role]++;
  if (c->role == ROLE_IDLE && c->state != ST_READY) G.idle_done++;
  note_error("%s %d: %s", c->role == ROLE_PUB ? "publisher" : c->role == ROLE_SUB ? "subscriber" : "connection",
             c->idx, why);
  if (cfg.verbose) fprintf(stderr, "loadgen: %s\n", G.first_error);
  conn_close(c, 0);
}

static void wreserve(conn_t *c, size_t extra) {
  if (c->woff && c->woff == c->wlen) c->woff = c->wlen = 0;
  if (c->wlen + extra <= c->wcap) return;
  if (c->woff) {
    memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
    c->wlen -= c->woff;
    c->woff = 0;
    if (c->wlen + extra <= c->wcap) return;
  }
  size_t n = c->wcap ? c->wcap : 256;
  while (n < c->wlen + extra) n *= 2;
  c->wbuf = xrealloc(c->wbuf, n);
  c->wcap = n;
}

static inline void wput(conn_t *c, const void *p, size_t n) {
  wreserve(c, n);
  memcpy(c->wbuf + c->wlen, p, n);
  c->wlen += n;
}

static inline void wput4(conn_t *c, uint8_t type_flags, uint16_t pid) {
  uint8_t b[4] = {type_flags, 2, (uint8_t)(pid >> 8), (uint8_t)pid};
  wput(c, b, 4);
}

static int publisher_wants_out(conn_t *c);

/* returns 0 if socket would block (data pending), 1 if fully flushed, -1 closed */
static int conn_flush(conn_t *c) {
  while (c->woff < c->wlen) {
    ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
    G.sends[c->role]++;
    if (n > 0) {
      c->woff += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_events(c, EPOLLIN | EPOLLOUT);
      return 0;
    }
    conn_fail(c, n == 0 ? "send returned 0" : strerror(errno));
    return -1;
  }
  c->woff = c->wlen = 0;
  c->last_write = 0;
  set_events(c, EPOLLIN | (publisher_wants_out(c) ? EPOLLOUT : 0));
  return 1;
}

/* ----------------------------------------------------------- publishing */

static uint64_t t_send_start;
static double rate_per_pub;
static size_t qos0_batch_bytes = 64 * 1024;

static int publisher_wants_out(conn_t *c) {
  /* unpaced QoS 0 publishers keep the socket full: write whenever writable */
  return c->role == ROLE_PUB && c->state == ST_READY && G.sending && cfg.qos == 0 && cfg.rate <= 0 &&
         !c->transit_blocked;
}

/*
 * QoS 0 flow bound: a publisher may have at most --qos0-window messages in
 * transit (sent, and newer than the newest sequence number every matching
 * subscriber has seen from it: a message overtaken by a later one is lost, not
 * in transit). Without it the kernel's autotuned loopback buffers hold seconds
 * of backlog. If nothing at all arrives for 1 s while blocked, the missing
 * messages are written off (QoS 0 may lose) and the publisher goes on.
 */
static uint64_t qos0_allowance(conn_t *c, uint64_t now) {
  if (cfg.qos != 0 || cfg.qos0_window <= 0 || c->nmypairs == 0) return UINT64_MAX;
  uint64_t dmin = UINT64_MAX;
  for (int k = 0; k < c->nmypairs; k++)
    if (c->mypairs[k]->next < dmin) dmin = c->mypairs[k]->next;
  uint64_t done = dmin + c->forgiven;
  uint64_t transit = c->sent > done ? c->sent - done : 0;
  uint64_t w = (uint64_t)cfg.qos0_window;
  uint64_t allowed = transit < w ? w - transit : 0;
  if (c->transit_blocked) {
    if (allowed >= w / 4 || allowed == w) {
      c->transit_blocked = 0;
    } else if (dmin != c->stall_delivered) {
      c->stall_delivered = dmin;
      c->stall_since = now;
      return 0;
    } else if (now - c->stall_since > 1000000000ull) {
      c->forgiven += transit; /* presumed lost */
      c->transit_blocked = 0;
      return w;
    } else {
      return 0;
    }
  }
  if (allowed == 0) {
    c->transit_blocked = 1;
    c->stall_delivered = dmin;
    c->stall_since = now;
  }
  return allowed;
}

static uint64_t pub_quota(conn_t *c, uint64_t now) {
  uint64_t q = UINT64_MAX;
  if (cfg.rate > 0) {
    double target = rate_per_pub * (double)(now - t_send_start) / 1e9 + 1;
    q = target > (double)c->sent ? (uint64_t)(target - (double)c->sent) : 0;
  }
  if (cfg.qos > 0) {
    uint64_t w = (uint64_t)cfg.window > c->inflight ? (uint64_t)cfg.window - c->inflight : 0;
    /* top the window up in batches (fewer, larger writes), but never leave it idle */
    if (w < (uint64_t)cfg.refill && c->inflight > 0) w = 0;
    if (w < q) q = w;
  }
  uint64_t t0w = qos0_allowance(c, now);
  if (t0w < q) q = t0w;
  if (cfg.max_msgs) {
    uint64_t left = cfg.max_msgs > c->sent ? cfg.max_msgs - c->sent : 0;
    if (left < q) q = left;
  }
  return q;
}

/* append up to n messages to the write buffer */
static void pub_append(conn_t *c, uint64_t n, uint64_t now) {
  if (!n) return;
  size_t L = c->tmpl.len;
  wreserve(c, L * n);
  uint8_t *p = c->wbuf + c->wlen;
  const size_t po = c->tmpl.payload_off;
  for (uint64_t i = 0; i < n; i++) {
    memcpy(p, c->tmpl.bytes, L);
    uint64_t seq = c->sent++;
    if (cfg.qos) {
      uint16_t pid = c->next_pid;
      while (c->pid_state[pid] || pid == 0) pid = (uint16_t)(pid + 1);
      c->next_pid = (uint16_t)(pid + 1);
      c->pid_state[pid] = 1;
      c->pid_seq[pid] = seq;
      c->inflight++;
      wr16(p + c->tmpl.pid_off, pid);
    }
    wr64le(p + po + 8, seq);
    wr64le(p + po + 16, now);
    p += L;
  }
  c->wlen += L * n;
}

/* fill and write; for unpaced QoS 0 loop until the socket would block (bounded rounds) */
static void pub_pump(conn_t *c, uint64_t now) {
  if (c->state != ST_READY || c->fd < 0) return;
  for (int round = 0; round < 4; round++) {
    if (c->woff < c->wlen) {
      int r = conn_flush(c);
      if (r <= 0) return; /* would block: wait for EPOLLOUT */
    }
    if (!G.sending) return;
    uint64_t q = pub_quota(c, now);
    if (cfg.qos == 0 && cfg.rate <= 0) {
      uint64_t batch = qos0_batch_bytes / c->tmpl.len + 1;
      if (q > batch) q = batch;
    } else if (q > 4096) {
      q = 4096;
    }
    if (!q) {
      if (c->transit_blocked) set_events(c, EPOLLIN | (c->woff < c->wlen ? EPOLLOUT : 0));
      return;
    }
    pub_append(c, q, now);
    int r = conn_flush(c);
    if (r <= 0) return;
    if (!(cfg.qos == 0 && cfg.rate <= 0)) return;
  }
}

/* ------------------------------------------------------------ receiving */

static uint64_t t_measure_start, t_measure_end;

static void on_publish(conn_t *c, uint8_t hdr, const uint8_t *b, size_t len, uint64_t now) {
  int qos = (hdr >> 1) & 3, dup = (hdr >> 3) & 1;
  if (len < 2) { conn_fail(c, "malformed PUBLISH"); return; }
  size_t tl = rd16(b);
  size_t off = 2 + tl;
  uint16_t pid = 0;
  if (qos) {
    if (off + 2 > len) { conn_fail(c, "malformed PUBLISH"); return; }
    pid = rd16(b + off);
    off += 2;
  }
  if (off > len) { conn_fail(c, "malformed PUBLISH"); return; }
  if (c->role != ROLE_SUB) {
    G.unexpected++;
    if (qos) wput4(c, qos == 1 ? 0x40 : 0x50, pid);
    return;
  }
  int deliver = 1;
  if (qos == 2) {
    uint8_t m = (uint8_t)(1u << (pid & 7));
    if (c->q2_pending[pid >> 3] & m) { deliver = 0; G.q2_dup_suppressed++; }
    c->q2_pending[pid >> 3] |= m;
    wput4(c, 0x50, pid); /* PUBREC */
  } else if (qos == 1) {
    wput4(c, 0x40, pid); /* PUBACK */
  }
  if (!deliver) return;
  c->received++;
  G.received_total++;
  if (G.measuring) G.received_measure++;
  const uint8_t *pl = b + off;
  size_t plen = len - off;
  if (plen < 24) { G.short_payload++; return; }
  uint32_t run = rd32le(pl), pub = rd32le(pl + 4);
  uint64_t seq = rd64le(pl + 8), ts = rd64le(pl + 16);
  if (run != cfg.run_id) { G.foreign++; return; }
  if (pub >= (uint32_t)cfg.pubs || !c->pairs[pub]) { G.unexpected++; return; }
  pair_t *pr = c->pairs[pub];
  if (bm_test_set(&pr->recv, seq)) {
    if (qos == 1 && dup) G.dup_redelivered++;
    else G.duplicates++;
  } else {
    pr->unique++;
  }
  if (seq < pr->next) G.reordered++;
  else {
    pr->next = seq + 1;
    if (conns[pub].transit_blocked) mark_dirty(&conns[pub]);
  }
  if (G.measuring && now >= ts) h_record(&G.lat, now - ts);
}

static void pub_ack(conn_t *c, uint16_t pid, int type) {
  if (c->role != ROLE_PUB) { G.unexpected_ack++; return; }
  uint8_t st = c->pid_state[pid];
  if (type == T_PUBACK || type == T_PUBREC) {
    if (st != 1 || (type == T_PUBACK) != (cfg.qos == 1)) {
      G.unexpected_ack++;
      if (type == T_PUBREC && st == 2) wput4(c, 0x62, pid); /* re-send PUBREL */
      return;
    }
    c->acked++;
    bm_test_set(&c->acked_bm, c->pid_seq[pid]);
    if (type == T_PUBACK) {
      c->pid_state[pid] = 0;
      c->inflight--;
    } else {
      c->pid_state[pid] = 2;
      wput4(c, 0x62, pid); /* PUBREL */
    }
  } else { /* PUBCOMP */
    if (st != 2) { G.unexpected_ack++; return; }
    c->pid_state[pid] = 0;
    c->inflight--;
  }
}

static void start_subscribe(conn_t *c);

static void on_packet(conn_t *c, uint8_t hdr, const uint8_t *b, size_t len, uint64_t now) {
  int type = hdr >> 4;
  switch (type) {
  case T_PUBLISH:
    on_publish(c, hdr, b, len, now);
    break;
  case T_PUBACK:
  case T_PUBREC:
  case T_PUBCOMP:
    if (len < 2) { conn_fail(c, "short ack"); return; }
    pub_ack(c, rd16(b), type);
    break;
  case T_PUBREL: {
    if (len < 2) { conn_fail(c, "short PUBREL"); return; }
    uint16_t pid = rd16(b);
    if (c->q2_pending) c->q2_pending[pid >> 3] &= (uint8_t)~(1u << (pid & 7));
    wput4(c, 0x70, pid); /* PUBCOMP */
    break;
  }
  case T_CONNACK:
    if (c->state != ST_WAIT_CONNACK) { conn_fail(c, "unexpected CONNACK"); return; }
    if (len < 2 || b[1] != 0) {
      G.connack_refused++;
      conn_fail(c, "CONNACK refused");
      return;
    }
    c->t_connack = now;
    if (c->role == ROLE_SUB) {
      start_subscribe(c);
    } else {
      c->state = ST_READY;
      if (c->role == ROLE_IDLE) {
        G.idle_ok++;
        G.idle_done++;
        G.idle_t_last = now;
        h_record(G.connack_lat, now - c->t_connect);
      }
    }
    break;
  case T_SUBACK:
    if (c->state != ST_WAIT_SUBACK) { conn_fail(c, "unexpected SUBACK"); return; }
    if (len < 3 || b[2] == 0x80) {
      G.suback_refused++;
      conn_fail(c, "SUBACK refused");
      return;
    }
    if (b[2] != cfg.sub_qos) {
      note_error("subscriber %d: granted QoS %d instead of %d", c->idx, b[2], cfg.sub_qos);
    }
    c->state = ST_READY;
    break;
  case T_PINGRESP:
    break;
  default: {
    char why[64];
    snprintf(why, sizeof why, "unexpected packet type %d", type);
    conn_fail(c, why);
  }
  }
}

/* incremental decoder: parse every complete packet in rbuf, keep the tail */
static void conn_parse(conn_t *c, uint64_t now) {
  size_t off = 0;
  while (c->fd >= 0) {
    size_t avail = c->rlen - off;
    if (avail < 2) break;
    const uint8_t *p = c->rbuf + off;
    uint32_t rem = 0;
    size_t i = 1;
    int shift = 0, complete = 0;
    while (i < avail && i <= 4) {
      uint8_t byte = p[i++];
      rem |= (uint32_t)(byte & 0x7f) << shift;
      shift += 7;
      if (!(byte & 0x80)) { complete = 1; break; }
    }
    if (!complete) {
      if (i > 4) { conn_fail(c, "bad remaining length"); return; }
      break;
    }
    if (avail < i + rem) {
      /* make room for a large packet */
      if (i + rem > c->rcap) {
        if (off) { memmove(c->rbuf, c->rbuf + off, avail); c->rlen = avail; off = 0; }
        c->rcap = i + rem;
        c->rbuf = xrealloc(c->rbuf, c->rcap);
      }
      break;
    }
    on_packet(c, p[0], p + i, rem, now);
    off += i + rem;
  }
  if (c->fd < 0) return;
  if (off) {
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
  }
}

static void conn_readable(conn_t *c, uint64_t *now) {
  for (int round = 0; round < 4 && c->fd >= 0; round++) {
    if (c->rlen == c->rcap) break;
    ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    G.recvs[c->role]++;
    if (n > 0) {
      *now = now_ns();
      if (cfg.quickack) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
      }
      c->rlen += (size_t)n;
      conn_parse(c, *now);
      if ((size_t)n < 16384) break;
      continue;
    }
    if (n == 0) {
      G.closed_by_peer++;
      conn_fail(c, "connection closed by broker");
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    conn_fail(c, strerror(errno));
    return;
  }
  if (c->fd < 0) return;
  /* acks freed window space / acks to send: do it once per loop iteration */
  mark_dirty(c);
}

static void run_dirty(uint64_t now) {
  for (int i = 0; i < ndirty; i++) {
    conn_t *c = dirty_list[i];
    c->dirty = 0;
    if (c->fd < 0) continue;
    if (c->role == ROLE_PUB && c->state == ST_READY) pub_pump(c, now);
    else if (c->woff < c->wlen) conn_flush(c);
  }
  ndirty = 0;
}

/* --------------------------------------------------------------- connect */

static struct sockaddr_in broker_addr;
static struct sockaddr_in sub_addr;
static size_t rbuf_size = 256 * 1024;

static void start_connect(conn_t *c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    c->fd = -1;
    c->state = ST_CLOSED;
    G.conn_errors++;
    G.closed[c->role]++;
    if (c->role == ROLE_IDLE) G.idle_done++;
    note_error("socket: %s", strerror(errno));
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (cfg.sndbuf > 0 && c->role == ROLE_PUB) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cfg.sndbuf, sizeof cfg.sndbuf);
  c->fd = fd;
  c->t_connect = now_ns();
  c->state = ST_CONNECTING;
  if (!c->rbuf) {
    c->rcap = rbuf_size;
    c->rbuf = xmalloc(c->rcap);
  }
  c->rlen = 0;
  char cid[96];
  const char *r = c->role == ROLE_PUB ? "p" : c->role == ROLE_SUB ? "s" : "i";
  snprintf(cid, sizeof cid, "%s%08x-%s%d", cfg.prefix, cfg.run_id, r, c->idx);
  uint8_t pkt[160];
  size_t n = build_connect(pkt, cid, c->role == ROLE_SUB ? cfg.clean_sub : cfg.clean_pub, cfg.keepalive);
  wput(c, pkt, n);
  struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  c->ev = e.events;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl add: %s", strerror(errno));
  struct sockaddr_in *to = c->role == ROLE_SUB && (!cfg.sub_alt || c->idx % 2 == 1) ? &sub_addr : &broker_addr;
  int rc = connect(fd, (struct sockaddr *)to, sizeof *to);
  if (rc < 0 && errno != EINPROGRESS) conn_fail(c, strerror(errno));
}

static void on_connected(conn_t *c) {
  int err = 0;
  socklen_t l = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
  if (err) {
    conn_fail(c, strerror(err));
    return;
  }
  c->state = ST_WAIT_CONNACK;
  conn_flush(c);
}

static void start_subscribe(conn_t *c) {
  uint8_t pkt[600];
  if (strlen(c->filter) > 500) die("filter too long");
  size_t n = build_subscribe(pkt, 1, c->filter, cfg.sub_qos);
  wput(c, pkt, n);
  c->state = ST_WAIT_SUBACK;
  conn_flush(c);
}

/* ------------------------------------------------------------- /proc etc */

static double self_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of a process in seconds, -1 if unknown */
static double proc_cpu(int pid) {
  if (pid <= 0) return -1;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  /* after ") ": field 3 is state; utime is field 14, stime 15 */
  unsigned long long ut = 0, st = 0;
  int field = 2;
  for (char *q = p + 1; *q; q++) {
    if (*q == ' ') {
      field++;
      if (field == 14) ut = strtoull(q + 1, NULL, 10);
      if (field == 15) { st = strtoull(q + 1, NULL, 10); break; }
    }
  }
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_kb(int pid) {
  if (pid <= 0) return -1;
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "VmRSS:", 6)) { kb = strtol(line + 6, NULL, 10); break; }
  }
  fclose(f);
  return kb;
}

/* per-CPU busy and total jiffies from /proc/stat (cpu0, cpu1, ...) */
#define MAXCPU 64
typedef struct { unsigned long long busy[MAXCPU], total[MAXCPU]; int n; } cpustat_t;

static void read_cpustat(cpustat_t *cs) {
  memset(cs, 0, sizeof *cs);
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    int id;
    unsigned long long v[10] = {0};
    if (strncmp(line, "cpu", 3) || line[3] < '0' || line[3] > '9') continue;
    if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &id, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               &v[6], &v[7]) < 5)
      continue;
    if (id < 0 || id >= MAXCPU) continue;
    unsigned long long tot = 0;
    for (int k = 0; k < 8; k++) tot += v[k];
    cs->total[id] = tot;
    cs->busy[id] = tot - v[3] - v[4]; /* minus idle and iowait */
    if (id + 1 > cs->n) cs->n = id + 1;
  }
  fclose(f);
}

static void json_cpustat(FILE *o, const cpustat_t *a, const cpustat_t *b) {
  fprintf(o, "\"core_busy_pct\":[");
  for (int i = 0; i < b->n; i++) {
    unsigned long long t = b->total[i] - a->total[i], u = b->busy[i] - a->busy[i];
    fprintf(o, "%s%.1f", i ? "," : "", t ? 100.0 * (double)u / (double)t : 0.0);
  }
  fprintf(o, "]");
}

static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* --------------------------------------------------------------- driver */

static volatile sig_atomic_t stop_flag;
static void on_signal(int s) { (void)s; stop_flag = 1; }

static void dispatch(struct epoll_event *e, uint64_t *now) {
  conn_t *c = e->data.ptr;
  if (c->fd < 0) return;
  if (c->state == ST_CONNECTING) {
    if (e->events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
    return;
  }
  if (e->events & (EPOLLIN | EPOLLERR | EPOLLHUP)) conn_readable(c, now);
  if (c->fd >= 0 && (e->events & EPOLLOUT)) {
    if (c->role == ROLE_PUB && c->state == ST_READY) pub_pump(c, *now);
    else conn_flush(c);
  }
}

static int count_state(int role, int st) {
  int n = 0;
  for (int i = 0; i < nconns; i++)
    if (conns[i].role == role && conns[i].state == st) n++;
  return n;
}

static void json_lat(FILE *o, const char *name, const hist_t *h) {
  fprintf(o, "\"%s\":{\"count\":%llu,\"min_us\":%.1f,\"mean_us\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
             "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f}",
          name, (unsigned long long)h->count, h->min / 1e3, h->count ? (double)(h->sum / h->count) / 1e3 : 0,
          h_pct(h, 50) / 1e3, h_pct(h, 90) / 1e3, h_pct(h, 99) / 1e3, h_pct(h, 99.9) / 1e3, h->max / 1e3);
}

static void json_str(FILE *o, const char *s) {
  fputc('"', o);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', o);
    if ((unsigned char)*s < 0x20) fprintf(o, "\\u%04x", *s);
    else fputc(*s, o);
  }
  fputc('"', o);
}

static int poll_once(int timeout_ms, uint64_t *now) {
  static struct epoll_event evs[512];
  int n = epoll_wait(epfd, evs, 512, timeout_ms);
  *now = now_ns();
  if (n < 0) {
    if (errno == EINTR) return 0;
    die("epoll_wait: %s", strerror(errno));
  }
  for (int i = 0; i < n; i++) {
    if (evs[i].data.ptr == NULL) continue; /* timerfd handled by caller */
    dispatch(&evs[i], now);
  }
  run_dirty(*now);
  return n;
}

/* ---- idle mode ---- */

static int run_idle(void) {
  nconns = cfg.conns;
  conns = xcalloc((size_t)nconns, sizeof(conn_t));
  dirty_list = xcalloc((size_t)nconns + 1, sizeof(conn_t *));
  rbuf_size = 256;
  G.connack_lat = xcalloc(1, sizeof(hist_t));
  hist_t *ch = G.connack_lat;
  long rss_before = proc_rss_kb(cfg.broker_pid);
  double bcpu0 = proc_cpu(cfg.broker_pid), lcpu0 = self_cpu();
  static cpustat_t cs0, cs1;
  read_cpustat(&cs0);
  uint64_t t0 = now_ns(), now = t0, deadline = t0 + (uint64_t)(cfg.setup_timeout * 1e9);
  int next = 0;
  for (int i = 0; i < nconns; i++) { conns[i].fd = -1; conns[i].role = ROLE_IDLE; conns[i].idx = i; }
  while (!stop_flag && now < deadline && G.idle_done < nconns) {
    while (next < nconns && next - G.idle_done < cfg.concurrency) start_connect(&conns[next++]);
    poll_once(10, &now);
  }
  int done = G.idle_done;
  uint64_t t_last = G.idle_t_last ? G.idle_t_last : now;
  double connect_s = (double)(t_last - t0) / 1e9;
  double bcpu1 = proc_cpu(cfg.broker_pid), lcpu1 = self_cpu();
  read_cpustat(&cs1);
  int connected = G.idle_ok;
  /* settle, keep sockets serviced */
  uint64_t settle_end = now_ns() + (uint64_t)(cfg.settle * 1e9);
  while (!stop_flag && now < settle_end) poll_once(50, &now);
  long rss_after = proc_rss_kb(cfg.broker_pid);
  /* the connections stay idle a while longer: the broker's steady state (a garbage-collected runtime
     gives back what the connect burst made it grow only after some idle seconds) */
  long rss_idle = -1;
  if (cfg.idle_wait > 0) {
    uint64_t idle_end = now_ns() + (uint64_t)(cfg.idle_wait * 1e9);
    while (!stop_flag && now < idle_end) poll_once(50, &now);
    rss_idle = proc_rss_kb(cfg.broker_pid);
  }
  int alive = count_state(ROLE_IDLE, ST_READY);
  FILE *o = stdout;
  fprintf(o, "{\"mode\":\"idle\",\"conns\":%d,\"connected\":%d,\"alive_after_settle\":%d,\"failed\":%d,", nconns,
          connected, alive, nconns - connected);
  fprintf(o, "\"connect_seconds\":%.4f,\"connect_rate\":%.1f,", connect_s,
          connect_s > 0 ? connected / connect_s : 0);
  json_lat(o, "connack_latency", ch);
  fprintf(o, ",\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,\"rss_per_conn_bytes\":%.1f,", rss_before, rss_after,
          (rss_before >= 0 && rss_after >= 0 && connected > 0) ? (double)(rss_after - rss_before) * 1024.0 / connected
                                                                : -1.0);
  fprintf(o, "\"rss_idle_kb\":%ld,\"rss_per_conn_idle_bytes\":%.1f,", rss_idle,
          (rss_before >= 0 && rss_idle >= 0 && connected > 0) ? (double)(rss_idle - rss_before) * 1024.0 / connected : -1.0);
  json_cpustat(o, &cs0, &cs1);
  fprintf(o, ",\"broker_cpu_s\":%.3f,\"loadgen_cpu_s\":%.3f,\"timed_out\":%s,\"error\":",
          bcpu0 >= 0 ? bcpu1 - bcpu0 : -1.0, lcpu1 - lcpu0, done < nconns ? "true" : "false");
  if (G.first_error[0]) json_str(o, G.first_error);
  else fputs("null", o);
  fprintf(o, "}\n");
  fflush(o);
  for (int i = 0; i < nconns; i++) conn_close(&conns[i], 1);
  return connected == nconns ? 0 : 1;
}

/* ---- throughput mode ---- */

static int all_ready(int role, int n) {
  int r = 0;
  for (int i = 0; i < nconns; i++)
    if (conns[i].role == role && (conns[i].state == ST_READY)) r++;
  return r == n;
}

static int any_pending_setup(int role) {
  for (int i = 0; i < nconns; i++)
    if (conns[i].role == role && conns[i].state != ST_READY && conns[i].state != ST_CLOSED) return 1;
  return 0;
}

static int run_throughput(void) {
  nconns = cfg.pubs + cfg.subs;
  conns = xcalloc((size_t)nconns, sizeof(conn_t));
  dirty_list = xcalloc((size_t)nconns + 1, sizeof(conn_t *));
  conn_t *pubs = conns, *subs = conns + cfg.pubs;
  char **ptopics = xcalloc((size_t)cfg.pubs, sizeof(char *));
  uint64_t expected_pairs = 0;
  for (int i = 0; i < cfg.pubs; i++) {
    conn_t *c = &pubs[i];
    c->fd = -1; c->role = ROLE_PUB; c->idx = i;
    ptopics[i] = fmt_index(cfg.pub_topic, i);
    build_publish_tmpl(&c->tmpl, ptopics[i], cfg.qos, cfg.payload, (uint32_t)i);
    if (cfg.qos) {
      c->pid_state = xcalloc(65536, 1);
      c->pid_seq = xcalloc(65536, 8);
    }
    c->next_pid = 1;
  }
  for (int j = 0; j < cfg.subs; j++) {
    conn_t *c = &subs[j];
    c->fd = -1; c->role = ROLE_SUB; c->idx = j;
    c->filter = fmt_index(cfg.sub_filter, j);
    c->pairs = xcalloc((size_t)(cfg.pubs ? cfg.pubs : 1), sizeof(pair_t *));
    c->q2_pending = xcalloc(8192, 1);
    for (int i = 0; i < cfg.pubs; i++) {
      if (topic_match(c->filter, ptopics[i])) {
        c->pairs[i] = xcalloc(1, sizeof(pair_t));
        expected_pairs++;
      }
    }
  }
  for (int j = 0; j < cfg.subs; j++)
    for (int i = 0; i < cfg.pubs; i++)
      if (subs[j].pairs[i]) pubs[i].nmypairs++;
  for (int i = 0; i < cfg.pubs; i++) {
    pubs[i].mypairs = xcalloc((size_t)pubs[i].nmypairs + 1, sizeof(pair_t *));
    pubs[i].nmypairs = 0;
  }
  for (int j = 0; j < cfg.subs; j++)
    for (int i = 0; i < cfg.pubs; i++)
      if (subs[j].pairs[i]) pubs[i].mypairs[pubs[i].nmypairs++] = subs[j].pairs[i];
  /* how many subscribers each publisher reaches */
  uint64_t *fanout = xcalloc((size_t)(cfg.pubs ? cfg.pubs : 1), 8);
  for (int j = 0; j < cfg.subs; j++)
    for (int i = 0; i < cfg.pubs; i++)
      if (subs[j].pairs[i]) fanout[i]++;
  if (cfg.qos0_window < 0) {
    uint64_t w = expected_pairs ? 10000 / expected_pairs : 1000;
    if (w < 64) w = 64;
    if (w > 1000) w = 1000;
    cfg.qos0_window = (int)w;
  }
  if (expected_pairs == 0) fprintf(stderr, "loadgen: warning: no subscriber matches any publisher topic\n");

  int tfd = -1;
  if (cfg.rate > 0) {
    rate_per_pub = cfg.rate / (cfg.pubs ? cfg.pubs : 1);
    double period = 1e9 / cfg.rate;
    if (period < 50e3) period = 50e3;
    if (period > 1e6) period = 1e6;
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = {{0, (long)period}, {0, (long)period}};
    timerfd_settime(tfd, 0, &its, NULL);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &e);
  }

  uint64_t now = now_ns();
  uint64_t setup_deadline = now + (uint64_t)(cfg.setup_timeout * 1e9);
  uint64_t t_setup0 = now;
  /* subscribers first (connect + subscribe), then publishers */
  int started = 0;
  int phase = 0; /* 0 subs, 1 pubs */
  while (!stop_flag && now < setup_deadline) {
    conn_t *grp = phase == 0 ? subs : pubs;
    int n = phase == 0 ? cfg.subs : cfg.pubs;
    int role = phase == 0 ? ROLE_SUB : ROLE_PUB;
    int inprog = 0;
    for (int i = 0; i < started; i++)
      if (grp[i].state != ST_READY && grp[i].state != ST_CLOSED) inprog++;
    while (started < n && inprog < cfg.concurrency) { start_connect(&grp[started++]); inprog++; }
    if (started == n && !any_pending_setup(role)) {
      if (phase == 0) { phase = 1; started = 0; continue; }
      break;
    }
    poll_once(10, &now);
  }
  double setup_s = (double)(now_ns() - t_setup0) / 1e9;
  int subs_ready = count_state(ROLE_SUB, ST_READY), pubs_ready = count_state(ROLE_PUB, ST_READY);
  int setup_ok = subs_ready == cfg.subs && pubs_ready == cfg.pubs;
  if (!setup_ok) {
    note_error("setup incomplete: %d/%d subscribers and %d/%d publishers ready after %.1f s", subs_ready, cfg.subs,
               pubs_ready, cfg.pubs, setup_s);
  }
  (void)all_ready;

  /* ---- send phase ---- */
  double lcpu_m0 = 0, lcpu_m1 = 0, bcpu_m0 = -1, bcpu_m1 = -1;
  double xcpu_m0[8] = {-1, -1, -1, -1, -1, -1, -1, -1}, xcpu_m1[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
  static cpustat_t cs0, cs1;
  uint64_t recv_m0 = 0, recv_m1 = 0;
  uint64_t sent_m0 = 0, sent_m1 = 0, acked_m0 = 0, acked_m1 = 0;
  uint64_t t_end_send = 0, t_drain_end = 0;
  int drained_complete = 0;
  if (setup_ok || (subs_ready > 0 && pubs_ready > 0)) {
    now = now_ns();
    t_send_start = now;
    t_measure_start = now + (uint64_t)(cfg.warmup * 1e9);
    t_measure_end = t_measure_start + (uint64_t)(cfg.duration * 1e9);
    G.sending = 1;
    for (int i = 0; i < cfg.pubs; i++) pub_pump(&pubs[i], now);
    int measured = 0;
    uint64_t last_blocked_check = now;
    while (!stop_flag) {
      static struct epoll_event evs[512];
      uint64_t next_t = G.measuring ? t_measure_end : t_measure_start;
      int to = next_t > now ? (int)((next_t - now) / 1000000) + 1 : 0;
      if (to > 10) to = 10;
      int n = epoll_wait(epfd, evs, 512, to);
      now = now_ns();
      if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
      int tick = 0;
      for (int i = 0; i < n; i++) {
        if (!evs[i].data.ptr) { uint64_t x; (void)!read(tfd, &x, 8); tick = 1; continue; }
        dispatch(&evs[i], &now);
      }
      if (tick)
        for (int i = 0; i < cfg.pubs; i++) mark_dirty(&pubs[i]);
      if (now - last_blocked_check > 10000000ull) {
        last_blocked_check = now;
        for (int i = 0; i < cfg.pubs; i++)
          if (pubs[i].transit_blocked) mark_dirty(&pubs[i]);
      }
      run_dirty(now);
      if (!G.measuring && !measured && now >= t_measure_start) {
        G.measuring = 1;
        measured = 1;
        lcpu_m0 = self_cpu();
        bcpu_m0 = proc_cpu(cfg.broker_pid);
        for (int k = 0; k < cfg.n_cpu_pids; k++) xcpu_m0[k] = proc_cpu(cfg.cpu_pids[k]);
        read_cpustat(&cs0);
        recv_m0 = G.received_total;
        for (int i = 0; i < cfg.pubs; i++) { sent_m0 += pubs[i].sent; acked_m0 += pubs[i].acked; }
      }
      if (G.measuring && now >= t_measure_end) {
        G.measuring = 0;
        lcpu_m1 = self_cpu();
        bcpu_m1 = proc_cpu(cfg.broker_pid);
        for (int k = 0; k < cfg.n_cpu_pids; k++) xcpu_m1[k] = proc_cpu(cfg.cpu_pids[k]);
        read_cpustat(&cs1);
        recv_m1 = G.received_total;
        for (int i = 0; i < cfg.pubs; i++) { sent_m1 += pubs[i].sent; acked_m1 += pubs[i].acked; }
        break;
      }
      if ((cfg.pubs && G.closed[ROLE_PUB] == cfg.pubs) || (cfg.subs && G.closed[ROLE_SUB] == cfg.subs)) {
        note_error("all publishers or all subscribers disconnected");
        break;
      }
    }
    G.sending = 0;
    t_end_send = now;
    /* ---- drain: wait until everything acknowledged and delivered, or no progress ---- */
    uint64_t drain_deadline = now + (uint64_t)(cfg.drain * 1e9);
    uint64_t last_progress = now, last_recv = G.received_total, last_acked = 0;
    uint64_t idle_ns = cfg.qos == 0 ? 500000000ull : 1000000000ull;
    while (!stop_flag && now < drain_deadline) {
      /* flush anything still buffered for publishers (QoS 0 tail) */
      for (int i = 0; i < cfg.pubs; i++)
        if (pubs[i].fd >= 0 && pubs[i].woff < pubs[i].wlen) conn_flush(&pubs[i]);
      poll_once(20, &now);
      uint64_t acked = 0, inflight = 0, pending_w = 0;
      for (int i = 0; i < cfg.pubs; i++) {
        acked += pubs[i].acked;
        if (pubs[i].fd >= 0) { inflight += pubs[i].inflight; pending_w += pubs[i].wlen - pubs[i].woff; }
      }
      if (G.received_total != last_recv || acked != last_acked) {
        last_recv = G.received_total;
        last_acked = acked;
        last_progress = now;
      }
      /* complete? every pair received everything that was sent */
      if (inflight == 0 && pending_w == 0) {
        uint64_t want = 0, have = 0;
        for (int i = 0; i < cfg.pubs; i++) want += pubs[i].sent * fanout[i];
        for (int j = 0; j < cfg.subs; j++)
          for (int i = 0; i < cfg.pubs; i++)
            if (subs[j].pairs[i]) have += subs[j].pairs[i]->unique;
        if (have >= want) { drained_complete = 1; break; }
      }
      if (now - last_progress > idle_ns) break;
    }
    t_drain_end = now;
  }

  /* ---- verification ---- */
  uint64_t sent = 0, acked = 0, inflight_left = 0, lost = 0, expected = 0, unique = 0, unacked_delivered = 0;
  uint64_t per_sub_min = UINT64_MAX, per_sub_max = 0;
  for (int i = 0; i < cfg.pubs; i++) {
    sent += pubs[i].sent;
    acked += pubs[i].acked;
    inflight_left += pubs[i].inflight;
  }
  for (int j = 0; j < cfg.subs; j++) {
    conn_t *s = &subs[j];
    if (s->received < per_sub_min) per_sub_min = s->received;
    if (s->received > per_sub_max) per_sub_max = s->received;
    for (int i = 0; i < cfg.pubs; i++) {
      pair_t *pr = s->pairs[i];
      if (!pr) continue;
      conn_t *p = &pubs[i];
      unique += pr->unique;
      if (cfg.qos == 0) {
        /* everything sent should arrive (but QoS 0 may lose) */
        expected += p->sent;
        uint64_t got = 0;
        for (uint64_t w = 0; w < pr->recv.nwords; w++) got += (uint64_t)__builtin_popcountll(pr->recv.w[w]);
        lost += p->sent > got ? p->sent - got : 0;
      } else {
        /* QoS 1/2: every acknowledged message must arrive */
        expected += p->acked;
        lost += bm_count_missing(&p->acked_bm, &pr->recv, p->sent);
        /* informational: delivered although never acknowledged */
        uint64_t words = (p->sent + 63) >> 6;
        for (uint64_t w = 0; w < words && w < pr->recv.nwords; w++) {
          uint64_t aw = w < p->acked_bm.nwords ? p->acked_bm.w[w] : 0;
          unacked_delivered += (uint64_t)__builtin_popcountll(pr->recv.w[w] & ~aw);
        }
      }
    }
  }
  if (!cfg.subs) per_sub_min = 0;
  double dur = (double)(t_measure_end - t_measure_start) / 1e9;
  int qos_eff = cfg.qos < cfg.sub_qos ? cfg.qos : cfg.sub_qos;
  int dup_violation = G.duplicates > 0;
  int loss_violation = qos_eff > 0 && lost > 0;
  int ok = setup_ok && !dup_violation && !loss_violation && G.conn_errors == 0;

  FILE *o = stdout;
  fprintf(o, "{\"mode\":\"throughput\",\"ok\":%s,\"pubs\":%d,\"subs\":%d,\"qos\":%d,\"sub_qos\":%d,\"payload\":%d,"
             "\"window\":%d,\"refill\":%d,\"rate_target\":%.1f,\"warmup_s\":%.3f,\"duration_s\":%.3f,\"setup_s\":%.3f,",
          ok ? "true" : "false", cfg.pubs, cfg.subs, cfg.qos, cfg.sub_qos, cfg.payload, cfg.window, cfg.refill, cfg.rate,
          cfg.warmup, dur, setup_s);
  fprintf(o, "\"recv_rate\":%.1f,\"pub_rate\":%.1f,\"ack_rate\":%.1f,",
          dur > 0 ? (recv_m1 - recv_m0) / dur : 0, dur > 0 ? (sent_m1 - sent_m0) / dur : 0,
          dur > 0 ? (acked_m1 - acked_m0) / dur : 0);
  fprintf(o, "\"sent\":%llu,\"acked\":%llu,\"inflight_unacked\":%llu,\"received\":%llu,\"unique\":%llu,"
             "\"expected\":%llu,\"lost\":%llu,\"duplicates\":%llu,\"dup_redelivered\":%llu,"
             "\"qos2_dup_suppressed\":%llu,\"reordered\":%llu,\"foreign\":%llu,\"unexpected\":%llu,"
             "\"short_payload\":%llu,\"unacked_delivered\":%llu,\"unexpected_ack\":%llu,",
          (unsigned long long)sent, (unsigned long long)acked, (unsigned long long)inflight_left,
          (unsigned long long)G.received_total, (unsigned long long)unique, (unsigned long long)expected,
          (unsigned long long)lost, (unsigned long long)G.duplicates, (unsigned long long)G.dup_redelivered,
          (unsigned long long)G.q2_dup_suppressed, (unsigned long long)G.reordered, (unsigned long long)G.foreign,
          (unsigned long long)G.unexpected, (unsigned long long)G.short_payload,
          (unsigned long long)unacked_delivered, (unsigned long long)G.unexpected_ack);
  uint64_t forgiven = 0;
  for (int i = 0; i < cfg.pubs; i++) forgiven += pubs[i].forgiven;
  fprintf(o, "\"qos0_window\":%d,\"qos0_written_off\":%llu,", cfg.qos0_window, (unsigned long long)forgiven);
  fprintf(o, "\"per_sub_min\":%llu,\"per_sub_max\":%llu,\"drain_s\":%.3f,\"drained_complete\":%s,",
          (unsigned long long)per_sub_min, (unsigned long long)per_sub_max,
          t_drain_end > t_end_send ? (t_drain_end - t_end_send) / 1e9 : 0, drained_complete ? "true" : "false");
  json_lat(o, "latency", &G.lat);
  fprintf(o, ",\"loadgen_cpu_s\":%.3f,\"loadgen_cpu_pct\":%.1f,\"broker_cpu_s\":%.3f,\"broker_cpu_pct\":%.1f,",
          lcpu_m1 - lcpu_m0, dur > 0 ? 100 * (lcpu_m1 - lcpu_m0) / dur : 0,
          (bcpu_m0 >= 0 && bcpu_m1 >= 0) ? bcpu_m1 - bcpu_m0 : -1.0,
          (bcpu_m0 >= 0 && bcpu_m1 >= 0 && dur > 0) ? 100 * (bcpu_m1 - bcpu_m0) / dur : -1.0);
  json_cpustat(o, &cs0, &cs1);
  fprintf(o, ",\"cpu_pids_s\":[");
  for (int k = 0; k < cfg.n_cpu_pids; k++)
    fprintf(o, "%s%.3f", k ? "," : "", (xcpu_m0[k] >= 0 && xcpu_m1[k] >= 0) ? xcpu_m1[k] - xcpu_m0[k] : -1.0);
  fprintf(o, "]");
  fprintf(o, ",\"syscalls\":{\"pub_send\":%llu,\"pub_recv\":%llu,\"sub_send\":%llu,\"sub_recv\":%llu},",
          (unsigned long long)G.sends[ROLE_PUB], (unsigned long long)G.recvs[ROLE_PUB],
          (unsigned long long)G.sends[ROLE_SUB], (unsigned long long)G.recvs[ROLE_SUB]);
  fprintf(o, "\"conn_errors\":%llu,\"closed_by_peer\":%llu,\"connack_refused\":%llu,\"suback_refused\":%llu,"
             "\"error\":",
          (unsigned long long)G.conn_errors, (unsigned long long)G.closed_by_peer,
          (unsigned long long)G.connack_refused, (unsigned long long)G.suback_refused);
  if (G.first_error[0]) json_str(o, G.first_error);
  else fputs("null", o);
  fprintf(o, "}\n");
  fflush(o);
  for (int i = 0; i < nconns; i++) conn_close(&conns[i], 1);
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  raise_nofile();
  memset(&broker_addr, 0, sizeof broker_addr);
  broker_addr.sin_family = AF_INET;
  broker_addr.sin_port = htons((uint16_t)cfg.port);
  if (inet_pton(AF_INET, cfg.host, &broker_addr.sin_addr) != 1) die("bad --host (IPv4 address expected): %s", cfg.host);
  sub_addr = broker_addr;
  if (cfg.sub_port > 0) sub_addr.sin_port = htons((uint16_t)cfg.sub_port);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1: %s", strerror(errno));
  return cfg.mode == MODE_IDLE ? run_idle() : run_throughput();
}
