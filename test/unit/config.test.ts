import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { isMulticast, networkOf } from '../../src/common/address.js';
import {
  type Config,
  type SyncConfig,
  ConfigError,
  configJsonSchema,
  DEFAULTS,
  isConfigError,
  loadConfig,
  parseConfig,
  parseHostPort,
} from '../../src/config/index.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FILE = 'test.yaml';

/** Joins lines so a case's line numbers can be read off its array index (+1). */
const y = (...lines: string[]): string => `${lines.join('\n')}\n`;

/** The smallest valid config with sync as a block map: reliability cases append from line 5 on. */
const REL = ['node: { id: fw1 }', 'cluster: { id: 1 }', 'sync:', '  auth: none', '  multicast: { interface: sync0 }'];

/** Three lines: the smallest valid config. Cases append from line 4 on. */
const MINIMAL = ['node: { id: fw1 }', 'cluster: { id: 1 }', 'sync: { multicast: { interface: sync0 }, auth: none }'];

/** Spelled out rather than derived from DEFAULTS so a changed default fails here. */
const RELIABILITY_RESOLVED: SyncConfig['reliability'] = {
  ackWindow: 300,
  ackDelayMs: 20,
  nackRetryMs: 50,
  nackRetryMaxMs: 1000,
  retransmitMs: 200,
  retransmitMaxMs: 2000,
  resendQueueSize: 131072,
  aliveIntervalMs: 1000,
  peerTimeoutMs: 3500,
  refreshIntervalMs: 60000,
  startupSyncWaitMs: 2000,
  seqsPerEpoch: 1073741824,
};

const MINIMAL_RESOLVED: Config = {
  node: { id: 'fw1', stateDir: '/var/lib/ctsyncd' },
  cluster: { id: 1, maxNodes: 16, pruneAfterMs: 60000 },
  sync: {
    protocol: 'ctsyncd',
    mode: 'ftfw',
    transport: 'multicast',
    mtu: 1472,
    backupLinks: [],
    multicast: {
      group: '225.0.0.50',
      port: 3780,
      interface: 'sync0',
      sendBufferBytes: 4194304,
      receiveBufferBytes: 4194304,
    },
    udp: undefined,
    reliability: RELIABILITY_RESOLVED,
    auth: null,
  },
  filter: {
    protocols: { ignore: [] },
    addresses: { ignore: [] },
    tcpStates: { ignore: [] },
    stripAttributes: [],
    expectations: 'all',
  },
  kernel: { netlinkBufferBytes: 8388608, filterEvents: true, netlinkBufferMaxBytes: 268435456, eventsReliable: false, eventCoalesceMs: 1 },
  cache: { internalLimit: 262144, externalLimit: 262144 },
  failover: { purgeTimeoutSeconds: 60, inject: false },
  control: { socket: '/run/ctsyncd/ctsyncd.sock', mode: '0600' },
  process: {},
  log: { level: 'info', format: 'json' },
  metrics: { enabled: true, listen: '127.0.0.1:9469' },
};

const CONTRACT = y(
  'node: { id: fw1 }                  # unique in the cluster',
  'cluster: { id: 1 }',
  'sync:',
  '  mode: ftfw                       # ftfw | notrack',
  '  transport: multicast             # multicast | udp',
  '  multicast: { group: 225.0.0.50, port: 3780, interface: sync0 }',
  '  udp: { bind: 10.99.1.1, port: 3780, peers: [10.99.1.2] }',
  '  auth: { keyFile: /etc/ctsyncd/sync.key }   # or: none',
  'kernel: { netlinkBufferBytes: 8388608 }',
  'control: { socket: /run/ctsyncd/ctsyncd.sock }',
  'metrics: { listen: 127.0.0.1:9469 }',
  'filter:',
  '  protocols: { accept: [tcp, udp] }',
  '  addresses: { ignore: [127.0.0.0/8, ::1/128] }',
  '  tcpStates: { accept: [ESTABLISHED] }',
  '  stripAttributes: [labels]',
);

const CONTRACT_RESOLVED: Config = {
  ...MINIMAL_RESOLVED,
  sync: {
    protocol: 'ctsyncd',
    mode: 'ftfw',
    transport: 'multicast',
    mtu: 1472,
    backupLinks: [],
    multicast: {
      group: '225.0.0.50',
      port: 3780,
      interface: 'sync0',
      sendBufferBytes: 4194304,
      receiveBufferBytes: 4194304,
    },
    udp: {
      bind: '10.99.1.1',
      port: 3780,
      peers: ['10.99.1.2'],
      sendBufferBytes: 4194304,
      receiveBufferBytes: 4194304,
    },
    reliability: RELIABILITY_RESOLVED,
    auth: { keyFiles: ['/etc/ctsyncd/sync.key'] },
  },
  filter: {
    protocols: { accept: ['tcp', 'udp'] },
    addresses: { ignore: ['127.0.0.0/8', '::1/128'] },
    tcpStates: { accept: ['ESTABLISHED'] },
    stripAttributes: ['labels'],
    expectations: 'all',
  },
};

interface ExpectedIssue {
  line: number;
  column: number;
  path: string;
  messageRegex: RegExp;
}

interface Case {
  name: string;
  yaml: string;
  /** The whole resolved config (toEqual). */
  expect?: Config;
  /** Checked with toMatchObject when the whole config would only repeat MINIMAL_RESOLVED. */
  partial?: Record<string, unknown>;
  /** The only issue reported. */
  error?: ExpectedIssue;
  /** Several issues, in reported order. */
  errors?: ExpectedIssue[];
}

