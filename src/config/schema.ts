// The one description of ctsyncd.yaml: parsing, defaults, cross-field rules
// and the editor JSON Schema all come from `configSchema`. Objects are strict
// so a misspelt key is an error instead of a silently ignored setting, which
// on a firewall pair tends to surface only at failover time.

import { z } from 'zod';
import { canonicalAddress, ipFamily, isMulticast, networkOf, parseHostPort, parseIPv4 } from '../common/address.js';
import { TCP_STATES } from '../kernel/constants.js';
import { DEFAULTS, LIMITS, SYSLOG_FACILITIES } from './defaults.js';

/** Protocol names as the kernel module's protoName() spells them. */
export const PROTOCOLS = ['tcp', 'udp', 'udplite', 'sctp', 'dccp', 'gre', 'icmp', 'icmpv6'] as const;
export type ProtocolName = (typeof PROTOCOLS)[number];

/**
 * Conntrack attributes that may be withheld from peers, e.g. labels or marks
 * whose meaning is local to one box. The tuple, status, timeout, protocol
 * state, zone and NAT bindings are never strippable: without them the peer
 * cannot take the connection over.
 */
export const STRIPPABLE_ATTRIBUTES = [
  'labels',
  'helper',
  'mark',
  'secmark',
  'secctx',
  'counters',
  'timestamp',
  'seqadj',
  'synproxy',
] as const;
export type StrippableAttribute = (typeof STRIPPABLE_ATTRIBUTES)[number];

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;

/** Renders a parsed YAML value for an error message without dumping whole maps. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Uint8Array) return 'binary data';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') {
    const shown = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return `string ${JSON.stringify(shown)}`;
  }
  return `${typeof value} ${String(value)}`;
}

/** An error callback phrased "expected X, got Y" like the generic messages in load.ts. */
function expected(what: string): (issue: { input?: unknown }) => string {
  return (issue) =>
    issue.input === undefined ? `required: expected ${what}` : `expected ${what}, got ${describeValue(issue.input)}`;
}

const port = z.int().min(LIMITS.port.min).max(LIMITS.port.max);

const bufferBytes = z.int().min(LIMITS.bufferBytes.min).max(LIMITS.bufferBytes.max);

const ipAddress = z.union([z.ipv4(), z.ipv6()], { error: expected('an IPv4 or IPv6 address') });

/** Filters match whole prefixes; a bare address is the /32 or /128 of itself. */
const addressOrPrefix = z
  .union([z.ipv4(), z.ipv6(), z.cidrv4(), z.cidrv6()], {
    error: expected('an IPv4 or IPv6 address or prefix, e.g. 10.0.0.0/8 or 2001:db8::/32'),
  })
  .refine((p) => networkOf(p) === p, {
    error: (issue) => {
      const p = String(issue.input);
      return `prefix ${p} has host bits set; did you mean ${networkOf(p)}?`;
    },
  });

const multicastGroup = ipAddress.refine(isMulticast, {
  error: expected('a multicast group (224.0.0.0/4 or ff00::/8)'),
});

/** Linux dev_valid_name(): below IFNAMSIZ (16), no '/', ':' or whitespace, not '.' or '..'. */
const interfaceName = z.string().regex(/^(?!\.\.?$)[^\s/:]{1,15}$/, {
  error: expected('an interface name of 1-15 characters without / : or spaces'),
});

/** Relative paths would depend on the daemon's working directory, which systemd sets to /. */
const absolutePath = z
  .string()
  .regex(/^\/[^\0]*$/, { error: expected('an absolute path') })
  .describe('Absolute path.');

const unixSocketPath = absolutePath.refine((p) => Buffer.byteLength(p) <= LIMITS.unixSocketPathBytes, {
  error: `expected at most ${LIMITS.unixSocketPathBytes} bytes (the limit of a Unix socket path)`,
});

/** Comparable form of an address, so 2001:DB8::1 and 2001:db8:0::1 count as one peer. */
function addressKey(addr: string): string {
  return ipFamily(addr) === 4 ? `4:${parseIPv4(addr)}` : `6:${canonicalAddress(addr)}`;
}

const nodeId = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: expected('1-64 characters from A-Z a-z 0-9 _ . -') });

const nodeSchema = z
  .strictObject({
    id: nodeId.describe('Name of this node, unique within the cluster; it tags every message this node sends.'),
    stateDir: absolutePath
      .default(DEFAULTS.node.stateDir)
      .describe(
        "Directory of what the daemon keeps across restarts: the last epoch it used (file epoch-<node id>), so that each start takes a higher one and traffic recorded earlier cannot pass for this node's. systemd's StateDirectory=ctsyncd creates the default.",
      ),
  })
  .describe('This firewall.');

