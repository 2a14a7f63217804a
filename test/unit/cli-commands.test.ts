// The command tables (src/control/commands.ts, src/cli/local-commands.ts)
// against the CLI's external contract: for every declared control command,
// its ctsyncd and conntrackd spellings, --help, usage errors (exit 2) and
// the daemon-side validation of its JSON args (EBAD_ARGS), and the text,
// JSON and exit code the client prints for a sample reply, through a real
// control socket. The expected strings are those ctsyncd printed before the
// tables existed: they are contracts that scripts and acceptance tests read.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CommitReport } from '../../src/cache/commit.js';
import { main } from '../../src/cli.js';
import { HELP_DIR, helpText } from '../../src/cli/help.js';
import { LOCAL_COMMANDS } from '../../src/cli/local-commands.js';
import { COMMANDS, parseArgs } from '../../src/cli/parse.js';
import { ControlError, controlRequest } from '../../src/control/client.js';
import { ControlArgsError, type RawArgs, type WireArgs } from '../../src/control/command.js';
import {
  CLI_CONTROL_COMMANDS,
  CONTROL_COMMANDS,
  type ControlCommandName,
  dispatchTable,
} from '../../src/control/commands.js';
import { ControlServer } from '../../src/control/server.js';
import { FAILOVER_SEQUENCES, type FailoverStep } from '../../src/keepalived/index.js';
import type {
  CacheName,
  ControlTarget,
  EntryJson,
  FailoverState,
  FlushResult,
  StatsJson,
  TableKind,
} from '../../src/control/target.js';

// ---- a daemon stand-in with canned replies ----------------------------------

const ENTRY: EntryJson = {
  proto: 'tcp',
  timeout: 100,
  state: 'ESTABLISHED',
  src: '10.0.0.1',
  dst: '10.0.0.2',
  sport: 1000,
  dport: 80,
  status: 14,
  reply: { src: '10.0.0.2', dst: '10.0.0.1', sport: 80, dport: 1000 },
  mark: 0,
  origin: 'fw1',
};
const EXPECT: EntryJson = {
  timeout: 50,
  proto: 'tcp',
  src: '10.0.0.2',
  dst: '10.0.0.1',
  sport: 0,
  dport: 50000,
  master: { proto: 'tcp', src: '10.0.0.1', dst: '10.0.0.2', sport: 40000, dport: 21 },
  helper: 'ftp',
  origin: 'fw2',
};
const STATS: StatsJson = {
  node: 'fw1',
  ready: true,
  pid: 42,
  internal: { entries: 3 },
  sync: { inSync: true, firstSyncDone: true },
  peers: [{ id: 'fw2' }],
};
const COMMIT_OK: CommitReport = {
  entries: 10,
  committed: 5,
  updated: 2,
  unchanged: 3,
  failed: 0,
  failures: {},
  peers: ['fw2'],
  durationMs: 7,
  expectations: { entries: 1, committed: 1, updated: 0, unchanged: 0, failed: 0, failures: {} },
};
const COMMIT_FAILED: CommitReport = {
  entries: 10,
  committed: 5,
  updated: 0,
  unchanged: 0,
  failed: 3,
  failures: { EINVAL: 2, ENOMEM: 1 },
  peers: [],
  durationMs: 7,
  expectations: { entries: 1, committed: 0, updated: 0, unchanged: 0, failed: 1, failures: { EEXIST: 1 } },
};

interface Call {
  op: string;
  arg?: unknown;
}