const cases: Case[] = [
  // --- valid configs -------------------------------------------------------
  { name: 'minimal config gets every default', yaml: y(...MINIMAL), expect: MINIMAL_RESOLVED },
  { name: 'contract config parses exactly', yaml: CONTRACT, expect: CONTRACT_RESOLVED },
  {
    name: 'udp transport with IPv6 peers, the multicast section may be absent',
    yaml: y(
      'node: { id: fw-1.a_b }',
      'cluster: { id: 4294967295 }',
      'sync:',
      '  mode: notrack',
      '  transport: udp',
      '  mtu: 1452',
      '  udp: { bind: "2001:db8::1", port: 4000, peers: ["2001:db8::2", "2001:db8::3"], receiveBufferBytes: 4096 }',
      '  auth: none',
    ),
    expect: {
      ...MINIMAL_RESOLVED,
      node: { id: 'fw-1.a_b', stateDir: '/var/lib/ctsyncd' },
      cluster: { id: 4294967295, maxNodes: 16, pruneAfterMs: 60000 },
      sync: {
        protocol: 'ctsyncd',
        mode: 'notrack',
        transport: 'udp',
        mtu: 1452,
        backupLinks: [],
        udp: {
          bind: '2001:db8::1',
          port: 4000,
          peers: ['2001:db8::2', '2001:db8::3'],
          sendBufferBytes: 4194304,
          receiveBufferBytes: 4096,
        },
        multicast: undefined,
        reliability: RELIABILITY_RESOLVED,
        auth: null,
      },
    },
  },
  {
    name: 'IPv6 multicast group',
    yaml: y(...MINIMAL.slice(0, 2), 'sync: { multicast: { group: "ff02::1:50", interface: sync0 }, auth: none }'),
    partial: { sync: { multicast: { group: 'ff02::1:50', port: 3780 } } },
  },
  {
    name: 'keyFiles for rotation',
    yaml: y(
      ...MINIMAL.slice(0, 2),
      'sync:',
      '  multicast: { interface: sync0 }',
      '  auth: { keyFiles: [/k/new, /k/old] }',
    ),
    partial: { sync: { auth: { keyFiles: ['/k/new', '/k/old'] } } },
  },
  {
    name: 'operator sections with non-default values',
    yaml: y(
      ...MINIMAL,
      'cache: { internalLimit: 1, externalLimit: 16777216 }',
      "control: { socket: /run/x.sock, mode: '660' }",
      'log: { level: debug, format: json }',
      'metrics: { enabled: false, listen: "[::1]:9100" }',
      'kernel: { netlinkBufferBytes: 1073741824, filterEvents: false }',
      'filter: { addresses: { accept: [10.99.0.0/16, "2001:db8::/32", 192.0.2.7] }, tcpStates: { ignore: [SYN_SENT, SYN_SENT2] } }',
    ),
    partial: {
      cache: { internalLimit: 1, externalLimit: 16777216 },
      control: { socket: '/run/x.sock', mode: '660' },
      log: { level: 'debug', format: 'json' },
      metrics: { enabled: false, listen: '[::1]:9100' },
      kernel: { netlinkBufferBytes: 1073741824, filterEvents: false, netlinkBufferMaxBytes: 1073741824, eventsReliable: false },
      filter: {
        protocols: { ignore: [] },
        addresses: { accept: ['10.99.0.0/16', '2001:db8::/32', '192.0.2.7'] },
        tcpStates: { ignore: ['SYN_SENT', 'SYN_SENT2'] },
      },
    },
  },
  {
    name: 'a metrics host name is allowed',
    yaml: y(...MINIMAL, 'metrics: { listen: "localhost:9469" }'),
    partial: { metrics: { listen: 'localhost:9469' } },
  },

  // --- unknown keys: positioned at the key -------------------------------
  {
    name: 'unknown top-level key',
    yaml: y(...MINIMAL, 'syncc: {}'),
    error: { line: 4, column: 1, path: 'syncc', messageRegex: /unknown key "syncc", did you mean "sync"\?/ },
  },
  {
    name: 'unknown nested key',
    yaml: y(...MINIMAL.slice(0, 2), 'sync:', '  multicast:', '    interface: sync0', '    ttl: 1', '  auth: none'),
    error: {
      line: 6,
      column: 5,
      path: 'sync.multicast.ttl',
      messageRegex: /unknown key "ttl"; expected one of: group, port/,
    },
  },
  {
    name: 'unknown key in a flow map, with a suggestion',
    yaml: y(...MINIMAL, 'log: { levl: info }'),
    error: { line: 4, column: 8, path: 'log.levl', messageRegex: /did you mean "level"/ },
  },
  {
    name: 'sync.channels is not supported yet',
    yaml: y(...MINIMAL.slice(0, 2), 'sync:', '  multicast: { interface: sync0 }', '  channels: []', '  auth: none'),
    error: { line: 5, column: 3, path: 'sync.channels', messageRegex: /unknown key "channels"/ },
  },

  // --- wrong types and ranges: positioned at the value -------------------
  {
    name: 'port as a string',
    yaml: y(...MINIMAL.slice(0, 2), 'sync:', '  multicast:', '    interface: sync0', '    port: "3780"', '  auth: none'),
    error: {
      line: 6,
      column: 11,
      path: 'sync.multicast.port',
      messageRegex: /expected an integer, got string "3780" \(remove the quotes\)/,
    },
  },
  {
    name: 'port out of range',
    yaml: y(...MINIMAL.slice(0, 2), 'sync: { multicast: { interface: sync0, port: 65536 }, auth: none }'),
    error: {
      line: 3,
      column: 46,
      path: 'sync.multicast.port',
      messageRegex: /expected at most 65535, got number 65536/,
    },
  },
  {
    name: 'port zero',
    yaml: y(...MINIMAL.slice(0, 2), 'sync: { multicast: { interface: sync0, port: 0 }, auth: none }'),
    error: { line: 3, column: 46, path: 'sync.multicast.port', messageRegex: /expected at least 1/ },
  },
  {
    name: 'numeric node id must be quoted',
    yaml: y('node: { id: 1 }', ...MINIMAL.slice(1)),
    error: { line: 1, column: 13, path: 'node.id', messageRegex: /expected a string, got number 1 \(quote it/ },
  },
  {
    name: 'node id with a space',
    yaml: y('node: { id: "fw 1" }', ...MINIMAL.slice(1)),
    error: { line: 1, column: 13, path: 'node.id', messageRegex: /expected 1-64 characters from A-Z a-z 0-9 _ \. -/ },
  },
  {
    name: 'cluster.nodes and maxNodes',
    yaml: y(MINIMAL[0]!, 'cluster: { id: 1, nodes: [fw1, fw2, fw3], maxNodes: 2, pruneAfterMs: 5000 }', MINIMAL[2]!),
    partial: { cluster: { id: 1, nodes: ['fw1', 'fw2', 'fw3'], maxNodes: 2, pruneAfterMs: 5000 } },
  },
  {
    name: 'cluster.nodes naming a node twice',
    yaml: y(MINIMAL[0]!, 'cluster: { id: 1, nodes: [fw1, fw2, fw2] }', MINIMAL[2]!),
    error: { line: 2, column: 37, path: 'cluster.nodes[2]', messageRegex: /duplicate node id fw2/ },
  },
  {
    name: 'cluster.nodes naming only this node',
    yaml: y(MINIMAL[0]!, 'cluster: { id: 1, nodes: [fw1] }', MINIMAL[2]!),
    error: { line: 2, column: 26, path: 'cluster.nodes', messageRegex: /names no node but this one \(fw1\)/ },
  },
  {
    name: 'cluster.nodes with more peers than maxNodes',
    yaml: y(MINIMAL[0]!, 'cluster: { id: 1, nodes: [fw1, fw2, fw3], maxNodes: 1 }', MINIMAL[2]!),
    error: { line: 2, column: 26, path: 'cluster.nodes', messageRegex: /names 2 peers, more than cluster.maxNodes \(1\)/ },
  },
  {
    name: 'cluster.maxNodes out of range',
    yaml: y(MINIMAL[0]!, 'cluster: { id: 1, maxNodes: 0 }', MINIMAL[2]!),
    error: { line: 2, column: 29, path: 'cluster.maxNodes', messageRegex: /at least 1/ },
  },
  {
    name: 'cluster id beyond 32 bits',
    yaml: y(MINIMAL[0]!, 'cluster: { id: 4294967296 }', MINIMAL[2]!),
    error: { line: 2, column: 16, path: 'cluster.id', messageRegex: /at most 4294967295/ },
  },
  {
    name: 'mtu must be an integer',
    yaml: y(...MINIMAL.slice(0, 2), 'sync: { mtu: 1472.5, multicast: { interface: sync0 }, auth: none }'),
    error: { line: 3, column: 14, path: 'sync.mtu', messageRegex: /expected an integer, got number 1472.5/ },
  },
  {
    name: 'buffer size above the sane maximum',
    yaml: y(...MINIMAL, 'kernel:', '  netlinkBufferBytes: 1073741825'),
    error: { line: 5, column: 23, path: 'kernel.netlinkBufferBytes', messageRegex: /at most 1073741824/ },
  },
  {
    name: 'buffer size zero',
    yaml: y(...MINIMAL.slice(0, 2), 'sync: { multicast: { interface: sync0, sendBufferBytes: 0 }, auth: none }'),
    error: { line: 3, column: 57, path: 'sync.multicast.sendBufferBytes', messageRegex: /at least 4096/ },
  },
  {
    name: 'enum value',
    yaml: y(...MINIMAL.slice(0, 2), 'sync: { mode: alarm, multicast: { interface: sync0 }, auth: none }'),
    error: {
      line: 3,
      column: 15,
      path: 'sync.mode',
      messageRegex: /expected one of "ftfw", "notrack", got string "alarm"/,
    },
  },
  {
    name: 'yes is not a boolean in YAML 1.2',
    yaml: y(...MINIMAL, 'metrics: { enabled: yes }'),
    error: { line: 4, column: 21, path: 'metrics.enabled', messageRegex: /expected true or false, got string "yes"/ },
  },
  {
    name: 'a section given as a scalar',
    yaml: y(...MINIMAL, 'cache: 5'),
    error: { line: 4, column: 8, path: 'cache', messageRegex: /expected a mapping, got number 5/ },
  },
  {
    name: 'an empty section',
    yaml: y('node:', ...MINIMAL.slice(1)),
    error: { line: 1, column: 6, path: 'node', messageRegex: /expected a mapping, got an empty value/ },
  },

  // --- required fields: positioned at the parent map ---------------------
  {
    name: 'missing node.id',
    yaml: y('node: {}', ...MINIMAL.slice(1)),
    error: { line: 1, column: 7, path: 'node.id', messageRegex: /required: expected a string/ },
  },
  {
    name: 'missing node.id in a block map is reported at the map, next to the stray key',
    yaml: y('node:', '  name: fw1', ...MINIMAL.slice(1)),
    errors: [
      { line: 2, column: 3, path: 'node.id', messageRegex: /required/ },
      { line: 2, column: 3, path: 'node.name', messageRegex: /unknown key "name"/ },
    ],
  },
  {
    name: 'missing node section',
    yaml: y(...MINIMAL.slice(1)),
    error: { line: 1, column: 1, path: 'node', messageRegex: /required: expected a mapping/ },
  },
  {
    name: 'missing cluster.id (there is no default)',
    yaml: y(MINIMAL[0]!, 'cluster: {}', MINIMAL[2]!),
    error: { line: 2, column: 10, path: 'cluster.id', messageRegex: /required: expected an integer/ },
  },
  {
    name: 'multicast needs an interface',
    yaml: y(...MINIMAL.slice(0, 2), 'sync:', '  multicast:', '    group: 225.0.0.51', '  auth: none'),
    error: { line: 5, column: 5, path: 'sync.multicast.interface', messageRegex: /required/ },
  },
  {
    name: 'empty file',
    yaml: '',
    error: { line: 1, column: 1, path: '', messageRegex: /expected a mapping, got an empty value/ },
  },
  {
    name: 'a list instead of a mapping',
    yaml: y('- node'),
    error: { line: 1, column: 1, path: '', messageRegex: /expected a mapping, got a list/ },
  },

  // --- transport sections --------------------------------------------------
  {
    name: 'multicast transport without a multicast section',
    yaml: y(...MINIMAL.slice(0, 2), 'sync:', '  mode: ftfw', '  auth: none'),
    error: { line: 4, column: 3, path: 'sync.multicast', messageRegex: /required when transport is multicast/ },
  },
  {
    name: 'udp transport without a udp section',
    yaml: y(...MINIMAL.slice(0, 2), 'sync: { transport: udp, multicast: { interface: sync0 }, auth: none }'),
    error: { line: 3, column: 7, path: 'sync.udp', messageRegex: /required when transport is udp/ },
  },
  {
    name: 'udp needs bind and peers',
    yaml: y(...MINIMAL.slice(0, 2), 'sync: { transport: udp, udp: { port: 1 }, auth: none }'),
    errors: [
      { line: 3, column: 30, path: 'sync.udp.bind', messageRegex: /required: expected an IPv4 or IPv6 address/ },
      { line: 3, column: 30, path: 'sync.udp.peers', messageRegex: /required: expected a list/ },
    ],
  },
  {
    name: 'udp peer family must match bind',
    yaml: y(
      ...MINIMAL.slice(0, 2),
      'sync:',
      '  transport: udp',
      '  udp:',
      '    bind: 10.99.1.1',
      '    peers: [10.99.1.2, "::1"]',
      '  auth: none',
    ),
    error: {
      line: 7,
      column: 24,
      path: 'sync.udp.peers[1]',
      messageRegex: /expected an IPv4 address like bind, got ::1/,
    },
  },
  {
    name: 'udp peers must be distinct',
    yaml: y(
      ...MINIMAL.slice(0, 2),
      'sync:',
      '  transport: udp',
      '  udp:',
      '    bind: "2001:db8::1"',
      '    peers:',
      '      - 2001:db8::2',
      '      - 2001:DB8:0::2',
      '  auth: none',
    ),
    error: { line: 9, column: 9, path: 'sync.udp.peers[1]', messageRegex: /duplicate peer/ },
  },
  {
    name: 'not an IP address',
    yaml: y(
      ...MINIMAL.slice(0, 2),
      'sync:',
      '  transport: udp',
      '  udp:',
      '    bind: fw1.example',
      '    peers: [10.99.1.2]',
      '  auth: none',
    ),
    error: {
      line: 6,
      column: 11,
      path: 'sync.udp.bind',
      messageRegex: /expected an IPv4 or IPv6 address, got string "fw1.example"/,
    },
  },
  {
    name: 'non-multicast group',
    yaml: y(...MINIMAL.slice(0, 2), 'sync:', '  multicast:', '    interface: sync0', '    group: 10.99.1.255', '  auth: none'),
    error: {
      line: 6,
      column: 12,
      path: 'sync.multicast.group',
      messageRegex: /expected a multicast group \(224\.0\.0\.0\/4 or ff00::\/8\), got string "10\.99\.1\.255"/,
    },
  },
  {
    name: 'non-multicast IPv6 group',
    yaml: y(...MINIMAL.slice(0, 2), 'sync: { multicast: { interface: sync0, group: "fe80::1" }, auth: none }'),
    error: { line: 3, column: 47, path: 'sync.multicast.group', messageRegex: /expected a multicast group/ },
  },
  {
    name: 'interface name longer than IFNAMSIZ allows',
    yaml: y(...MINIMAL.slice(0, 2), 'sync: { multicast: { interface: a-very-long-ifname }, auth: none }'),
    error: { line: 3, column: 33, path: 'sync.multicast.interface', messageRegex: /1-15 characters/ },
  },

  // --- relations between timers: positioned at the value of the later field --
  {
    name: 'peerTimeoutMs equal to aliveIntervalMs (idle peers would flap)',
    yaml: y(...REL, '  reliability:', '    aliveIntervalMs: 1000', '    peerTimeoutMs: 1000'),
    error: { line: 8, column: 20, path: 'sync.reliability.peerTimeoutMs', messageRegex: /must be longer than aliveIntervalMs \(1000\)/ },
  },
  {
    name: 'peerTimeoutMs one longer than aliveIntervalMs',
    yaml: y(...REL, '  reliability: { aliveIntervalMs: 1000, peerTimeoutMs: 1001 }'),
    partial: { sync: { reliability: { aliveIntervalMs: 1000, peerTimeoutMs: 1001 } } },
  },
  {
    name: 'aliveIntervalMs raised past the default peerTimeoutMs (positioned at the value given)',
    yaml: y(...REL, '  reliability: { aliveIntervalMs: 3500 }'),
    error: { line: 6, column: 16, path: 'sync.reliability.peerTimeoutMs', messageRegex: /must be longer than aliveIntervalMs \(3500\)/ },
  },
  {
    name: 'retransmitMaxMs one below retransmitMs',
    yaml: y(...REL, '  reliability:', '    retransmitMs: 300', '    retransmitMaxMs: 299'),
    error: { line: 8, column: 22, path: 'sync.reliability.retransmitMaxMs', messageRegex: /must be at least retransmitMs \(300\)/ },
  },
  {
    name: 'retransmitMaxMs equal to retransmitMs (no backoff) is allowed',
    yaml: y(...REL, '  reliability: { retransmitMs: 300, retransmitMaxMs: 300 }'),
    partial: { sync: { reliability: { retransmitMs: 300, retransmitMaxMs: 300 } } },
  },
  {
    name: 'nackRetryMaxMs one below nackRetryMs',
    yaml: y(...REL, '  reliability:', '    nackRetryMs: 80', '    nackRetryMaxMs: 79'),
    error: { line: 8, column: 21, path: 'sync.reliability.nackRetryMaxMs', messageRegex: /must be at least nackRetryMs \(80\)/ },
  },
  {
    name: 'nackRetryMaxMs equal to nackRetryMs is allowed',
    yaml: y(...REL, '  reliability: { nackRetryMs: 80, nackRetryMaxMs: 80 }'),
    partial: { sync: { reliability: { nackRetryMs: 80, nackRetryMaxMs: 80 } } },
  },
  {
    name: 'ackDelayMs equal to retransmitMs (the sender resends what is about to be acked)',
    yaml: y(...REL, '  reliability:', '    retransmitMs: 100', '    ackDelayMs: 100'),
    error: { line: 8, column: 17, path: 'sync.reliability.ackDelayMs', messageRegex: /must be shorter than retransmitMs \(100\)/ },
  },
  {
    name: 'ackDelayMs one below retransmitMs',
    yaml: y(...REL, '  reliability: { retransmitMs: 100, ackDelayMs: 99 }'),
    partial: { sync: { reliability: { retransmitMs: 100, ackDelayMs: 99 } } },
  },
  {
    name: 'every broken relation at once, each at its own value',
    yaml: y(
      ...REL,
      '  reliability:',
      '    aliveIntervalMs: 5000',
      '    peerTimeoutMs: 4000',
      '    nackRetryMs: 100',
      '    nackRetryMaxMs: 50',
      '    retransmitMs: 100',
      '    retransmitMaxMs: 50',
      '    ackDelayMs: 150',
    ),
    errors: [
      { line: 8, column: 20, path: 'sync.reliability.peerTimeoutMs', messageRegex: /longer than aliveIntervalMs \(5000\)/ },
      { line: 10, column: 21, path: 'sync.reliability.nackRetryMaxMs', messageRegex: /at least nackRetryMs \(100\)/ },
      { line: 12, column: 22, path: 'sync.reliability.retransmitMaxMs', messageRegex: /at least retransmitMs \(100\)/ },
      { line: 13, column: 17, path: 'sync.reliability.ackDelayMs', messageRegex: /shorter than retransmitMs \(100\)/ },
    ],
  },

  // --- epochs ----------------------------------------------------------------
  {
    name: 'seqsPerEpoch below 1024',
    yaml: y(...REL, '  reliability:', '    seqsPerEpoch: 1023'),
    error: { line: 7, column: 19, path: 'sync.reliability.seqsPerEpoch', messageRegex: /at least 1024, got number 1023/ },
  },
  {
    name: 'seqsPerEpoch past 2^30 (comparisons within an epoch would no longer be exact)',
    yaml: y(...REL, '  reliability: { seqsPerEpoch: 1073741825 }'),
    error: { line: 6, column: 32, path: 'sync.reliability.seqsPerEpoch', messageRegex: /at most 1073741824, got number 1073741825/ },
  },
  {
    name: 'seqsPerEpoch at its lower bound',
    yaml: y(...REL, '  reliability: { seqsPerEpoch: 1024 }'),
    partial: { sync: { reliability: { seqsPerEpoch: 1024 } } },
  },

  // --- auth ---------------------------------------------------------------
  {
    name: 'keyFile and keyFiles together',
    yaml: y(
      ...MINIMAL.slice(0, 2),
      'sync:',
      '  multicast: { interface: sync0 }',
      '  auth:',
      '    keyFile: /a',
      '    keyFiles: [/b]',
    ),
    error: { line: 7, column: 5, path: 'sync.auth.keyFiles', messageRegex: /mutually exclusive/ },
  },
  {
    name: 'a sync section without auth',
    yaml: y(...MINIMAL.slice(0, 2), 'sync:', '  multicast: { interface: sync0 }'),
    error: {
      line: 4,
      column: 3,
      path: 'sync.auth',
      messageRegex: /^required: expected none, or a mapping with keyFile or keyFiles$/,
    },
  },
  {
    name: 'auth neither none nor a mapping',
    yaml: y(...MINIMAL.slice(0, 2), 'sync: { multicast: { interface: sync0 }, auth: off }'),
    error: {
      line: 3,
      column: 48,
      path: 'sync.auth',
      messageRegex: /expected none, or a mapping with keyFile or keyFiles, got string "off"/,
    },
  },
  {
    name: 'auth left empty',
    yaml: y(...MINIMAL.slice(0, 2), 'sync:', '  multicast: { interface: sync0 }', '  auth:'),
    error: { line: 5, column: 8, path: 'sync.auth', messageRegex: /got an empty value/ },
  },
  {
    name: 'auth with neither keyFile nor keyFiles',
    yaml: y(...MINIMAL.slice(0, 2), 'sync: { multicast: { interface: sync0 }, auth: {} }'),
    error: { line: 3, column: 48, path: 'sync.auth', messageRegex: /expected keyFile or keyFiles/ },
  },
  {
    name: 'more than two key files',
    yaml: y(...MINIMAL.slice(0, 2), 'sync: { multicast: { interface: sync0 }, auth: { keyFiles: [/a, /b, /c] } }'),
    error: { line: 3, column: 60, path: 'sync.auth.keyFiles', messageRegex: /expected at most 2 entries, got 3/ },
  },
  {
    name: 'relative key path',
    yaml: y(...MINIMAL.slice(0, 2), 'sync: { multicast: { interface: sync0 }, auth: { keyFile: sync.key } }'),
    error: { line: 3, column: 59, path: 'sync.auth.keyFile', messageRegex: /expected an absolute path/ },
  },

  // --- filter ---------------------------------------------------------------
  {
    name: 'accept and ignore both given',
    yaml: y(...MINIMAL, 'filter:', '  protocols:', '    accept: [tcp]', '    ignore: [udp]'),
    error: {
      line: 7,
      column: 5,
      path: 'filter.protocols.ignore',
      messageRegex: /accept and ignore are mutually exclusive/,
    },
  },
  {
    name: 'neither accept nor ignore',
    yaml: y(...MINIMAL, 'filter: { tcpStates: {} }'),
    error: { line: 4, column: 22, path: 'filter.tcpStates', messageRegex: /expected accept or ignore/ },
  },
  {
    name: 'empty accept list',
    yaml: y(...MINIMAL, 'filter: { protocols: { accept: [] } }'),
    error: { line: 4, column: 32, path: 'filter.protocols.accept', messageRegex: /would sync nothing/ },
  },
  {
    name: 'bad CIDR',
    yaml: y(...MINIMAL, 'filter:', '  addresses:', '    ignore: [10.0.0.0/8, 10.0.0.0/33]'),
    error: {
      line: 6,
      column: 26,
      path: 'filter.addresses.ignore[1]',
      messageRegex: /expected an IPv4 or IPv6 address or prefix.*got string "10\.0\.0\.0\/33"/,
    },
  },
  {
    name: 'prefix with host bits set',
    yaml: y(...MINIMAL, 'filter:', '  addresses:', '    accept:', '      - 10.99.1.1/16', '      - "2001:db8::1/64"'),
    errors: [
      { line: 7, column: 9, path: 'filter.addresses.accept[0]', messageRegex: /did you mean 10\.99\.0\.0\/16\?/ },
      { line: 8, column: 9, path: 'filter.addresses.accept[1]', messageRegex: /did you mean 2001:db8::\/64\?/ },
    ],
  },
  {
    name: 'TCP state names are upper case',
    yaml: y(...MINIMAL, 'filter: { tcpStates: { accept: [established] } }'),
    error: {
      line: 4,
      column: 33,
      path: 'filter.tcpStates.accept[0]',
      messageRegex: /expected one of "NONE", .*"SYN_SENT2", got string "established"/,
    },
  },
  {
    name: 'unknown protocol',
    yaml: y(...MINIMAL, 'filter: { protocols: { ignore: [tcp, ospf] } }'),
    error: { line: 4, column: 38, path: 'filter.protocols.ignore[1]', messageRegex: /got string "ospf"/ },
  },
  {
    name: 'unknown strip attribute',
    yaml: y(...MINIMAL, 'filter: { stripAttributes: [labels, tuple] }'),
    error: {
      line: 4,
      column: 37,
      path: 'filter.stripAttributes[1]',
      messageRegex: /expected one of "labels".*got string "tuple"/,
    },
  },

  // --- control and metrics --------------------------------------------------
  {
    name: 'unquoted octal mode',
    yaml: y(...MINIMAL, 'control:', '  mode: 0600'),
    error: {
      line: 5,
      column: 9,
      path: 'control.mode',
      messageRegex: /expected a quoted octal string like '0600', got number 600/,
    },
  },
  {
    name: 'mode with a non-octal digit',
    yaml: y(...MINIMAL, "control: { mode: '0680' }"),
    error: { line: 4, column: 18, path: 'control.mode', messageRegex: /expected an octal permission string/ },
  },
  {
    name: 'relative control socket',
    yaml: y(...MINIMAL, 'control: { socket: ctsyncd.sock }'),
    error: { line: 4, column: 20, path: 'control.socket', messageRegex: /expected an absolute path/ },
  },
  {
    name: 'control socket path too long for sun_path',
    yaml: y(...MINIMAL, `control: { socket: /${'s'.repeat(107)} }`),
    error: { line: 4, column: 20, path: 'control.socket', messageRegex: /at most 107 bytes/ },
  },
  {
    name: 'metrics listen without a port',
    yaml: y(...MINIMAL, 'metrics: { listen: 127.0.0.1 }'),
    error: { line: 4, column: 20, path: 'metrics.listen', messageRegex: /expected host:port/ },
  },
  {
    name: 'metrics listen with an unbracketed IPv6 host',
    yaml: y(...MINIMAL, 'metrics: { listen: "::1:9469" }'),
    error: { line: 4, column: 20, path: 'metrics.listen', messageRegex: /\[::1\]:9469/ },
  },

  // --- YAML syntax ------------------------------------------------------------
  {
    name: 'duplicate key',
    yaml: y(...MINIMAL, 'node: { id: fw2 }'),
    error: { line: 4, column: 1, path: 'node', messageRegex: /DUPLICATE_KEY/ },
  },
  {
    name: 'duplicate nested key',
    yaml: y(...MINIMAL.slice(0, 2), 'sync:', '  multicast:', '    interface: sync0', '    interface: sync1', '  auth: none'),
    error: { line: 6, column: 5, path: 'sync.multicast.interface', messageRegex: /unique.*DUPLICATE_KEY/ },
  },
  {
    name: 'bad indentation',
    yaml: y('node:', '    id: fw1', '  cluster: { id: 1 }'),
    error: { line: 3, column: 1, path: '', messageRegex: /BAD_INDENT/ },
  },
  {
    name: 'tab indentation',
    yaml: y(...MINIMAL, 'log:', '\tlevel: info'),
    error: { line: 5, column: 1, path: '', messageRegex: /TAB_AS_INDENT/ },
  },
  {
    name: 'unclosed flow mapping',
    yaml: y(...MINIMAL, 'log: { level: info'),
    error: { line: 5, column: 1, path: '', messageRegex: /end with a \}/ },
  },
  {
    name: 'alias expansion bomb',
    yaml: y(
      'a: &a [x, x, x, x, x, x, x, x, x]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]',
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]',
    ),
    error: { line: 1, column: 1, path: '', messageRegex: /resource exhaustion/ },
  },
  {
    name: 'two documents in one file',
    yaml: y(...MINIMAL, '---', ...MINIMAL),
    error: { line: 4, column: 1, path: '', messageRegex: /MULTIPLE_DOCS/ },
  },
];