const clusterSchema = z
  .strictObject({
    id: z
      .int()
      .min(0)
      .max(LIMITS.clusterIdMax)
      .describe(
        `Cluster number, 0..${LIMITS.clusterIdMax}. Nodes drop messages from other clusters. Required: two ` +
          'clusters sharing a sync segment must never fall back to the same value.',
      ),
    nodes: z
      .array(nodeId)
      .min(1)
      .optional()
      .describe(
        'The node ids of the cluster (this node may be listed too). When given, datagrams from any other node id are ' +
          'dropped and counted before anything is kept for them, and each listed peer is reserved its share of ' +
          'cache.externalLimit from the start. Default: any node id is admitted, up to maxNodes.',
      ),
    maxNodes: z
      .int()
      .min(LIMITS.maxNodes.min)
      .max(LIMITS.maxNodes.max)
      .default(DEFAULTS.cluster.maxNodes)
      .describe(
        'Most peers (other nodes) tracked at once; datagrams of further node ids are dropped and counted.',
      ),
    pruneAfterMs: z
      .int()
      .min(LIMITS.pruneAfterMs.min)
      .max(LIMITS.pruneAfterMs.max)
      .default(DEFAULTS.cluster.pruneAfterMs)
      .describe(
        'Milliseconds a peer may stay down (silent past sync.reliability.peerTimeoutMs) before its receive window ' +
          'and retransmission state are freed; a peer not in nodes is then forgotten altogether. Its entries stay ' +
          'in the external cache.',
      ),
  })
  .superRefine((c, ctx) => {
    if (c.nodes === undefined) return;
    const seen = new Set<string>();
    c.nodes.forEach((id, i) => {
      if (seen.has(id)) ctx.addIssue({ code: 'custom', path: ['nodes', i], input: id, message: `duplicate node id ${id}` });
      seen.add(id);
    });
  })
  .describe('The HA pair or group this node belongs to.');

const multicastSchema = z
  .strictObject({
    group: multicastGroup.default(DEFAULTS.sync.multicastGroup).describe('IPv4 or IPv6 multicast group.'),
    port: port.default(DEFAULTS.sync.port).describe('UDP port.'),
    interface: interfaceName.describe('Dedicated sync interface to send and join the group on.'),
    sendBufferBytes: bufferBytes.default(DEFAULTS.sync.sendBufferBytes).describe('SO_SNDBUF in bytes.'),
    receiveBufferBytes: bufferBytes.default(DEFAULTS.sync.receiveBufferBytes).describe('SO_RCVBUF in bytes.'),
  })
  .describe('Multicast transport settings; required when sync.transport is multicast.');

const udpSchema = z
  .strictObject({
    bind: ipAddress.describe('Local address to bind; its family decides the family of every peer.'),
    port: port.default(DEFAULTS.sync.port).describe('UDP port, local and on every peer.'),
    peers: z.array(ipAddress).min(1).describe('Unicast addresses of the other nodes.'),
    sendBufferBytes: bufferBytes.default(DEFAULTS.sync.sendBufferBytes).describe('SO_SNDBUF in bytes.'),
    receiveBufferBytes: bufferBytes.default(DEFAULTS.sync.receiveBufferBytes).describe('SO_RCVBUF in bytes.'),
  })
  .superRefine((udp, ctx) => {
    const family = ipFamily(udp.bind);
    if (isMulticast(udp.bind)) {
      ctx.addIssue({
        code: 'custom',
        path: ['bind'],
        input: udp.bind,
        message: `expected a unicast address, got ${udp.bind}`,
      });
    }
    const seen = new Set<string>();
    udp.peers.forEach((peer, i) => {
      const path = ['peers', i];
      const key = addressKey(peer);
      if (ipFamily(peer) !== family) {
        ctx.addIssue({
          code: 'custom',
          path,
          input: peer,
          message: `expected an IPv${family} address like bind, got ${peer}`,
        });
      } else if (isMulticast(peer)) {
        ctx.addIssue({ code: 'custom', path, input: peer, message: `expected a unicast address, got ${peer}` });
      } else if (key === addressKey(udp.bind)) {
        ctx.addIssue({ code: 'custom', path, input: peer, message: 'is the bind address itself' });
      } else if (seen.has(key)) {
        ctx.addIssue({ code: 'custom', path, input: peer, message: `duplicate peer ${peer}` });
      }
      seen.add(key);
    });
  })
  .describe('Unicast UDP transport settings; required when sync.transport is udp.');

/** Custom issues carrying this param are positioned at the key, not the value. */
export const AT_KEY = { at: 'key' } as const;

const AUTH_DESCRIPTION =
  'Required. Message authentication (HMAC-SHA256): exactly one of keyFile or keyFiles, or the word none to run unauthenticated (logged as a warning at start, shown in stats and metrics).';

const authKeys = z
  .strictObject({
    keyFile: absolutePath.optional().describe('File holding the shared key.'),
    keyFiles: z
      .array(absolutePath)
      .min(LIMITS.authKeyFiles.min)
      .max(LIMITS.authKeyFiles.max)
      .optional()
      .describe('Key rotation: the first key signs what this node sends, every listed key is accepted.'),
  })
  // Lets editors flag what the superRefine below enforces.
  .meta({ oneOf: [{ required: ['keyFile'] }, { required: ['keyFiles'] }] })
  .describe(AUTH_DESCRIPTION);