class FakeTarget implements ControlTarget {
  readonly calls: Call[] = [];
  commitReport = COMMIT_OK;
  failedSteps = 0;
  stats(): StatsJson {
    this.calls.push({ op: 'stats' });
    return STATS;
  }
  async dump(cache: CacheName): Promise<EntryJson[]> {
    this.calls.push({ op: 'dump', arg: cache });
    return cache === 'internal' ? [ENTRY] : [];
  }
  dumpExpect(cache: CacheName): EntryJson[] {
    this.calls.push({ op: 'dumpExpect', arg: cache });
    return [EXPECT];
  }
  async commit(peer?: string, kind?: TableKind): Promise<CommitReport> {
    this.calls.push({ op: 'commit', arg: kind === undefined ? peer : [peer, kind] });
    return this.commitReport;
  }
  flush(which?: CacheName): FlushResult {
    this.calls.push({ op: 'flush', arg: which });
    return which === 'internal' ? { internal: 3 } : which === 'external' ? { external: 2 } : { internal: 3, external: 2 };
  }
  async flushKernel(kind?: TableKind) {
    this.calls.push(kind === undefined ? { op: 'flushKernel' } : { op: 'flushKernel', arg: kind });
    return { deleted: 4, failed: 2, failures: { EPERM: 2 }, durationMs: 3 };
  }
  async resync(kind?: TableKind) {
    this.calls.push(kind === undefined ? { op: 'resync' } : { op: 'resync', arg: kind });
    return { created: 1, updated: 2, deleted: 3, durationMs: 4 };
  }
  async purgeTimeout() {
    this.calls.push({ op: 'purgeTimeout' });
    return { examined: 9, shortened: 4, local: 2, failed: 0, failures: {}, timeoutSeconds: 60 };
  }
  requestResync(): readonly string[] {
    this.calls.push({ op: 'requestResync' });
    return ['fw2', 'fw3'];
  }
  bulkSend(): number {
    this.calls.push({ op: 'bulkSend' });
    return 12;
  }
  async failover(state: FailoverState) {
    this.calls.push({ op: 'failover', arg: state });
    return { state, steps: 4, failed: this.failedSteps };
  }
  shutdown(): void {
    this.calls.push({ op: 'shutdown' });
  }
}

// ---- one row per declared control command ------------------------------------

interface Row {
  /** A valid ctsyncd spelling (after `-C FILE`). */
  argv: string[];
  /** conntrackd spellings, each with the args it must send. */
  flags: Array<{ argv: string[]; sent: WireArgs }>;
  /** The request args the ctsyncd spelling sends. */
  sent: WireArgs;
  /** What the target was asked. */
  call: Call;
  /** stdout for the FakeTarget's reply. */
  text: string;
  /** Usage errors: argv → the stderr line (exit 2). */
  usage: Array<[string[], string]>;
  /** Daemon side: JSON args → the EBAD_ARGS message; [] for commands that take none (extra args are ignored). */
  badJson: Array<[RawArgs, string]>;
}

const see = (cmd: string) => ` (see ctsyncd ${cmd} --help)`;
const noArg = (via: string, cmd: string, word = 'x'): [string[], string] => [
  [via, word],
  `ctsyncd: ${via} takes no argument '${word}'${see(cmd)}`,
];

