// Every default and every bound of the configuration lives here, with its
// unit in the name, so the schema, the JSON Schema, the example config and
// the daemon cannot drift apart. The schema imports these; nothing else
// should restate them.

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

export const DEFAULTS = {
  sync: {
    /** ctsyncd's own wire protocol; conntrackd speaks conntrackd 1.4.x's, for a migration. */
    protocol: 'ctsyncd',
    mode: 'ftfw',
    transport: 'multicast',
    /**
     * Largest UDP payload per datagram: 1500 (Ethernet) - 20 (IPv4) - 8 (UDP).
     * An IPv6 sync link needs 1452 to avoid fragmentation.
     */
    mtuBytes: 1472,
    port: 3780,
    multicastGroup: '225.0.0.50',
    /** Socket buffers absorb bursts such as a full resync after failover. */
    sendBufferBytes: 4 * MiB,
    receiveBufferBytes: 4 * MiB,
    /** The ftfw reliability protocol (src/sync/engine/sync-node.ts); all durations in milliseconds. */
    reliability: {
      /**
       * Receivers ack after this many in-order messages (conntrackd's
       * ACKWindowSize default): a bulk of ~28 messages per datagram then
       * costs an ack per ~11 datagrams, not one per two...
       */
      ackWindow: 300,
      /** ...or this long after the first message not yet acked. */
      ackDelayMs: 20,
      /** An open gap is NACKed again after this long, doubling up to nackRetryMaxMs. */
      nackRetryMs: 50,
      nackRetryMaxMs: 1000,
      /** Unacked messages are resent after this long without ack progress, doubling up to retransmitMaxMs. */
      retransmitMs: 200,
      retransmitMaxMs: 2000,
      /** Sent messages kept for resending, in messages (conntrackd's ResendQueueSize default). */
      resendQueueSize: 131_072,
      /** An alive goes out after this much transmit silence. */
      aliveIntervalMs: 1000,
      /** A peer is down after this much receive silence: three alives and a half. */
      peerTimeoutMs: 3500,
      /** notrack: the whole table is re-sent to every peer this often (conntrackd ALARM's RefreshTime). */
      refreshIntervalMs: 60_000,
      /** A starting node that hears no peer for this long counts its first sync as done. */
      startupSyncWaitMs: 2000,
      /**
       * Sequence numbers a node uses in one epoch before it takes a new one
       * (a rollover, which peers verify and carry on from): 2^30, so no two
       * seqs compared within an epoch are ever 2^31 apart.
       */
      seqsPerEpoch: 0x4000_0000,
    },
  },
  node: {
    /** systemd's StateDirectory=ctsyncd (contrib/systemd/ctsyncd.service). */
    stateDir: '/var/lib/ctsyncd',
  },
  cluster: {
    /**
     * Peers tracked at once (each costs a receive window, 16 KiB in ftfw,
     * 128 KiB in notrack, and retransmission state); datagrams of further
     * node ids are dropped before anything is allocated for them.
     */
    maxNodes: 16,
    /**
     * A peer down (silent past sync.reliability.peerTimeoutMs) for this much
     * longer is forgotten: its receive window, retransmission state and
     * retired epochs are freed. One minute is ~17 peer timeouts: a link
     * flap keeps its state, a dead or forged node id gives its slot back.
     */
    pruneAfterMs: 60_000,
  },
  kernel: {
    /** ctnetlink event socket; too small and the kernel drops events (ENOBUFS). */
    netlinkBufferBytes: 8 * MiB,
    /** conntrackd's "Filter From Kernelspace": the filter's rules also run as a BPF program on the event socket. */
    filterEvents: true,
    /**
     * Each overrun doubles the event buffer up to this (conntrackd's
     * NetlinkBufferSizeMaxGrowth); SO_RCVBUFFORCE lets root go past rmem_max.
     */
    netlinkBufferMaxBytes: 256 * MiB,
    /** conntrackd's NetlinkEventsReliable, off as there: overruns are detected and repaired by a resync instead. */
    eventsReliable: false,
    /**
     * After a read that emptied the event socket, the next waits this long:
     * at 10k events/s one wake-up per event cost the daemon's thread ~22 µs
     * an event, one per millisecond ~10 µs (BENCHMARKS.md, issue 16). A
     * burst never waits: the socket is read without pause until it is empty.
     */
    eventCoalesceMs: 1,
  },
  cache: {
    /** Entries for this node's own connections. */
    internalLimit: 262_144,
    /** Entries learned from peers. */
    externalLimit: 262_144,
  },
  filter: {
    /** conntrackd's ExpectationSync is off by default; ctsyncd has always replicated every expectation. */
    expectations: 'all',
  },
  failover: {
    /** conntrackd's PurgeTimeout default. */
    purgeTimeoutSeconds: 60,
    /** Off: a backup keeps peers' entries in its external cache until commit, like conntrackd. */
    inject: false,
  },
  control: {
    socket: '/run/ctsyncd/ctsyncd.sock',
    /** Only root (the daemon's user) may drive the daemon. */
    mode: '0600',
  },
  log: {
    level: 'info',
    /** One JSON object per line: log shippers and `journalctl -o cat | jq` read it as is. */
    format: 'json',
  },
  flowlog: {
    /** ulogd2's NFCT default and what an abuse complaint needs: when a flow began and when it ended. */
    events: ['new', 'destroy'],
    /**
     * Raw events waiting for the writer; past this they are dropped and
     * counted, never waited for. About 270k events (~250 bytes each): a
     * burst the writer, idle while replication takes the CPU, catches up on
     * afterwards; it is raised to the normal priority only at three
     * quarters full, past a 100k burst (BENCHMARKS.md, issue 16). Only
     * what a backlog fills is resident.
     */
    queueBytes: 64 * MiB,
    durability: 'buffered',
    /** buffered: at most this long between an event and its line reaching the file. */
    flushIntervalMs: 1000,
    /** Rotated files kept (name.1.gz newest). */
    rotateKeep: 7,
    ipfix: {
      observationDomainId: 1,
      /** RFC 6728's default templateRefreshTimeout. */
      templateRefreshSeconds: 600,
      /** Ethernet. */
      mtuBytes: 1500,
    },
    syslog: {
      /** conntrackd's Stats `Syslog on`: LOG_DAEMON. */
      facility: 'daemon',
      path: '/dev/log',
      appName: 'ctsyncd',
    },
  },
  metrics: {
    enabled: true,
    /** Loopback only: the metrics carry connection counts worth keeping local. */
    listen: '127.0.0.1:9469',
  },
} as const;