/**
 * Required, with no default: an unauthenticated sync link lets anything on the
 * segment write into this firewall's state table, so running without keys has
 * to be written down (`auth: none`). none resolves to null, as an absent auth
 * did before it became required. The rules between the keys run on the union
 * rather than inside its mapping branch: a refined branch would hide its own
 * issues (a relative path, say) behind the union's "expected none or ...".
 */
const authSchema = z
  .union([z.literal('none'), authKeys], { error: expected('none, or a mapping with keyFile or keyFiles') })
  .superRefine((auth, ctx) => {
    if (auth === 'none') return;
    if (auth.keyFile !== undefined && auth.keyFiles !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['keyFiles'],
        input: auth,
        params: AT_KEY,
        message: 'keyFile and keyFiles are mutually exclusive: give exactly one',
      });
    } else if (auth.keyFile === undefined && auth.keyFiles === undefined) {
      ctx.addIssue({ code: 'custom', input: auth, message: 'expected keyFile or keyFiles' });
    } else if (auth.keyFiles !== undefined && new Set(auth.keyFiles).size !== auth.keyFiles.length) {
      ctx.addIssue({ code: 'custom', path: ['keyFiles'], input: auth, message: 'lists the same key file twice' });
    }
  })
  // Downstream sees one shape: keyFiles[0] signs, all of keyFiles verify.
  .transform((auth) =>
    auth === 'none' ? null : { keyFiles: auth.keyFiles ?? (auth.keyFile === undefined ? [] : [auth.keyFile]) },
  )
  .describe(AUTH_DESCRIPTION);

const R = DEFAULTS.sync.reliability;
const ms = z.int().min(LIMITS.reliabilityMs.min).max(LIMITS.reliabilityMs.max);

const reliabilitySchema = z
  .strictObject({
    ackWindow: z
      .int()
      .min(LIMITS.ackWindow.min)
      .max(LIMITS.ackWindow.max)
      .default(R.ackWindow)
      .describe('A receiver acks after at most this many new in-order messages.'),
    ackDelayMs: ms
      .default(R.ackDelayMs)
      .describe('...or at most this many milliseconds after the first unacked one; shorter than retransmitMs.'),
    nackRetryMs: ms
      .default(R.nackRetryMs)
      .describe('Milliseconds before a NACK for a gap that is still open is repeated; doubles per repetition.'),
    nackRetryMaxMs: ms.default(R.nackRetryMaxMs).describe('Upper bound of the NACK repetition interval, milliseconds.'),
    retransmitMs: ms
      .default(R.retransmitMs)
      .describe('Milliseconds without ack progress before unacked messages are resent; doubles per timeout.'),
    retransmitMaxMs: ms.default(R.retransmitMaxMs).describe('Upper bound of the retransmission timeout, milliseconds.'),
    resendQueueSize: z
      .int()
      .min(LIMITS.resendQueueSize.min)
      .max(LIMITS.resendQueueSize.max)
      .default(R.resendQueueSize)
      .describe(
        'Sent messages kept for resending. A peer that falls further behind gets a full bulk instead (counted).',
      ),
    aliveIntervalMs: ms
      .default(R.aliveIntervalMs)
      .describe('Milliseconds of transmit silence after which an alive message goes out.'),
    peerTimeoutMs: ms
      .default(R.peerTimeoutMs)
      .describe('Milliseconds of receive silence after which a peer is down; longer than aliveIntervalMs.'),
    refreshIntervalMs: z
      .int()
      .min(LIMITS.refreshIntervalMs.min)
      .max(LIMITS.refreshIntervalMs.max)
      .default(R.refreshIntervalMs)
      .describe('notrack only: milliseconds between full re-sends of the table to every peer.'),
    startupSyncWaitMs: ms
      .default(R.startupSyncWaitMs)
      .describe('A starting node that hears no peer within this many milliseconds counts its first sync as done.'),
    seqsPerEpoch: z
      .int()
      .min(LIMITS.seqsPerEpoch.min)
      .max(LIMITS.seqsPerEpoch.max)
      .default(R.seqsPerEpoch)
      .describe(
        'Sequence numbers per epoch: after this many a node takes a new epoch, which peers verify and carry on from. ' +
          'Fewer only exercises rollovers (each costs a round trip); the default keeps every comparison exact.',
      ),
  })
  .superRefine((r, ctx) => {
    const issue = (path: string, message: string) =>
      ctx.addIssue({ code: 'custom', path: [path], input: r[path as keyof typeof r], message });
    if (r.peerTimeoutMs <= r.aliveIntervalMs) {
      issue('peerTimeoutMs', `must be longer than aliveIntervalMs (${r.aliveIntervalMs}), or idle peers flap`);
    }
    if (r.nackRetryMaxMs < r.nackRetryMs) issue('nackRetryMaxMs', `must be at least nackRetryMs (${r.nackRetryMs})`);
    if (r.retransmitMaxMs < r.retransmitMs) {
      issue('retransmitMaxMs', `must be at least retransmitMs (${r.retransmitMs})`);
    }
    if (r.ackDelayMs >= r.retransmitMs) {
      issue('ackDelayMs', `must be shorter than retransmitMs (${r.retransmitMs}), or senders resend what is about to be acked`);
    }
  })
  .describe('Acknowledgements, retransmission and peer liveness (timers in milliseconds).');