const ROWS: Record<ControlCommandName, Row> = {
  commit: {
    argv: ['commit', '--peer', 'fw2'],
    flags: [
      { argv: ['-c'], sent: {} },
      { argv: ['-c', 'expect'], sent: { kind: 'expect' } },
      { argv: ['-c', 'ct'], sent: { kind: 'ct' } },
      // conntrackd takes any leading part of the word.
      { argv: ['-c', 'exp'], sent: { kind: 'expect' } },
    ],
    sent: { peer: 'fw2' },
    call: { op: 'commit', arg: 'fw2' },
    text: 'committed 5, updated 2, unchanged 3, failed 0 of 10 entries from fw2; expectations committed 1, failed 0; 7 ms\n',
    usage: [
      [['commit', 'x'], `ctsyncd: commit takes ct, expect or nothing, not 'x' (use --peer ID for one peer)${see('commit')}`],
      [['-c', 'internal'], `ctsyncd: -c takes ct, expect or nothing, not 'internal' (use --peer ID for one peer)${see('commit')}`],
      [['commit', 'ct', 'expect'], `ctsyncd: commit takes one of ct or expect, not 'expect'${see('commit')}`],
    ],
    badJson: [
      [{ kind: 'both' }, 'kind must be ct or expect (or absent: both)'],
      [{ peer: '' }, 'peer must be a node id'],
      [{ peer: 7 }, 'peer must be a node id'],
      [{ peer: null }, 'peer must be a node id'],
    ],
  },
  flush: {
    argv: ['flush', 'internal'],
    flags: [
      { argv: ['-f'], sent: {} },
      { argv: ['-f', 'external'], sent: { cache: 'external' } },
    ],
    sent: { cache: 'internal' },
    call: { op: 'flush', arg: 'internal' },
    text: 'flushed 3 entries from the internal cache\n',
    usage: [
      [['flush', 'both'], `ctsyncd: flush takes internal, external or nothing, not 'both'${see('flush')}`],
      [['flush', 'internal', 'x'], `ctsyncd: flush takes one argument, not 'x'${see('flush')}`],
      [['-f', 'ct'], `ctsyncd: flush takes internal, external or nothing, not 'ct'${see('flush')}`],
    ],
    badJson: [
      [{ cache: 'both' }, 'flush takes internal, external or nothing (both)'],
      [{ cache: 1 }, 'flush takes internal, external or nothing (both)'],
    ],
  },
  'flush-kernel': {
    argv: ['flush-kernel'],
    flags: [
      { argv: ['-F'], sent: {} },
      { argv: ['-F', 'ct'], sent: { kind: 'ct' } },
      { argv: ['-F', 'expect'], sent: { kind: 'expect' } },
      { argv: ['-F', 'e'], sent: { kind: 'expect' } },
    ],
    sent: {},
    call: { op: 'flushKernel' },
    text: 'deleted 4 kernel entries, failed 2 (EPERM: 2); 3 ms\n',
    usage: [
      [['flush-kernel', 'x'], `ctsyncd: flush-kernel takes ct, expect or nothing, not 'x'${see('flush-kernel')}`],
      [['-F', 'internal'], `ctsyncd: -F takes ct, expect or nothing, not 'internal'${see('flush-kernel')}`],
    ],
    badJson: [[{ kind: 'all' }, 'kind must be ct or expect (or absent: both)']],
  },
  resync: {
    argv: ['resync'],
    flags: [
      { argv: ['-R'], sent: {} },
      { argv: ['-R', 'expect'], sent: { kind: 'expect' } },
      { argv: ['-R', 'ct'], sent: { kind: 'ct' } },
    ],
    sent: {},
    call: { op: 'resync' },
    text: 'resynced with the kernel: 1 new, 2 updated, 3 gone; 4 ms\n',
    usage: [
      [['resync', 'x'], `ctsyncd: resync takes ct, expect or nothing, not 'x'${see('resync')}`],
      [['-R', 'zzz'], `ctsyncd: -R takes ct, expect or nothing, not 'zzz'${see('resync')}`],
    ],
    badJson: [[{ kind: 7 }, 'kind must be ct or expect (or absent: both)']],
  },
  'request-resync': {
    argv: ['request-resync'],
    flags: [{ argv: ['-n'], sent: {} }],
    sent: {},
    call: { op: 'requestResync' },
    text: 'asked fw2, fw3 for a full resync\n',
    usage: [noArg('request-resync', 'request-resync'), noArg('-n', 'request-resync', 'ct')],
    badJson: [],
  },
  'bulk-send': {
    argv: ['bulk-send'],
    flags: [{ argv: ['-B'], sent: {} }],
    sent: {},
    call: { op: 'bulkSend' },
    text: 'queued 12 entries for every peer\n',
    usage: [noArg('bulk-send', 'bulk-send'), noArg('-B', 'bulk-send')],
    badJson: [],
  },
  'purge-timeout': {
    argv: ['purge-timeout'],
    flags: [{ argv: ['-t'], sent: {} }],
    sent: {},
    call: { op: 'purgeTimeout' },
    text: 'shortened 4 kernel timeouts to 60 s (2 local connections kept, 9 examined), failed 0\n',
    usage: [noArg('purge-timeout', 'purge-timeout'), noArg('-t', 'purge-timeout', 'internal')],
    badJson: [],
  },
  failover: {
    argv: ['failover', 'primary'],
    flags: [],
    sent: { state: 'primary' },
    call: { op: 'failover', arg: 'primary' },
    text: 'failover primary: 4 steps run, 0 failed\n',
    usage: [
      [['failover'], `ctsyncd: failover takes primary, backup or fault${see('failover')}`],
      [['failover', 'x'], `ctsyncd: failover takes primary, backup or fault${see('failover')}`],
      [['failover', 'primary', 'x'], `ctsyncd: failover takes one state, not 'x'${see('failover')}`],
    ],
    badJson: [
      [{}, 'failover takes primary, backup or fault'],
      [{ state: 'stop' }, 'failover takes primary, backup or fault'],
      [{ state: ['primary'] }, 'failover takes primary, backup or fault'],
    ],
  },
  shutdown: {
    argv: ['shutdown'],
    flags: [{ argv: ['-k'], sent: {} }],
    sent: {},
    call: { op: 'shutdown' },
    text: 'ctsyncd is stopping\n',
    usage: [noArg('shutdown', 'shutdown'), noArg('-k', 'shutdown', 'zzz')],
    badJson: [],
  },
  stats: {
    argv: ['stats', 'peers'],
    flags: [
      { argv: ['-s'], sent: {} },
      { argv: ['-s', 'peers'], sent: {} },
    ],
    sent: {},
    call: { op: 'stats' },
    text: 'sync.inSync        true\nsync.firstSyncDone true\npeers[0].id        fw2\n',
    usage: [
      [
        ['stats', 'bogus'],
        `ctsyncd: unknown stats kind 'bogus' (one of: all ct expect network cache runtime link rsqueue queue process multicast peers commit)${see('stats')}`,
      ],
      [['stats', 'ct', 'x'], `ctsyncd: stats takes one kind, not 'x'${see('stats')}`],
    ],
    badJson: [],
  },
  dump: {
    argv: ['dump', 'external', 'expect'],
    flags: [
      { argv: ['-i'], sent: { cache: 'internal', kind: 'ct' } },
      { argv: ['-e', 'expect'], sent: { cache: 'external', kind: 'expect' } },
    ],
    sent: { cache: 'external', kind: 'expect' },
    call: { op: 'dumpExpect', arg: 'external' },
    text: '50 tcp src=10.0.0.2 dst=10.0.0.1 sport=0 dport=50000 master=tcp,src=10.0.0.1,dst=10.0.0.2,sport=40000,dport=21 helper=ftp origin=fw2\n',
    usage: [
      [['dump'], `ctsyncd: dump needs internal or external${see('dump')}`],
      [['dump', 'internal', 'x'], `ctsyncd: dump takes ct or expect, not 'x'${see('dump')}`],
      [['dump', 'internal', 'ct', 'x'], `ctsyncd: dump takes no argument 'x'${see('dump')}`],
      [['dump', 'internal', '-x'], `ctsyncd: XML output (-x) is not supported; use --json${see('dump')}`],
      [['-i', '-x'], `ctsyncd: XML output (-x) is not supported; use --json${see('dump')}`],
      [['-e', 'internal'], `ctsyncd: dump takes ct or expect, not 'internal'${see('dump')}`],
    ],
    badJson: [
      [{}, 'dump needs cache: internal or external'],
      [{ cache: 'both' }, 'dump needs cache: internal or external'],
      [{ cache: 'internal', kind: 'xml' }, 'dump kind must be ct or expect'],
    ],
  },
};