function parseError(yaml: string): ConfigError {
  try {
    parseConfig(yaml, FILE);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

function checkIssues(err: ConfigError, expected: ExpectedIssue[]): void {
  expect(err.code).toBe('ECONFIG');
  const got = err.issues.map(({ file, line, column, path, message }) => ({ file, line, column, path, message }));
  expect(got, err.message).toHaveLength(expected.length);
  expected.forEach((want, i) => {
    const issue = got[i]!;
    expect({ file: issue.file, line: issue.line, column: issue.column, path: issue.path }, err.message).toEqual({
      file: FILE,
      line: want.line,
      column: want.column,
      path: want.path,
    });
    expect(issue.message).toMatch(want.messageRegex);
  });
}

describe('parseConfig', () => {
  it.each(cases)('$name', (c) => {
    if (c.error || c.errors) {
      checkIssues(parseError(c.yaml), c.errors ?? (c.error ? [c.error] : []));
      return;
    }
    const config = parseConfig(c.yaml, FILE);
    if (c.expect) expect(config).toEqual(c.expect);
    if (c.partial) expect(config).toMatchObject(c.partial);
  });

  it('narrows sync on transport so the chosen section needs no undefined check', () => {
    const sync = parseConfig(y(...MINIMAL), FILE).sync!;
    // Compiles only because the union is discriminated on transport.
    const iface: string = sync.transport === 'multicast' ? sync.multicast.interface : sync.udp.bind;
    expect(iface).toBe('sync0');
  });

  it('reports every issue, sorted by position, one per line of the message', () => {
    const err = parseError(
      y('node: { id: "" }', 'cluster: { id: -1 }', 'sync: { multicast: { interface: sync0, port: x }, auth: none }'),
    );
    expect(err.issues.map((i) => `${i.line}:${i.column}`)).toEqual(['1:13', '2:16', '3:46']);
    const lines = err.message.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^test\.yaml:1:13 node\.id expected 1-64 characters/);
    expect(lines[1]).toMatch(/^test\.yaml:2:16 cluster\.id expected at least 0, got number -1$/);
    expect(lines[2]).toMatch(/^test\.yaml:3:46 sync\.multicast\.port expected an integer, got string "x"$/);
    expect(err.toString()).toBe(err.message);
    expect(String(err)).toBe(err.message);
  });

  it('formats a whole-document issue with (root)', () => {
    expect(parseError('').toString()).toBe('test.yaml:1:1 (root) expected a mapping, got an empty value');
  });

  it('is an Error with a stable code', () => {
    const err = parseError('');
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('ConfigError');
    expect(isConfigError(err)).toBe(true);
    expect(isConfigError(new Error('x'))).toBe(false);
  });

  it('resolves anchors and aliases', () => {
    const { sync } = parseConfig(
      y(
        ...MINIMAL.slice(0, 2),
        'sync:',
        '  multicast: { interface: sync0, port: &port 3781 }',
        '  udp: { bind: 10.99.1.1, port: *port, peers: [10.99.1.2] }',
        '  auth: none',
      ),
      FILE,
    );
    expect(sync?.udp?.port).toBe(3781);
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reports a missing file as ECONFIG at line 0, column 0', () => {
    const file = join(dir, 'missing.yaml');
    let caught: unknown;
    try {
      loadConfig(file);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const err = caught as ConfigError;
    expect(err.code).toBe('ECONFIG');
    expect(err.issues).toEqual([{ file, line: 0, column: 0, path: '', message: expect.stringMatching(/ENOENT/) }]);
    expect(err.message).toMatch(
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:0:0 \\(root\\) cannot read config file`),
    );
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('reports a directory as unreadable', () => {
    expect(() => loadConfig(dir)).toThrow(/cannot read config file: EISDIR/);
  });

  it('names the file it read in every issue', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, y(...MINIMAL, 'bogus: 1'));
    expect(() => loadConfig(file)).toThrow(`${file}:4:1 bogus unknown key "bogus"`);
  });

  it('loads a valid file', () => {
    const file = join(dir, 'good.yaml');
    writeFileSync(file, CONTRACT);
    expect(loadConfig(file)).toEqual(CONTRACT_RESOLVED);
  });
});

describe('ctsyncd check-config and sync.auth', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctsyncd-check-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const check = async (yaml: string) => {
    const file = join(dir, 'c.yaml');
    writeFileSync(file, yaml);
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(['check-config', file], { out: (t) => out.push(t), err: (t) => err.push(t) });
    return { file, code, out, err };
  };

  it('fails a sync section without auth at its file:line:column', async () => {
    const r = await check(y('node: { id: fw1 }', 'cluster: { id: 1 }', 'sync:', '  multicast: { interface: sync0 }'));
    expect(r.code).toBe(1);
    expect(r.err).toEqual([`${r.file}:4:3 sync.auth required: expected none, or a mapping with keyFile or keyFiles`]);
  });

  it.each(['none', '{ keyFile: /etc/ctsyncd/sync.key }'])('passes auth: %s', async (auth) => {
    const r = await check(y(...MINIMAL.slice(0, 2), 'sync:', '  multicast: { interface: sync0 }', `  auth: ${auth}`));
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
  });
});

describe('shipped conntrackd.yaml', () => {
  const config = loadConfig(join(REPO_ROOT, 'conntrackd.yaml'));

  it('is valid and describes fw1 on sync0', () => {
    expect(config.node.id).toBe('fw1');
    expect(config.sync!.transport).toBe('multicast');
    expect(config.sync!.multicast).toMatchObject({ group: '225.0.0.50', interface: 'sync0' });
    expect(config.sync!.udp).toMatchObject({ bind: '10.99.1.1', peers: ['10.99.1.2'] });
  });

  it('authenticates its sync traffic', () => {
    expect(config.sync!.auth).toEqual({ keyFiles: ['/etc/ctsyncd/sync.key'] });
  });

  it('spells out the defaults it claims to', () => {
    const defaults = parseConfig(y(...MINIMAL), FILE);
    for (const section of ['kernel', 'cache', 'control', 'log', 'metrics'] as const) {
      expect(config[section], section).toEqual(defaults[section]);
    }
    expect(config.sync!.mode).toBe(DEFAULTS.sync.mode);
    expect(config.sync!.mtu).toBe(DEFAULTS.sync.mtuBytes);
    expect(config.sync!.multicast).toEqual(defaults.sync!.multicast);
    expect(config.sync!.reliability).toEqual(defaults.sync!.reliability);
  });
});

type JsonObject = { [key: string]: unknown };
const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

describe('configJsonSchema', () => {
  const schema = configJsonSchema();

  it('is a draft 2020-12 schema of the file as written', () => {
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.type).toBe('object');
    expect(schema.required).toEqual(['node']);
    // sync, flowlog or both (conntrackd's Stats mode is flowlog alone); cluster goes with sync.
    expect(schema.anyOf).toEqual([{ required: ['sync'] }, { required: ['flowlog'] }]);
    expect(schema.dependentRequired).toEqual({ sync: ['cluster'] });
    const props = schema.properties as JsonObject;
    expect(Object.keys(props)).toEqual([
      'node',
      'cluster',
      'sync',
      'filter',
      'kernel',
      'cache',
      'failover',
      'control',
      'process',
      'log',
      'metrics',
      'flowlog',
    ]);
    const sync = props.sync as JsonObject;
    expect((sync.properties as JsonObject).mtu).toMatchObject({ type: 'integer', default: 1472, minimum: 512 });
    expect(sync.then).toEqual({ required: ['udp'] });
    expect(sync.else).toEqual({ required: ['multicast'] });
  });

  it('closes every section with additionalProperties: false', () => {
    const objects: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (Array.isArray(node)) for (const [i, n] of node.entries()) walk(n, `${path}[${i}]`);
      if (!isObject(node)) return;
      if (isObject(node.properties)) {
        objects.push(path);
        expect(node.additionalProperties, path).toBe(false);
      }
      // `if` is a condition on the transport value, not a description of a section.
      for (const [k, v] of Object.entries(node)) if (k !== 'if') walk(v, `${path}/${k}`);
    };
    walk(schema, '#');
    // The root, nine sections, multicast, udp, auth, and three filter lists.
    expect(objects.length).toBeGreaterThanOrEqual(16);
  });

  it('carries the rules editors can check: exactly one of accept/ignore, auth required as none or keyFile/keyFiles', () => {
    const filter = (schema.properties as JsonObject).filter as JsonObject;
    const protocols = (filter.properties as JsonObject).protocols as JsonObject;
    expect(protocols.oneOf).toEqual([{ required: ['accept'] }, { required: ['ignore'] }]);
    const sync = (schema.properties as JsonObject).sync as JsonObject;
    const auth = (sync.properties as JsonObject).auth as JsonObject;
    expect((sync.required as string[]).includes('auth')).toBe(true);
    const [none, keys] = auth.anyOf as JsonObject[];
    expect(none).toMatchObject({ const: 'none' });
    expect(keys!.oneOf).toEqual([{ required: ['keyFile'] }, { required: ['keyFiles'] }]);
  });

  it('is plain JSON', () => {
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
  });
});

describe('address helpers', () => {
  it.each([
    ['224.0.0.0', true],
    ['239.255.255.255', true],
    ['225.0.0.50', true],
    ['223.255.255.255', false],
    ['240.0.0.1', false],
    ['ff02::1', true],
    ['FF05::1:3', true],
    ['ff::1', false],
    ['fe80::1', false],
    ['::', false],
    ['sync0', false],
  ])('isMulticast(%s) = %s', (addr, want) => {
    expect(isMulticast(addr)).toBe(want);
  });

  it.each([
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['10.1.2.3/32', '10.1.2.3/32'],
    ['10.1.2.3/0', '0.0.0.0/0'],
    ['255.255.255.255/1', '128.0.0.0/1'],
    ['2001:db8::1/32', '2001:db8::/32'],
    ['2001:db8:0:0:1:0:0:1/64', '2001:db8::/64'],
    ['::1/128', '::1/128'],
    ['::ffff:10.1.2.3/120', '::ffff:a01:200/120'],
    ['10.1.2.3', '10.1.2.3'],
  ])('networkOf(%s) = %s', (prefix, want) => {
    expect(networkOf(prefix)).toBe(want);
  });

  it.each([
    ['127.0.0.1:9469', { host: '127.0.0.1', port: 9469 }],
    ['[::1]:9469', { host: '::1', port: 9469 }],
    ['[2001:db8::1]:1', { host: '2001:db8::1', port: 1 }],
    ['localhost:65535', { host: 'localhost', port: 65535 }],
    ['metrics.fw1.example:80', { host: 'metrics.fw1.example', port: 80 }],
    ['127.0.0.1', undefined],
    ['127.0.0.1:0', undefined],
    ['127.0.0.1:65536', undefined],
    ['::1:9469', undefined],
    ['[10.0.0.1]:80', undefined],
    ['300.1.1.1:80', undefined],
    [':9469', undefined],
    ['host name:80', undefined],
  ])('parseHostPort(%s)', (text, want) => {
    expect(parseHostPort(text)).toEqual(want);
  });
});

describe('sync.backupLinks', () => {
  const base = `node: { id: fw1 }\ncluster: { id: 1 }\nsync:\n  multicast: { group: 225.0.0.50, interface: sync0 }\n  auth: none\n`;
  it('takes redundant links of the main transport, in order', () => {
    const cfg = parseConfig(
      `${base}  backupLinks:\n    - multicast: { group: 225.0.0.51, interface: sync1 }\n    - multicast: { group: 225.0.0.52, interface: sync2 }\n`,
      'links.yaml',
    );
    expect(cfg.sync!.backupLinks.map((l) => ('multicast' in l ? l.multicast.interface : ''))).toEqual([
      'sync1',
      'sync2',
    ]);
  });
  it('refuses a link of another transport, naming it', () => {
    expect(() =>
      parseConfig(`${base}  backupLinks:\n    - udp: { bind: 10.99.2.1, peers: [10.99.2.2] }\n`, 'links.yaml'),
    ).toThrow(/links\.yaml:7:\d+ sync\.backupLinks\[0\].*multicast link/);
  });
});

describe('sync.protocol', () => {
  const base = `node: { id: fw1 }\ncluster: { id: 1 }\nsync:\n  multicast: { group: 225.0.0.50, interface: sync0 }\n`;
  it('is ctsyncd unless conntrackd is asked for', () => {
    expect(parseConfig(`${base}  auth: none\n`, 'p.yaml').sync?.protocol).toBe('ctsyncd');
    expect(parseConfig(`${base}  auth: none\n  protocol: conntrackd\n`, 'p.yaml').sync?.protocol).toBe('conntrackd');
  });
  it('refuses keys with conntrackd’s protocol, which cannot carry them', () => {
    expect(() =>
      parseConfig(`${base}  protocol: conntrackd\n  auth: { keyFile: /etc/ctsyncd/sync.key }\n`, 'p.yaml'),
    ).toThrow(/p\.yaml:6:\d+ sync\.auth.*no authentication/);
  });
  it('refuses another protocol name at the key', () => {
    expect(() => parseConfig(`${base}  auth: none\n  protocol: conntrack\n`, 'p.yaml')).toThrow(/p\.yaml:6:\d+ sync\.protocol/);
  });
});

// Whole messages, not patterns: the first mutation run of src/config (issue 18)
// showed that a pattern matching part of a message lets its hints, nouns,
// plurals and bounds change unnoticed. [yaml, issues as `line:column path message`].
describe('config error messages, whole', () => {
  const B = REL;
  const at = (yaml: string): string[] => parseError(yaml).issues.map((i) => `${i.line}:${i.column} ${i.path} ${i.message}`);
  const other = (node: string, mc = 'sync0') => y(node, 'cluster: { id: 1 }', 'sync:', '  auth: none', `  multicast: { interface: ${mc} }`);
  const cases: Array<[string, string, string[]]> = [
    ['a quoted boolean', y(...B, 'metrics: { enabled: "yes" }'), ['6:21 metrics.enabled expected true or false, got string "yes" (write true or false)']],
    ['a quoted number that is one', y(...B, '  reliability: { ackWindow: "1.5" }'), ['6:29 sync.reliability.ackWindow expected an integer, got string "1.5" (remove the quotes)']],
    ['a quoted blank is no number to unquote', y(...B, '  mtu: "  "'), ['6:8 sync.mtu expected an integer, got string "  "']],
    ['a quoted word is no number to unquote', y(...B, '  mtu: "abc"'), ['6:8 sync.mtu expected an integer, got string "abc"']],
    ['a boolean where a string goes', other('node: { id: true }'), ['1:13 node.id expected a string, got boolean true (quote it to make it a string)']],
    ['a mapping where a string goes', other('node: { id: { a: 1 } }'), ['1:13 node.id expected a string, got a mapping']],
    ['an empty value', other('node: { id: null }'), ['1:13 node.id expected a string, got an empty value']],
    ['binary data', other('node: { id: !!binary aGVsbG8= }'), ['1:22 node.id expected a string, got binary data']],
    ['a missing key', other('node: { }'), ['1:7 node.id required: expected a string']],
    ['a string of 60 is shown whole', other(`node: { id: "${'x'.repeat(59)}!" }`), [`1:13 node.id expected 1-64 characters from A-Z a-z 0-9 _ . -, got string "${'x'.repeat(59)}!"`]],
    ['a string of 61 is cut', other(`node: { id: "${'x'.repeat(60)}!" }`), [`1:13 node.id expected 1-64 characters from A-Z a-z 0-9 _ . -, got string "${'x'.repeat(57)}..."`]],
    ['one of two values', y(...B, '  mode: x'), ['6:9 sync.mode expected one of "ftfw", "notrack", got string "x"']],
    [
      'too few list entries (singular)',
      y('node: { id: fw1 }', 'cluster: { id: 1, nodes: [] }', 'sync:', '  auth: none', '  multicast: { interface: sync0 }'),
      ['2:26 cluster.nodes expected at least 1 entry, got 0', '2:26 cluster.nodes names no node but this one (fw1): no peer could ever be heard'],
    ],
    ['a Unix socket path one byte too long', y(...B, `control: { socket: /${'s'.repeat(107)} }`), ['6:20 control.socket expected at most 107 bytes (the limit of a Unix socket path)']],
    ['a Unix socket path of exactly 107 bytes', y(...B, `control: { socket: /${'s'.repeat(106)} }`), []],
    [
      'unicast, duplicate and self peers',
      y('node: { id: fw1 }', 'cluster: { id: 1 }', 'sync:', '  auth: none', '  transport: udp', '  udp: { bind: 225.0.0.1, peers: [225.0.0.2, 10.0.0.1, 10.0.0.3, 10.0.0.3] }'),
      ['6:16 sync.udp.bind expected a unicast address, got 225.0.0.1', '6:35 sync.udp.peers[0] expected a unicast address, got 225.0.0.2', '6:66 sync.udp.peers[3] duplicate peer 10.0.0.3'],
    ],
    ['the bind address as a peer', y('node: { id: fw1 }', 'cluster: { id: 1 }', 'sync:', '  auth: none', '  transport: udp', '  udp: { bind: 10.0.0.1, peers: [10.0.0.1] }'), ['6:34 sync.udp.peers[0] is the bind address itself']],
    ['a boolean socket mode gets the string hint, not the octal one', y(...B, 'control: { mode: true }'), ['6:18 control.mode expected a string, got boolean true (quote it to make it a string)']],
    ['an unquoted socket mode', y(...B, 'control: { mode: 600 }'), ["6:18 control.mode expected a quoted octal string like '0600', got number 600 (YAML reads an unquoted 0600 as a number)"]],
    ['a key file twice', y('node: { id: fw1 }', 'cluster: { id: 1 }', 'sync:', '  auth: { keyFiles: [/a, /a] }', '  multicast: { interface: sync0 }'), ['4:21 sync.auth.keyFiles lists the same key file twice']],
    ['no key file', y('node: { id: fw1 }', 'cluster: { id: 1 }', 'sync:', '  auth: { }', '  multicast: { interface: sync0 }'), ['4:9 sync.auth expected keyFile or keyFiles']],
    ['neither accept nor ignore', y(...B, 'filter: { addresses: { } }'), ['6:22 filter.addresses expected accept or ignore']],
    ['netlink buffer maximum below its start', y(...B, 'kernel: { netlinkBufferBytes: 8388608, netlinkBufferMaxBytes: 4194304 }'), ['6:63 kernel.netlinkBufferMaxBytes must be at least netlinkBufferBytes (8388608)']],
    ['netlink buffer maximum equal to its start', y(...B, 'kernel: { netlinkBufferBytes: 4194304, netlinkBufferMaxBytes: 4194304 }'), []],
    ['an invalid netlink buffer start is reported alone', y(...B, 'kernel: { netlinkBufferBytes: "x", netlinkBufferMaxBytes: 4194304 }'), ['6:31 kernel.netlinkBufferBytes expected an integer, got string "x"']],
    // Sizes out of range are compared with nothing: each has its own issue.
    ['a netlink buffer start past its range is reported alone', y(...B, 'kernel: { netlinkBufferBytes: 2147483648, netlinkBufferMaxBytes: 4194304 }'), ['6:31 kernel.netlinkBufferBytes expected at most 1073741824, got number 2147483648']],
    ['a netlink buffer maximum below its range is reported alone', y(...B, 'kernel: { netlinkBufferBytes: 8388608, netlinkBufferMaxBytes: 4095 }'), ['6:63 kernel.netlinkBufferMaxBytes expected at least 4096, got number 4095']],
    ['a quoted netlink buffer start is reported alone', y(...B, 'kernel: { netlinkBufferBytes: "8388608", netlinkBufferMaxBytes: 4194304 }'), ['6:31 kernel.netlinkBufferBytes expected an integer, got string "8388608" (remove the quotes)']],
    // At the range's bounds they are compared.
    ['a netlink buffer start at its upper bound, the maximum below it', y(...B, 'kernel: { netlinkBufferBytes: 1073741824, netlinkBufferMaxBytes: 4194304 }'), ['6:66 kernel.netlinkBufferMaxBytes must be at least netlinkBufferBytes (1073741824)']],
    ['a netlink buffer maximum at its lower bound, below the start', y(...B, 'kernel: { netlinkBufferBytes: 8192, netlinkBufferMaxBytes: 4096 }'), ['6:60 kernel.netlinkBufferMaxBytes must be at least netlinkBufferBytes (8192)']],
    ['a priority with policy other', y(...B, 'process: { scheduler: { policy: other, priority: 3 } }'), ['6:50 process.scheduler.priority must be 0 (or absent) with policy other']],
    ['a scheduler without its policy', y(...B, 'process: { scheduler: { priority: 3 } }'), ['6:23 process.scheduler.policy expected one of "fifo", "rr", "other", got nothing']],
    ['priority 0 with a real-time policy', y(...B, 'process: { scheduler: { policy: rr, priority: 0 } }'), ['6:47 process.scheduler.priority must be 1..99 with policy rr']],
    ['an unknown key close to a known one, any case', y(...B, '  MTU: 1400'), ['6:3 sync.MTU unknown key "MTU", did you mean "mtu"?']],
    ['an unknown key deeper down', y(...B, '  reliability: { ackwindow: 3 }'), ['6:18 sync.reliability.ackwindow unknown key "ackwindow", did you mean "ackWindow"?']],
    [
      'an unknown key close to none',
      y(...B, '  xy: 1'),
      ['6:3 sync.xy unknown key "xy"; expected one of: protocol, mode, transport, mtu, multicast, udp, backupLinks, reliability, auth'],
    ],
    ['a YAML error inside a list item', y(...B, '  udp: { bind: 10.0.0.1, peers: [10.0.0.2, { a: 1, a: 2 }] }'), ['6:52 sync.udp.peers[1].a Map keys must be unique [YAML DUPLICATE_KEY]']],
    ['a YAML error inside a mapping', y(...B, '  reliability: { ackWindow: 1, ackWindow: 2 }'), ['6:32 sync.reliability.ackWindow Map keys must be unique [YAML DUPLICATE_KEY]']],
    ['issues on one line, in column order', other('node: { id: 1, x: 2 }'), ['1:13 node.id expected a string, got number 1 (quote it to make it a string)', '1:16 node.x unknown key "x"; expected one of: id, stateDir']],
    [
      'issues in file order, not schema order',
      y('cluster: { id: -1 }', 'node: { id: 1 }', 'sync:', '  auth: none', '  multicast: { interface: sync0 }'),
      ['1:16 cluster.id expected at least 0, got number -1', '2:13 node.id expected a string, got number 1 (quote it to make it a string)'],
    ],
  ];
  it.each(cases)('%s', (_name, yaml, want) => {
    if (want.length === 0) {
      expect(() => parseConfig(yaml, FILE)).not.toThrow();
      return;
    }
    const err = parseError(yaml);
    expect(at(yaml)).toEqual(want);
    // The message is the issues, one per line, as file:line:column path message.
    expect(err.message).toBe(err.issues.map((i) => `${FILE}:${i.line}:${i.column} ${i.path === '' ? '(root)' : i.path} ${i.message}`).join('\n'));
  });

  it('resolves auth to one shape: none is null, one keyFile is a list of one', () => {
    expect(parseConfig(y(...B), FILE).sync?.auth).toBeNull();
    const one = y('node: { id: fw1 }', 'cluster: { id: 1 }', 'sync:', '  auth: { keyFile: /k }', '  multicast: { interface: sync0 }');
    expect(parseConfig(one, FILE).sync?.auth).toEqual({ keyFiles: ['/k'] });
  });

  it('resolves the scheduler priority a policy implies', () => {
    expect(parseConfig(y(...B, 'process: { scheduler: { policy: rr } }'), FILE).process.scheduler).toEqual({ policy: 'rr', priority: 99 });
    expect(parseConfig(y(...B, 'process: { scheduler: { policy: other } }'), FILE).process.scheduler).toEqual({ policy: 'other', priority: 0 });
  });
});