const syncSchema = z
  .strictObject({
    protocol: z
      .enum(['ctsyncd', 'conntrackd'])
      .default(DEFAULTS.sync.protocol)
      .describe(
        "ctsyncd: this daemon's own protocol (node ids, epochs, HMAC). conntrackd: conntrackd 1.4.x's messages, to run beside a conntrackd node while replacing a pair one node at a time; it has no authentication, so auth must be none.",
      ),
    mode: z
      .enum(['ftfw', 'notrack'])
      .default(DEFAULTS.sync.mode)
      .describe('ftfw: acknowledged, resends lost messages. notrack: best effort, no acknowledgements.'),
    transport: z
      .enum(['multicast', 'udp'])
      .default(DEFAULTS.sync.transport)
      .describe('Which transport section is used.'),
    mtu: z
      .int()
      .min(LIMITS.mtuBytes.min)
      .max(LIMITS.mtuBytes.max)
      .default(DEFAULTS.sync.mtuBytes)
      .describe('Largest UDP payload per datagram in bytes (1472 fits Ethernet over IPv4; use 1452 over IPv6).'),
    multicast: multicastSchema.optional(),
    udp: udpSchema.optional(),
    backupLinks: z
      .array(
        z.union([z.strictObject({ multicast: multicastSchema }), z.strictObject({ udp: udpSchema })], {
          error: expected('a mapping with exactly one of multicast or udp'),
        }),
      )
      .max(LIMITS.backupLinks.max)
      .default([])
      .describe(
        'Redundant dedicated sync links, of the same transport as the main one. Every link receives; one transmits and fails over to the next when its link goes down. Multicast links need distinct groups.',
      ),
    reliability: reliabilitySchema.prefault({}),
    auth: authSchema,
  })
  .meta({
    if: { properties: { transport: { const: 'udp' } }, required: ['transport'] },
    // biome-ignore lint/suspicious/noThenProperty: a JSON Schema keyword in plain data, never awaited.
    then: { required: ['udp'] },
    else: { required: ['multicast'] },
  })
  // Narrow to a union on `transport` so the daemon reads config.sync.multicast
  // without an undefined check once it has looked at transport.
  .transform((sync, ctx) => {
    const { multicast, udp, ...common } = sync;
    if (sync.protocol === 'conntrackd' && sync.auth !== null) {
      // Keys would only suggest a protection that conntrackd's messages cannot carry.
      ctx.addIssue({
        code: 'custom',
        path: ['auth'],
        input: sync.auth,
        message: "conntrackd's protocol has no authentication: write auth: none, or use protocol: ctsyncd on both nodes",
      });
      return z.NEVER;
    }
    for (const [i, link] of sync.backupLinks.entries()) {
      if (sync.transport in link) continue;
      ctx.addIssue({
        code: 'custom',
        path: ['backupLinks', i],
        input: link,
        message: `expected a ${sync.transport} link: all links use the transport named in sync.transport`,
      });
      return z.NEVER;
    }
    if (sync.transport === 'multicast') {
      if (multicast !== undefined) return { ...common, transport: 'multicast' as const, multicast, udp };
      ctx.addIssue({
        code: 'custom',
        path: ['multicast'],
        input: undefined,
        message: 'required when transport is multicast: expected a mapping with at least interface',
      });
      return z.NEVER;
    }
    if (udp !== undefined) return { ...common, transport: 'udp' as const, udp, multicast };
    ctx.addIssue({
      code: 'custom',
      path: ['udp'],
      input: undefined,
      message: 'required when transport is udp: expected a mapping with at least bind and peers',
    });
    return z.NEVER;
  })
  .describe('State replication between the nodes.');

/**
 * A filter list: exactly one of accept (sync only these) or ignore (sync all
 * but these). The resolved form keeps that shape, and an absent list becomes
 * `{ ignore: [] }`, i.e. everything passes.
 */
function acceptOrIgnore<T extends z.ZodType>(item: T, what: string) {
  type Item = z.output<T>;
  return z
    .strictObject({
      accept: z
        .array(item)
        .min(1, { error: 'an empty accept list would sync nothing; drop the list to sync everything' })
        .optional()
        .describe(`Sync only these ${what}.`),
      ignore: z.array(item).optional().describe(`Sync everything except these ${what}.`),
    })
    .meta({ oneOf: [{ required: ['accept'] }, { required: ['ignore'] }] })
    .superRefine((list, ctx) => {
      if (list.accept !== undefined && list.ignore !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['ignore'],
          input: list,
          params: AT_KEY,
          message: 'accept and ignore are mutually exclusive: give exactly one',
        });
      } else if (list.accept === undefined && list.ignore === undefined) {
        ctx.addIssue({ code: 'custom', input: list, message: 'expected accept or ignore' });
      }
    })
    .transform((list): { accept: Item[] } | { ignore: Item[] } =>
      list.accept !== undefined ? { accept: list.accept } : { ignore: list.ignore ?? [] },
    )
    .default({ ignore: [] })
    .describe(`Which ${what} to sync: exactly one of accept or ignore.`);
}