const NAMES = CLI_CONTROL_COMMANDS.map((c) => c.name);

// ---- helpers -------------------------------------------------------------------

interface Captured {
  code: number;
  out: string;
  err: string;
}

async function run(argv: string[]): Promise<Captured> {
  let out = '';
  let err = '';
  const io = {
    out: (t: string) => void (out += t.endsWith('\n') ? t : `${t}\n`),
    err: (t: string) => void (err += t.endsWith('\n') ? t : `${t}\n`),
  };
  const code = await main(argv, io);
  return { code, out, err };
}

let dir = '';
let config = '';
let server: ControlServer;
let target: FakeTarget;
/** The args of every request the fake daemon received, before validation. */
let received: Array<{ cmd: string; args: Record<string, unknown> }> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ctsyncd-cli-'));
  const socket = join(dir, 'ctl.sock');
  config = join(dir, 'conntrackd.yaml');
  writeFileSync(config, `control:\n  socket: ${socket}\n`);
  const table = dispatchTable({
    // Forward to whichever FakeTarget the current test set up.
    stats: () => target.stats(),
    dump: (c) => target.dump(c),
    dumpExpect: (c) => target.dumpExpect(c),
    commit: (p, k) => target.commit(p, k),
    flush: (w) => target.flush(w),
    flushKernel: (k) => target.flushKernel(k),
    resync: (k) => target.resync(k),
    purgeTimeout: () => target.purgeTimeout(),
    requestResync: () => target.requestResync(),
    bulkSend: () => target.bulkSend(),
    failover: (s) => target.failover(s),
    shutdown: () => target.shutdown(),
  });
  const handlers = Object.fromEntries(
    Object.entries(table).map(([cmd, h]) => [
      cmd,
      (args: Record<string, unknown>) => {
        received.push({ cmd, args });
        return h(args);
      },
    ]),
  );
  server = new ControlServer({ path: socket, handlers });
  await server.start();
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  target = new FakeTarget();
  received = [];
});

// ---- the tests -------------------------------------------------------------------