export const LIMITS = {
  port: { min: 1, max: 65_535 },
  /** Flow log queue: 64 KiB holds a few hundred events; above 1 GiB is a unit mistake. */
  flowlogQueueBytes: { min: 64 * KiB, max: 1 * GiB },
  /** Flush interval of a buffered flow log: 10 ms to a minute. */
  flowlogFlushMs: { min: 10, max: 60_000 },
  /** A rotated file of under 64 KiB would rotate several times a second on a busy firewall. */
  flowlogRotateBytes: { min: 64 * KiB, max: 1024 * GiB },
  flowlogRotateKeep: { min: 1, max: 1000 },
  /** An IPFIX observation domain id is an unsigned 32-bit field. */
  ipfixDomainIdMax: 4_294_967_295,
  /** Templates at most once a second, at least once a day. */
  ipfixTemplateRefreshSeconds: { min: 1, max: 86_400 },
  /** Below 512 bytes the templates and one IPv6 NAT record (458 with the headers) would not fit; an IPFIX message is at most 65535. */
  ipfixMtuBytes: { min: 512, max: 65_535 },
  /** 2^32 - 1: the cluster id travels as an unsigned 32-bit field. */
  clusterIdMax: 4_294_967_295,
  /** Below 512 bytes a single fully-populated conntrack entry may not fit. 65507 = 65535 - 20 - 8. */
  mtuBytes: { min: 512, max: 65_507 },
  /** Events held back at most this long: past 100 ms replication would lag behind a change for longer than it takes to notice. */
  eventCoalesceMs: { min: 0, max: 100 },
  /** The kernel clamps tiny buffers anyway; above 1 GiB is a unit mistake, not a tuning choice. */
  bufferBytes: { min: 4 * KiB, max: 1 * GiB },
  /** Peers tracked at once: 256 notrack receive windows are 32 MiB. */
  maxNodes: { min: 1, max: 256 },
  /** One second to a day. */
  pruneAfterMs: { min: 1000, max: 86_400_000 },
  /** Per cache; 16 Mi entries is several times any realistic nf_conntrack_max. */
  cacheEntries: { min: 1, max: 16_777_216 },
  /** conntrackd allows 4 channels in all; so do we (the main link and 3 backups). */
  backupLinks: { max: 3 },
  /** Two keys at once are enough to roll a key across a cluster without downtime. */
  authKeyFiles: { min: 1, max: 2 },
  /** Acking less often than every 64 Ki messages would only hold the resend queue longer. */
  ackWindow: { min: 1, max: 65_536 },
  /** Reliability timers: below 1 ms is meaningless for a 20 ms tick, above 10 minutes a unit mistake. */
  reliabilityMs: { min: 1, max: 600_000 },
  /** Messages; the queue holds references to sent entries, so 16 Mi is already far more than useful. */
  resendQueueSize: { min: 256, max: 16_777_216 },
  /**
   * Epochs of at least 1024 seqs: a rollover costs a round trip. At most
   * 2^30 (the default), half of the 2^31 within which modulo-2^32 seq
   * comparisons are exact (src/sync/engine/reliability.ts, MAX_SEQS_PER_EPOCH).
   */
  seqsPerEpoch: { min: 1024, max: 0x4000_0000 },
  /** Hours at most: a refresh is a full re-send of the table. */
  refreshIntervalMs: { min: 1000, max: 86_400_000 },
  /** A purge timeout of 0 would destroy live connections at once; a day is already "never". */
  purgeTimeoutSeconds: { min: 1, max: 86_400 },
  /** sched_get_priority_min/max of SCHED_FIFO and SCHED_RR on Linux. */
  realtimePriority: { min: 1, max: 99 },
  /** NF_CT_HELPER_NAME_LEN is 16 bytes including the terminating NUL. */
  helperNameBytes: 15,
  /** sun_path is 108 bytes including the terminating NUL. */
  unixSocketPathBytes: 107,
} as const;

/**
 * syslog facilities by name (<syslog.h>, RFC 5424 6.2.1), with their codes.
 * Here rather than in schema.ts: the daemon maps a facility to its code, and
 * importing the schema for it would load zod and yaml before the control
 * socket listens (~0.15 s of a restart; test/unit/startup-imports.test.ts).
 */
export const SYSLOG_FACILITIES = {
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
} as const;