const helperName = z
  .string()
  .regex(new RegExp(`^[A-Za-z0-9_.-]{1,${LIMITS.helperNameBytes}}$`), {
    error: expected(`a conntrack helper name of 1-${LIMITS.helperNameBytes} characters, e.g. ftp or sip`),
  });

const expectationsSchema = z
  .union(
    [
      z.literal('all'),
      z.literal('none'),
      z.strictObject({
        helpers: z
          .array(helperName)
          .min(1, { error: 'an empty helper list would sync no expectation; write none for that' })
          .describe(
            'Helper names, e.g. [ftp, sip], as the kernel reports them (helper= in conntrack -L); as in conntrackd a name also matches the helpers it begins, in any case (sip: sip-5060).',
          ),
      }),
    ],
    { error: expected('all, none, or a mapping with helpers') },
  )
  .default(DEFAULTS.filter.expectations)
  .describe(
    "Which expectations to sync (conntrackd's ExpectationSync): all, none (expectation events are not even subscribed to), or { helpers: [...] }, those whose master connection has one of these helpers. Also what flush-kernel expect (-F expect) and resync expect (-R expect) act on.",
  );

const filterSchema = z
  .strictObject({
    protocols: acceptOrIgnore(z.enum(PROTOCOLS), 'layer 4 protocols'),
    addresses: acceptOrIgnore(addressOrPrefix, 'addresses or prefixes (matched against the original or the reply source address)'),
    tcpStates: acceptOrIgnore(z.enum(TCP_STATES), 'TCP conntrack states'),
    stripAttributes: z
      .array(z.enum(STRIPPABLE_ATTRIBUTES))
      .default([])
      .describe('Conntrack attributes never sent to peers.'),
    expectations: expectationsSchema,
  })
  .describe('Which connections are replicated, and what of them.');

const kernelSchema = z
  .strictObject({
    netlinkBufferBytes: bufferBytes
      .default(DEFAULTS.kernel.netlinkBufferBytes)
      .describe(
        'Receive buffer of the ctnetlink event socket in bytes. When the kernel queue fills past a quarter of it (events arrive faster than the daemon handles them), the daemon also reads up to four times this many bytes (at most 1 GiB) of events ahead into its own memory (a thread of its own reads the socket), where an event takes about a quarter of the room it takes in the kernel queue, so a burst, or the first seconds of a fresh daemon, waits there instead of overrunning the queue. That memory is taken only as events wait in it.',
      ),
    filterEvents: z
      .boolean()
      .default(DEFAULTS.kernel.filterEvents)
      .describe(
        "Also apply the filter's rules in the kernel, as a BPF program on the event socket, to the events where that is safe, so that events of filtered connections never reach the daemon. The daemon applies every rule itself either way.",
      ),
    netlinkBufferMaxBytes: bufferBytes
      .optional()
      .describe(
        `Each overrun doubles the event socket's receive buffer, up to this many bytes (conntrackd's NetlinkBufferSizeMaxGrowth); at least netlinkBufferBytes. Default ${DEFAULTS.kernel.netlinkBufferMaxBytes}, or netlinkBufferBytes when that is larger.`,
      ),
    eventsReliable: z
      .boolean()
      .default(DEFAULTS.kernel.eventsReliable)
      .describe(
        "conntrackd's NetlinkEventsReliable: NETLINK_BROADCAST_ERROR and NETLINK_NO_ENOBUFS on the event socket, so the kernel redelivers events it could not queue (and keeps dying connections until their destroy event is delivered) instead of reporting an overrun. Under a flood the table can fill with dying entries.",
      ),
    eventCoalesceMs: z
      .int()
      .min(LIMITS.eventCoalesceMs.min)
      .max(LIMITS.eventCoalesceMs.max)
      .default(DEFAULTS.kernel.eventCoalesceMs)
      .describe(
        'Once a read has emptied the event socket, wait this many milliseconds before reading it again, so that at a modest event rate one wake-up handles several events instead of one (less CPU per event; an event reaches peers and the flow log at most this much later). A burst is read without pause until the socket is empty. 0: read at once.',
      ),
  })
  .superRefine((k, ctx) => {
    // Only between two valid sizes: a size out of range has its own issue already.
    const valid = (n: unknown) => typeof n === 'number' && n >= LIMITS.bufferBytes.min && n <= LIMITS.bufferBytes.max;
    if (!valid(k.netlinkBufferBytes) || !valid(k.netlinkBufferMaxBytes)) return;
    if (k.netlinkBufferMaxBytes !== undefined && k.netlinkBufferMaxBytes < k.netlinkBufferBytes) {
      ctx.addIssue({
        code: 'custom',
        path: ['netlinkBufferMaxBytes'],
        input: k.netlinkBufferMaxBytes,
        message: `must be at least netlinkBufferBytes (${k.netlinkBufferBytes})`,
      });
    }
  })
  // A config written before this key keeps its buffer size, even one above the default cap.
  .transform((k) => ({
    ...k,
    netlinkBufferMaxBytes:
      k.netlinkBufferMaxBytes ?? Math.max(DEFAULTS.kernel.netlinkBufferMaxBytes, k.netlinkBufferBytes),
  }))
  .describe('Kernel (ctnetlink) interface.');