describe('command tables', () => {
  it('this test has a row for every declared control command, and no other', () => {
    expect(Object.keys(ROWS).sort()).toEqual([...NAMES].sort());
  });

  it('derives the command words from both tables, each declared once', () => {
    expect([...COMMANDS].sort()).toEqual([...NAMES, ...LOCAL_COMMANDS.map((c) => c.name)].sort());
    expect(new Set(COMMANDS).size).toBe(COMMANDS.length);
    const flags = CLI_CONTROL_COMMANDS.flatMap((c) => c.conntrackd.map((f) => f.flag));
    expect(new Set(flags).size).toBe(flags.length);
  });

  it('the daemon answers every declared command, and ping, which the CLI does not offer', () => {
    expect(CONTROL_COMMANDS.map((c) => c.name).sort()).toEqual([...NAMES, 'ping'].sort());
    expect(() => parseArgs(['ping'])).toThrow(/unknown command 'ping'/);
  });

  it('every failover step, which keepalived-fifo sends as a request, is a declared command', () => {
    // Compile-time: a step the table does not declare fails typecheck here.
    const steps: readonly ControlCommandName[] = Object.values(FAILOVER_SEQUENCES).flat() satisfies FailoverStep[];
    for (const step of steps) expect(NAMES).toContain(step);
  });

  it('the usage lists exactly the declared commands', () => {
    const usage = helpText();
    const listed = usage
      .split('\n')
      .map((l) => /^ {2}([a-z][a-z-]*)\b/.exec(l)?.[1])
      .filter((n): n is string => n !== undefined);
    expect([...listed].sort()).toEqual([...COMMANDS].sort());
  });

  it('the usage lists exactly the declared conntrackd flags', () => {
    const usage = helpText();
    const start = usage.indexOf('conntrackd flags:');
    const block = usage.slice(start, usage.indexOf('\n\n', start));
    const listed = new Set(block.match(/(?<=\s)-[a-zA-Z]\b/g));
    const declared = new Set([
      ...CLI_CONTROL_COMMANDS.flatMap((c) => c.conntrackd.map((f) => f.flag)),
      ...LOCAL_COMMANDS.flatMap((c) => ('conntrackd' in c ? c.conntrackd.map((f) => f.flag) : [])),
      // Options, not commands: the configuration file and the refused XML output.
      '-C',
      '-x',
    ]);
    expect([...listed].sort()).toEqual([...declared].sort());
  });

  it('every help file belongs to a declared command, and every command but help has one', () => {
    const files = readdirSync(HELP_DIR).sort();
    const expected = [...COMMANDS.filter((c) => c !== 'help').map((c) => `${c}.txt`), 'ctsyncd.txt'].sort();
    expect(files).toEqual(expected);
  });
});