const cacheEntries = z.int().min(LIMITS.cacheEntries.min).max(LIMITS.cacheEntries.max);

const cacheSchema = z
  .strictObject({
    internalLimit: cacheEntries.default(DEFAULTS.cache.internalLimit).describe('Most entries for local connections.'),
    externalLimit: cacheEntries.default(DEFAULTS.cache.externalLimit).describe('Most entries learned from peers.'),
  })
  .describe('In-memory connection caches.');

const controlSchema = z
  .strictObject({
    socket: unixSocketPath.default(DEFAULTS.control.socket).describe('Unix socket of the control interface.'),
    mode: z
      .string({
        // YAML 1.2 reads an unquoted 0600 as the decimal number 600, so say how to fix it.
        error: (issue) =>
          typeof issue.input === 'number'
            ? `expected a quoted octal string like '0600', got number ${issue.input} (YAML reads an unquoted 0600 as a number)`
            : undefined,
      })
      .regex(/^0?[0-7]{3}$/, { error: expected("an octal permission string like '0600'") })
      .default(DEFAULTS.control.mode)
      .describe("Permissions of the socket as a quoted octal string, e.g. '0660'."),
  })
  .describe('Local control socket used by the ctsyncd CLI.');

const failoverSchema = z
  .strictObject({
    purgeTimeoutSeconds: z
      .int()
      .min(LIMITS.purgeTimeoutSeconds.min)
      .max(LIMITS.purgeTimeoutSeconds.max)
      .default(DEFAULTS.failover.purgeTimeoutSeconds)
      .describe(
        "purge-timeout (-t) shortens the kernel timeouts of connections this node does not own to this many seconds (conntrackd's PurgeTimeout).",
      ),
    inject: z
      .boolean()
      .default(DEFAULTS.failover.inject)
      .describe(
        "Inject mode (conntrackd's DisableExternalCache): peers' entries go straight into this node's kernel, so a failover needs no commit.",
      ),
    trackFile: absolutePath
      .optional()
      .describe(
        "keepalived track_file this node writes: 1 while its external cache is not in sync with its peers, 0 once it is. Lowers the VRRP priority of a node that has no state.",
      ),
    notifyFifo: absolutePath
      .optional()
      .describe("keepalived notify_fifo the daemon reads itself and runs the failover sequence from, in keepalived's order."),
    vrrpName: z
      .string()
      .min(1)
      .optional()
      .describe('The vrrp_sync_group or vrrp_instance whose state notifyFifo follows; default: any group, else any instance.'),
  })
  .describe('Commit, purge, inject mode and keepalived integration.');

const schedulerSchema = z
  .strictObject({
    policy: z
      .enum(['fifo', 'rr', 'other'])
      .describe(
        "conntrackd's Scheduler, set on every thread at start: fifo (SCHED_FIFO), rr (SCHED_RR) or other (SCHED_OTHER). Needs CAP_SYS_NICE; a refusal is a warning. Without process.scheduler the policy is the inherited one (the unit's CPUSchedulingPolicy=).",
      ),
    priority: z
      .int()
      .min(0)
      .max(LIMITS.realtimePriority.max)
      .optional()
      .describe(
        `Real-time priority ${LIMITS.realtimePriority.min}..${LIMITS.realtimePriority.max} for fifo and rr (default ${LIMITS.realtimePriority.max}, conntrackd's); 0 or absent for other.`,
      ),
  })
  .superRefine((sch, ctx) => {
    if (sch.policy === 'other' ? (sch.priority ?? 0) !== 0 : sch.priority === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['priority'],
        input: sch.priority,
        message:
          sch.policy === 'other'
            ? 'must be 0 (or absent) with policy other'
            : `must be ${LIMITS.realtimePriority.min}..${LIMITS.realtimePriority.max} with policy ${sch.policy}`,
      });
    }
  })
  .transform((sch) => ({
    policy: sch.policy,
    priority: sch.priority ?? (sch.policy === 'other' ? 0 : LIMITS.realtimePriority.max),
  }))
  .describe(
    "conntrackd's Scheduler: the CPU scheduling policy and priority the daemon sets on all its threads at start (sched_setscheduler). Absent: left as inherited (e.g. from the systemd unit's CPUSchedulingPolicy=). Needs CAP_SYS_NICE for fifo and rr.",
  );

const processSchema = z
  .strictObject({
    scheduler: schedulerSchema.optional(),
  })
  .describe('The daemon process itself.');

/** The conntrack events a flow log can record, in the order they happen. */
export const FLOWLOG_EVENTS = ['new', 'update', 'destroy'] as const;
export type FlowlogEvent = (typeof FLOWLOG_EVENTS)[number];

const rotateSchema = z
  .strictObject({
    maxBytes: z
      .int()
      .min(LIMITS.flowlogRotateBytes.min)
      .max(LIMITS.flowlogRotateBytes.max)
      .describe('Rotate when the file reaches this many bytes: it becomes FILE.1.gz (gzip), older ones move up.'),
    keep: z
      .int()
      .min(LIMITS.flowlogRotateKeep.min)
      .max(LIMITS.flowlogRotateKeep.max)
      .default(DEFAULTS.flowlog.rotateKeep)
      .describe('Rotated files kept, FILE.1.gz (newest) to FILE.KEEP.gz; the oldest is removed.'),
  })
  .describe("Size-based rotation by the daemon itself. Leave it out when logrotate rotates the file (its postrotate sends SIGUSR1).");

const flowlogFileSchema = z
  .strictObject({
    path: absolutePath.describe('The JSON-lines flow log, appended to; reopened on SIGUSR1 (after logrotate moved it).'),
    durability: z
      .enum(['buffered', 'fsync'])
      .default(DEFAULTS.flowlog.durability)
      .describe(
        'buffered: lines are written at most flushIntervalMs after their event, and a power loss can lose that much. fsync: each batch of lines is written and fsync()ed before the next, so what was logged survives a crash; costs a disk flush per batch.',
      ),
    flushIntervalMs: z
      .int()
      .min(LIMITS.flowlogFlushMs.min)
      .max(LIMITS.flowlogFlushMs.max)
      .default(DEFAULTS.flowlog.flushIntervalMs)
      .describe('buffered: longest wait, in milliseconds, between an event and the write of its line.'),
    rotate: rotateSchema.optional(),
  })
  .describe('The flow log file: one JSON object per line (the record is described in README, "Flow log").');

const flowlogIpfixSchema = z
  .strictObject({
    collector: z
      .string()
      .refine((text) => parseHostPort(text) !== undefined, {
        error: expected('host:port, e.g. 192.0.2.10:4739 or [2001:db8::10]:4739'),
      })
      .describe("The IPFIX collector's host:port, over UDP (4739 is IPFIX's port; nfcapd listens on its -p); IPv6 in brackets."),
    observationDomainId: z
      .int()
      .min(0)
      .max(LIMITS.ipfixDomainIdMax)
      .default(DEFAULTS.flowlog.ipfix.observationDomainId)
      .describe('The observation domain id in every message: tells this firewall\'s flows apart from others sent from the same address.'),
    templateRefreshSeconds: z
      .int()
      .min(LIMITS.ipfixTemplateRefreshSeconds.min)
      .max(LIMITS.ipfixTemplateRefreshSeconds.max)
      .default(DEFAULTS.flowlog.ipfix.templateRefreshSeconds)
      .describe('Seconds between two sendings of the templates (RFC 7011 8.4: over UDP they are sent again, for a collector that restarted).'),
    mtu: z
      .int()
      .min(LIMITS.ipfixMtuBytes.min)
      .max(LIMITS.ipfixMtuBytes.max)
      .default(DEFAULTS.flowlog.ipfix.mtuBytes)
      .describe('The path MTU to the collector, in bytes: a message is at most this less the IP and UDP headers; records are split across messages to fit.'),
  })
  .describe('IPFIX export (RFC 7011) of NAT sessions as they are created and of finished flows, to a collector over UDP (README, "Flow log").');

export { SYSLOG_FACILITIES };
export type SyslogFacility = keyof typeof SYSLOG_FACILITIES;
const SYSLOG_FACILITY_NAMES = Object.keys(SYSLOG_FACILITIES) as [SyslogFacility, ...SyslogFacility[]];

const flowlogSyslogSchema = z
  .strictObject({
    facility: z
      .enum(SYSLOG_FACILITY_NAMES)
      .default(DEFAULTS.flowlog.syslog.facility)
      .describe('The syslog facility of the records (severity info).'),
    path: unixSocketPath
      .default(DEFAULTS.flowlog.syslog.path)
      .describe("The local syslog daemon's Unix datagram socket."),
    appName: z
      .string()
      .regex(/^[!-~]{1,48}$/, { error: expected('1-48 printable ASCII characters without spaces (RFC 5424 APP-NAME)') })
      .default(DEFAULTS.flowlog.syslog.appName)
      .describe('The APP-NAME of every message (RFC 5424).'),
  })
  .describe(
    'syslog output: one RFC 5424 message per record (the JSON record as its text, the event as its MSGID) to the local socket. Never waits: a message the socket has no room for is dropped and counted.',
  );