describe.each(NAMES)('control command %s', (name) => {
  const row = ROWS[name];

  it('parses from its ctsyncd spelling and its conntrackd flags', () => {
    expect(parseArgs(['-C', config, ...row.argv])).toMatchObject({ command: name, config, via: name });
    for (const f of row.flags) {
      expect(parseArgs(['-C', config, ...f.argv])).toMatchObject({ command: name, via: f.argv[0] });
    }
    const declared = CLI_CONTROL_COMMANDS.find((c) => c.name === name)!.conntrackd.map((f) => f.flag);
    expect([...new Set(row.flags.map((f) => f.argv[0]))].sort()).toEqual([...declared].sort());
  });

  it('--help, -h and help NAME print its help file', async () => {
    const text = readFileSync(join(HELP_DIR, `${name}.txt`), 'utf8');
    expect(text).toMatch(new RegExp(`^Usage: ctsyncd --config FILE ${name}\\b`));
    for (const argv of [[name, '--help'], ['-C', config, name, '-h'], ['help', name]]) {
      expect(await run(argv)).toEqual({ code: 0, out: text, err: '' });
    }
    for (const f of row.flags) expect(await run(['-C', config, f.argv[0]!, '--help'])).toEqual({ code: 0, out: text, err: '' });
  });

  it('bad arguments are a usage error (exit 2) with the usual message, and nothing is sent', async () => {
    for (const [argv, message] of row.usage) {
      expect(await run(['-C', config, ...argv])).toEqual({ code: 2, out: '', err: `${message}\n` });
    }
    expect(received).toEqual([]);
  });

  it('the daemon rejects bad JSON args with EBAD_ARGS before the handler runs', async () => {
    const handler = dispatchTable(target)[name]!;
    for (const [raw, message] of row.badJson) {
      let thrown: unknown;
      try {
        await handler(raw);
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(ControlArgsError);
      expect(thrown).toMatchObject({ code: 'EBAD_ARGS', message });
      // And over the socket, as a client that skipped the CLI's checks sees it.
      await expect(controlRequest(server.path, name, raw)).rejects.toMatchObject({ code: 'EBAD_ARGS', message });
    }
    expect(target.calls).toEqual([]);
  });

  it('sends the declared args, calls the target and prints the usual text (exit 0)', async () => {
    expect(await run(['-C', config, ...row.argv])).toEqual({ code: 0, out: row.text, err: '' });
    expect(received).toEqual([{ cmd: name, args: row.sent }]);
    expect(target.calls).toEqual([row.call]);
    for (const f of row.flags) {
      received = [];
      expect((await run(['-C', config, ...f.argv])).code).toBe(0);
      expect(received).toEqual([{ cmd: name, args: f.sent }]);
    }
  });

  it('--json prints the reply as JSON', async () => {
    const r = await run(['-C', config, ...row.argv, '--json']);
    expect(r.code).toBe(0);
    const reply: unknown = await controlRequest(server.path, name, row.sent);
    if (name === 'stats') expect(JSON.parse(r.out)).toEqual({ 'sync.inSync': true, 'sync.firstSyncDone': true, peers: [{ id: 'fw2' }] });
    else expect(r.out).toBe(`${JSON.stringify(reply)}\n`);
  });
});

describe('client output and exit rules', () => {
  it('commit exits 1 when an entry or expectation failed, after printing the report', async () => {
    target.commitReport = COMMIT_FAILED;
    const text =
      'committed 5, updated 0, unchanged 0, failed 3 (EINVAL: 2, ENOMEM: 1) of 10 entries from no peer; ' +
      'expectations committed 0, failed 1 (EEXIST: 1); 7 ms\n';
    const err = 'ctsyncd: commit: 4 entries failed to go into the kernel\n';
    expect(await run(['-C', config, 'commit'])).toEqual({ code: 1, out: text, err });
    expect(await run(['-C', config, '-c', '--json'])).toEqual({ code: 1, out: `${JSON.stringify(COMMIT_FAILED)}\n`, err });
  });

  it('failover exits 1 when a step failed', async () => {
    target.failedSteps = 1;
    expect(await run(['-C', config, 'failover', 'backup'])).toEqual({
      code: 1,
      out: 'failover backup: 4 steps run, 1 failed\n',
      err: "ctsyncd: failover backup: 1 of 4 steps failed (see the daemon's log)\n",
    });
  });

  it('flush without argument empties both caches; dumps print conntrack lines, nothing when empty', async () => {
    expect((await run(['-C', config, '-f'])).out).toBe(
      'flushed 3 entries from the internal cache\nflushed 2 entries from the external cache\n',
    );
    expect(await run(['-C', config, '-i'])).toEqual({
      code: 0,
      out: 'tcp 6 100 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=1000 [ASSURED] mark=0 origin=fw1\n',
      err: '',
    });
    expect(await run(['-C', config, 'dump', 'external'])).toEqual({ code: 0, out: '', err: '' });
  });

  it('a failed command exits 1 with its code\'s message; a missing daemon too', async () => {
    target.resync = () => Promise.reject(Object.assign(new Error('resync exploded'), { code: 'EKERNEL' }));
    expect(await run(['-C', config, '-R'])).toEqual({ code: 1, out: '', err: 'ctsyncd: resync: resync exploded\n' });
    const other = join(dir, 'other.yaml');
    writeFileSync(other, `control:\n  socket: ${join(dir, 'none.sock')}\n`);
    expect(await run(['-C', other, 'stats'])).toEqual({
      code: 1,
      out: '',
      err: `ctsyncd: stats: ctsyncd is not running (no daemon at ${join(dir, 'none.sock')})\n`,
    });
  });

  it('ping answers pong, whatever args it gets', async () => {
    expect(await controlRequest(server.path, 'ping', { x: 1 })).toEqual({ pong: true });
  });

  it('an undeclared request is EUNKNOWN_COMMAND', async () => {
    await expect(controlRequest(server.path, 'frob')).rejects.toBeInstanceOf(ControlError);
    await expect(controlRequest(server.path, 'frob')).rejects.toMatchObject({ code: 'EUNKNOWN_COMMAND' });
  });
});

describe('help', () => {
  it('the usage for --help, -h, help and a bare ctsyncd', async () => {
    const usage = helpText();
    expect(usage.startsWith('Usage: ctsyncd --config FILE')).toBe(true);
    for (const argv of [['--help'], ['-h'], ['help'], [], ['help', '--help']]) {
      expect(await run(argv)).toEqual({ code: 0, out: usage, err: '' });
    }
  });

  it.each(LOCAL_COMMANDS.map((c) => c.name).filter((n) => n !== 'help'))('local command %s has its help', async (name) => {
    const text = readFileSync(join(HELP_DIR, `${name}.txt`), 'utf8');
    expect(text).toMatch(/^Usage: /);
    expect(await run([name, '--help'])).toEqual({ code: 0, out: text, err: '' });
    expect(await run(['help', name])).toEqual({ code: 0, out: text, err: '' });
  });

  it('help for an unknown topic, or for help itself, is a usage error', async () => {
    for (const topic of ['frob', 'help', 'ping']) {
      expect(await run(['help', topic])).toEqual({
        code: 2,
        out: '',
        err: `ctsyncd: no help for unknown command '${topic}' (see ctsyncd --help)\n`,
      });
    }
  });

  it('-d is the daemon in the background', () => {
    expect(parseArgs(['-C', 'f', '-d'])).toMatchObject({ command: 'daemon', detach: true, via: '-d' });
  });
});

describe("conntrackd's general flags", () => {
  it('-v prints the version, as -V and --version do', async () => {
    const version = (JSON.parse(readFileSync(join(HELP_DIR, '..', 'package.json'), 'utf8')) as { version: string }).version;
    for (const flag of ['-v', '-V', '--version']) expect(await run([flag])).toEqual({ code: 0, out: `${version}\n`, err: '' });
  });

  it('a leading part of a word is that word, tried in conntrackd\'s order; a word that fits none is not taken', () => {
    expect(parseArgs(['-s', 'c'])).toMatchObject({ command: 'stats', args: ['cache'] });
    expect(parseArgs(['-s', 'net'])).toMatchObject({ command: 'stats', args: ['network'] });
    expect(parseArgs(['-s', 'p'])).toMatchObject({ command: 'stats', args: ['process'] });
    expect(parseArgs(['-s', 'pe'])).toMatchObject({ command: 'stats', args: ['peers'] });
    expect(parseArgs(['-f', 'e'])).toMatchObject({ command: 'flush', args: ['external'] });
    expect(parseArgs(['-i', 'exp'])).toMatchObject({ command: 'dump', args: ['internal', 'expect'] });
    expect(parseArgs(['-F', 'c'])).toMatchObject({ command: 'flush-kernel', args: ['ct'] });
    // Not a leading part: left for the command, which refuses it.
    expect(parseArgs(['-F', 'cts'])).toMatchObject({ command: 'flush-kernel', args: ['cts'] });
    // An option after the flag is not its word.
    expect(parseArgs(['-F', '-C', 'x'])).toMatchObject({ command: 'flush-kernel', args: [], config: 'x' });
  });

  it('-C with a conntrackd.conf: one line pointing at import-conntrackd, code ECONNTRACKD_CONF, exit 1, nothing sent', async () => {
    const conf = join(dir, 'conntrackd.conf');
    writeFileSync(conf, '# conntrackd\n\nGeneral {\n\tUNIX { Path /var/run/conntrackd.ctl }\n}\nSync {\n\tMode FTFW { }\n}\n');
    const err =
      `ctsyncd: ${conf}:3: this is a conntrackd.conf (its General section), not a ctsyncd configuration; ` +
      `convert it once with: ctsyncd import-conntrackd ${conf} > /etc/ctsyncd/conntrackd.yaml, then use -C /etc/ctsyncd/conntrackd.yaml (ECONNTRACKD_CONF)\n`;
    received = [];
    for (const argv of [['-C', conf, '-s'], ['-C', conf, '-c'], ['check-config', conf], ['-C', conf, '-d']]) {
      expect(await run(argv)).toEqual({ code: 1, out: '', err });
    }
    expect(received).toEqual([]);
    // The brace on its own line, and Sync first.
    writeFileSync(conf, 'Sync\n{\n  Mode FTFW {}\n}\n');
    expect((await run(['-C', conf, '-s'])).err).toContain(`${conf}:1: this is a conntrackd.conf (its Sync section)`);
  });
});