const flowlogSchema = z
  .strictObject({
    events: z
      .array(z.enum(FLOWLOG_EVENTS))
      .min(1, { error: 'an empty list would log nothing; leave flowlog out instead' })
      .default([...DEFAULTS.flowlog.events])
      .describe('Which conntrack events are logged: any of new, update, destroy.'),
    queueBytes: z
      .int()
      .min(LIMITS.flowlogQueueBytes.min)
      .max(LIMITS.flowlogQueueBytes.max)
      .default(DEFAULTS.flowlog.queueBytes)
      .describe(
        'Bytes of raw events waiting for the writer. The flow log never slows replication: an event that does not fit is dropped and counted (ctsyncd_flowlog_dropped_total, stats flowlog.dropped).',
      ),
    file: flowlogFileSchema.optional(),
    ipfix: flowlogIpfixSchema.optional(),
    syslog: flowlogSyslogSchema.optional(),
  })
  .superRefine((fl, ctx) => {
    if (fl.file === undefined && fl.ipfix === undefined && fl.syslog === undefined) {
      ctx.addIssue({ code: 'custom', path: ['file'], input: undefined, message: 'required: expected file, ipfix, syslog or several of them' });
    }
  })
  .describe(
    "Flow and NAT logging (conntrackd's Stats mode): a record per conntrack event of the connections the filter passes, next to sync or, without a sync section, alone; to a file, syslog, an IPFIX collector, or several of them.",
  );

const logSchema = z
  .strictObject({
    level: z.enum(LOG_LEVELS).default(DEFAULTS.log.level).describe('Least severe level that is logged.'),
    format: z.enum(['text', 'json']).default(DEFAULTS.log.format).describe('One line per record, plain or JSON.'),
  })
  .describe('Logging.');

const metricsSchema = z
  .strictObject({
    enabled: z.boolean().default(DEFAULTS.metrics.enabled).describe('Serve Prometheus metrics over HTTP.'),
    listen: z
      .string()
      .refine((text) => parseHostPort(text) !== undefined, {
        error: expected('host:port, e.g. 127.0.0.1:9469 or [::1]:9469'),
      })
      .default(DEFAULTS.metrics.listen)
      .describe('host:port to listen on; IPv6 in brackets, e.g. [::1]:9469.'),
  })
  .describe('Prometheus metrics endpoint.');

export const configSchema = z
  .strictObject({
    node: nodeSchema,
    cluster: clusterSchema.optional(),
    sync: syncSchema.optional(),
    filter: filterSchema.prefault({}),
    kernel: kernelSchema.prefault({}),
    cache: cacheSchema.prefault({}),
    failover: failoverSchema.prefault({}),
    control: controlSchema.prefault({}),
    process: processSchema.prefault({}),
    log: logSchema.prefault({}),
    metrics: metricsSchema.prefault({}),
    flowlog: flowlogSchema.optional(),
  })
  .superRefine((cfg, ctx) => {
    // A node replicates, logs flows (conntrackd's Stats mode), or both.
    if (cfg.sync === undefined && cfg.flowlog === undefined) {
      ctx.addIssue({ code: 'custom', path: ['sync'], input: undefined, message: 'required: expected sync, flowlog or both' });
    }
    if (cfg.sync !== undefined && cfg.cluster === undefined) {
      ctx.addIssue({ code: 'custom', path: ['cluster'], input: undefined, message: 'required with sync: expected a mapping with at least id' });
    }
    // Cross-section: the peers cluster.nodes names (all but this node) must fit in maxNodes and be at least one.
    if (cfg.cluster === undefined) return;
    const nodes = cfg.cluster.nodes;
    if (nodes === undefined) return;
    const peers = nodes.filter((id) => id !== cfg.node.id).length;
    if (peers === 0) {
      ctx.addIssue({ code: 'custom', path: ['cluster', 'nodes'], input: nodes, message: `names no node but this one (${cfg.node.id}): no peer could ever be heard` });
    } else if (peers > cfg.cluster.maxNodes) {
      ctx.addIssue({
        code: 'custom',
        path: ['cluster', 'nodes'],
        input: nodes,
        message: `names ${peers} peers, more than cluster.maxNodes (${cfg.cluster.maxNodes})`,
      });
    }
  })
  .meta({
    title: 'ctsyncd configuration',
    description: 'Configuration of ctsyncd, the conntrack state sync daemon.',
    // What the superRefine above enforces, for editors.
    anyOf: [{ required: ['sync'] }, { required: ['flowlog'] }],
    dependentRequired: { sync: ['cluster'] },
  });

/** The resolved configuration: every default applied, every key present. */
export type Config = z.output<typeof configSchema>;
/** What may be written in the YAML file. */
export type ConfigInput = z.input<typeof configSchema>;
export type SyncConfig = NonNullable<Config['sync']>;
export type ClusterConfig = NonNullable<Config['cluster']>;
export type FlowlogConfig = NonNullable<Config['flowlog']>;
export type FilterConfig = Config['filter'];

/** JSON Schema (draft 2020-12) of the file as written, for editors; generated from configSchema. */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, { io: 'input', target: 'draft-2020-12' });
}
