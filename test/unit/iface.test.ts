// iface.ts on a fake host: /sys, /proc/net/if_inet6, `ip -j -4 addr` and
// os.networkInterfaces() as captured in a namespace with a veth pair
// (test/fixtures/iface/README.md), plus hand-made damage to each. Every read
// the module makes is recorded, so a test also says what was not read.
// The same module against a real namespace: test/integration/iface.test.ts.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type NetworkInterfaceInfo, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type InterfaceHost,
  interfaceExists,
  interfaceOfAddress,
  linkUp,
  readLinkState,
  realInterfaceHost,
  resolveInterfaceAddresses,
} from '../../src/sync/transport/iface.js';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/iface/${name}`, import.meta.url), 'utf8');

type Interfaces = Record<string, NetworkInterfaceInfo[] | undefined>;

const osUp = JSON.parse(fixture('os-up.json')) as Interfaces;
/** What os.networkInterfaces() said with both veth ends down: `lo` only. */
const osDown: Interfaces = { lo: osUp.lo };

/** An error as fs throws it. */
function fsError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: read`), { code });
}

interface FakeSetup {
  /** Path → text, or the error reading it throws. A path not listed throws ENOENT. */
  files?: Record<string, string | NodeJS.ErrnoException>;
  /** Extra paths that exist (every key of `files` exists too). */
  paths?: string[];
  os?: Interfaces;
  /** Arguments joined by spaces → stdout; undefined (or not listed) is a failed `ip`. */
  ip?: Record<string, string | undefined>;
}

/** A host answering from tables, recording every read in order. */
class FakeHost implements InterfaceHost {
  readonly reads: string[] = [];

  constructor(private readonly setup: FakeSetup) {}

  networkInterfaces(): Interfaces {
    this.reads.push('os');
    return this.setup.os ?? {};
  }

  exists(path: string): boolean {
    this.reads.push(`exists ${path}`);
    return (this.setup.paths ?? []).includes(path) || Object.hasOwn(this.setup.files ?? {}, path);
  }

  readFile(path: string): string {
    this.reads.push(`read ${path}`);
    const v = (this.setup.files ?? {})[path];
    if (v === undefined) throw fsError('ENOENT');
    if (typeof v !== 'string') throw v;
    return v;
  }

  ip(args: readonly string[]): Promise<string | undefined> {
    const key = args.join(' ');
    this.reads.push(`ip ${key}`);
    return Promise.resolve((this.setup.ip ?? {})[key]);
  }
}

const sys = (name: string, file: string): string => `/sys/class/net/${name}/${file}`;

/** A link's two /sys files as the kernel gave them (a string, or the error reading it threw). */
function link(name: string, operstate: string | NodeJS.ErrnoException, carrier: string | NodeJS.ErrnoException) {
  return { [sys(name, 'operstate')]: operstate, [sys(name, 'carrier')]: carrier, [`/sys/class/net/${name}`]: '' };
}

describe('interfaceExists and readLinkState on a fake /sys', () => {
  const EINVAL = fsError('EINVAL');
  // [what, operstate, carrier, state, files read]
  const states: Array<[string, string | NodeJS.ErrnoException, string | NodeJS.ErrnoException, string, number]> = [
    ['lo (operstate unknown, carrier 1)', 'unknown\n', '1\n', 'up', 2],
    ['both veth ends up', 'up\n', '1\n', 'up', 2],
    ['up without its peer: lowerlayerdown', 'lowerlayerdown\n', '0\n', 'down', 1],
    ['administratively down: carrier EINVAL', 'down\n', EINVAL, 'down', 1],
    ['operstate up but carrier 0', 'up\n', '0\n', 'down', 2],
    ['operstate unknown but carrier 0', 'unknown\n', '0\n', 'down', 2],
    ['operstate up and carrier EINVAL', 'up\n', EINVAL, 'down', 2],
    ['operstate unreadable', EINVAL, '1\n', 'down', 1],
    ['operstate dormant', 'dormant\n', '1\n', 'down', 1],
    ['operstate notpresent', 'notpresent\n', '1\n', 'down', 1],
    ['operstate empty', '', '1\n', 'down', 1],
    ['operstate "up" without newline, carrier "1"', 'up', '1', 'up', 2],
    ['operstate padded', '  up \n', ' 1 \n', 'up', 2],
    ['carrier 10', 'up\n', '10\n', 'down', 2],
    ['operstate UP (the kernel writes lower case)', 'UP\n', '1\n', 'down', 1],
  ];
  for (const [what, oper, carrier, state, nReads] of states) {
    it(`${what}: ${state}`, () => {
      const host = new FakeHost({ files: link('v0', oper, carrier) });
      expect(readLinkState('v0', host)).toBe(state);
      const expected = [`read ${sys('v0', 'operstate')}`, `read ${sys('v0', 'carrier')}`].slice(0, nReads);
      expect(host.reads).toEqual(expected);
      host.reads.length = 0;
      expect(linkUp('v0', host)).toBe(state === 'up');
      expect(host.reads).toEqual(expected);
    });
  }

  it('a link missing from /sys does not exist and is down', () => {
    const host = new FakeHost({});
    expect(interfaceExists('v9', host)).toBe(false);
    expect(readLinkState('v9', host)).toBe('down');
    expect(host.reads).toEqual(['exists /sys/class/net/v9', `read ${sys('v9', 'operstate')}`]);
  });

  it('an unknown interface is up as far as linkUp knows, and nothing is read', () => {
    const host = new FakeHost({});
    expect(linkUp(undefined, host)).toBe(true);
    expect(host.reads).toEqual([]);
  });

  // [name, safe]: on a host where every path exists and every link is up, only the name decides.
  const names: Array<[string, boolean]> = [
    ['v0', true],
    ['eth0.100', true],
    ['...', true],
    ['.a', true],
    ['a.', true],
    ['a..', true],
    ['-', true],
    ['a23456789012345', true],
    ['a234567890123456', false],
    ['.', false],
    ['..', false],
    ['', false],
    ['../lo', false],
    ['a/b', false],
    ['lo/', false],
    ['/lo', false],
    ['lo:1', false],
    [':', false],
    ['lo x', false],
    [' lo', false],
    ['lo ', false],
    ['lo\tx', false],
    ['lo\n', false],
  ];
  for (const [name, safe] of names) {
    it(`${JSON.stringify(name)} is ${safe ? '' : 'not '}a name to look up`, () => {
      const everything: InterfaceHost = {
        networkInterfaces: () => ({}),
        exists: () => true,
        readFile: (path) => (path.endsWith('/carrier') ? '1\n' : 'up\n'),
        ip: () => Promise.resolve(undefined),
      };
      const host = new FakeHost({});
      expect(interfaceExists(name, everything)).toBe(safe);
      expect(readLinkState(name, everything)).toBe(safe ? 'up' : 'down');
      expect(linkUp(name, everything)).toBe(safe);
      interfaceExists(name, host);
      readLinkState(name, host);
      expect(host.reads).toEqual(
        safe ? [`exists /sys/class/net/${name}`, `read /sys/class/net/${name}/operstate`] : [],
      );
    });
  }
});

describe('resolveInterfaceAddresses', () => {
  const down: FakeSetup = {
    os: osDown,
    files: { ...link('v0', 'down\n', fsError('EINVAL')), '/proc/net/if_inet6': fixture('if_inet6-down.txt') },
    paths: ['/sys/class/net/lo', '/sys/class/net/v1'],
    ip: {
      '-j -4 addr show dev v0': fixture('ip-4-addr-dev-v0-down.json'),
      '-j -4 addr show dev v1': fixture('ip-4-addr-dev-v1-down.json'),
      '-j -4 addr show': fixture('ip-4-addr-down.json'),
    },
  };
  const up: FakeSetup = { ...down, os: osUp, files: { '/proc/net/if_inet6': fixture('if_inet6-up.txt') } };

  // [what, setup, interface, family, addresses, reads after `os`]
  const rows: Array<[string, FakeSetup, string, 4 | 6, string[], string[]]> = [
    ['lo v4 from os', down, 'lo', 4, ['127.0.0.1'], []],
    ['lo v6 from os', down, 'lo', 6, ['::1'], []],
    ['v0 v4 from os when up', up, 'v0', 4, ['192.0.2.1', '192.0.2.7'], []],
    [
      'v0 v6 from os when up, in its order, link-local last',
      up,
      'v0',
      6,
      ['2001:db8:0:1:0:ab:cd:ef', '2001:db8::1', 'fe80::7453:ecff:fe9e:4499'],
      [],
    ],
    ['v1 v4 when up: none in os, none from ip', up, 'v1', 4, [], ['exists /sys/class/net/v1', 'ip -j -4 addr show dev v1']],
    ['v1 v6 when up: its link-local address from os', up, 'v1', 6, ['fe80::88e5:2bff:fecb:72aa'], []],
    [
      'v0 v4 when down: from ip -j',
      down,
      'v0',
      4,
      ['192.0.2.1', '192.0.2.7'],
      ['exists /sys/class/net/v0', 'ip -j -4 addr show dev v0'],
    ],
    [
      'v0 v6 when down: from /proc/net/if_inet6, in its order',
      down,
      'v0',
      6,
      ['2001:db8:0:1:0:ab:cd:ef', '2001:db8::1'],
      ['exists /sys/class/net/v0', 'read /proc/net/if_inet6'],
    ],
    ['v1 v4 when down: ip lists none', down, 'v1', 4, [], ['exists /sys/class/net/v1', 'ip -j -4 addr show dev v1']],
    [
      'v1 v6 when down: /proc lists none',
      down,
      'v1',
      6,
      [],
      ['exists /sys/class/net/v1', 'read /proc/net/if_inet6'],
    ],
    ['a missing interface, v4: nothing more read', down, 'v9', 4, [], ['exists /sys/class/net/v9']],
    ['a missing interface, v6: nothing more read', down, 'v9', 6, [], ['exists /sys/class/net/v9']],
    ['an unsafe name that /proc lists', { ...down, files: { '/proc/net/if_inet6': '20010db8000000000000000000000001 03 40 00 c0 ..\n' } }, '..', 6, [], []],
  ];
  for (const [what, setup, name, family, addresses, reads] of rows) {
    it(what, async () => {
      const host = new FakeHost(setup);
      expect(await resolveInterfaceAddresses(name, family, host)).toEqual(addresses);
      expect(host.reads).toEqual(['os', ...reads]);
    });
  }

  it('takes only the family asked for from os, lower-cased, without a zone; falls back when os has the other only', async () => {
    const info = (address: string, family: 'IPv4' | 'IPv6'): NetworkInterfaceInfo =>
      ({ address, family, netmask: '', mac: '', internal: false, cidr: null }) as NetworkInterfaceInfo;
    const host = new FakeHost({
      os: { v0: [info('FE80::A%v0', 'IPv6'), info('192.0.2.1', 'IPv4'), info('2001:DB8::B', 'IPv6')], v1: [info('192.0.2.2', 'IPv4')], v2: undefined },
      files: { '/proc/net/if_inet6': '20010db8000000000000000000000009 05 40 00 c0 v1\n' },
      paths: ['/sys/class/net/v1', '/sys/class/net/v2'],
      ip: { '-j -4 addr show dev v2': '[{"ifname":"v2","addr_info":[{"local":"192.0.2.3"}]}]' },
    });
    expect(await resolveInterfaceAddresses('v0', 6, host)).toEqual(['fe80::a', '2001:db8::b']);
    expect(await resolveInterfaceAddresses('v0', 4, host)).toEqual(['192.0.2.1']);
    expect(await resolveInterfaceAddresses('v1', 6, host)).toEqual(['2001:db8::9']);
    expect(await resolveInterfaceAddresses('v2', 4, host)).toEqual(['192.0.2.3']);
  });
});

describe('the /proc/net/if_inet6 fallback', () => {
  /** The v6 addresses of `name` from this /proc text (os lists nothing, the link exists). */
  async function fromProc(text: string | NodeJS.ErrnoException, name = 'v0'): Promise<string[]> {
    const host = new FakeHost({ files: { '/proc/net/if_inet6': text }, paths: [`/sys/class/net/${name}`] });
    return resolveInterfaceAddresses(name, 6, host);
  }

  // [what, text, addresses of v0]
  const rows: Array<[string, string, string[]]> = [
    ['the captured file', fixture('if_inet6-down.txt'), ['2001:db8:0:1:0:ab:cd:ef', '2001:db8::1']],
    ['every group in place', '20010db8000100020003000400050006 03 40 00 80 v0\n', ['2001:db8:1:2:3:4:5:6']],
    ['upper-case hex', '20010DB80000000000000000000000AB 03 40 00 80 v0\n', ['2001:db8::ab']],
    ['leading and trailing blanks, tabs', '  fe800000000000000000000000000001\t03 40 20 80\tv0  \n', ['fe80::1']],
    ['no newline at the end', 'fe800000000000000000000000000002 03 40 20 80 v0', ['fe80::2']],
    ['31 hex digits', '2001db8000000000000000000000001 03 40 00 80 v0\n', []],
    ['33 hex digits', '20010db80000000000000000000000011 03 40 00 80 v0\n', []],
    ['a non-hex digit', '20010db8000000000000000000000g01 03 40 00 80 v0\n', []],
    ['junk before the digits', 'x20010db8000000000000000000000001 03 40 00 80 v0\n', []],
    ['junk after the digits', '20010db8000000000000000000000001x 03 40 00 80 v0\n', []],
    ['five columns: no name', '20010db8000000000000000000000001 03 40 00 80\n', []],
    ['another interface only', '20010db8000000000000000000000001 03 40 00 80 v01\n', []],
    [
      'bad lines skipped, good ones kept in order',
      '\nzz\n20010db8000000000000000000000003 03 40 00 80 v0\n2001 03 40 00 80 v0\n20010db8000000000000000000000004 04 40 00 80 v1\n20010db8000000000000000000000002 03 40 00 80 v0\n',
      ['2001:db8::3', '2001:db8::2'],
    ],
    ['empty', '', []],
  ];
  for (const [what, text, addresses] of rows) {
    it(`${what}: ${JSON.stringify(addresses)}`, async () => {
      expect(await fromProc(text)).toEqual(addresses);
    });
  }

  it('an unreadable file gives no addresses', async () => {
    expect(await fromProc(fsError('EACCES'))).toEqual([]);
  });

  it('the sixth column is the name, whatever the others hold', async () => {
    expect(await fromProc('20010db8000000000000000000000005 a b c d v7 extra\n', 'v7')).toEqual(['2001:db8::5']);
  });
});

describe('the ip -j -4 addr fallback', () => {
  /** The v4 addresses of `name` from this stdout of `ip -j -4 addr show dev NAME` (undefined: ip failed). */
  async function fromIp(stdout: string | undefined, name = 'v0'): Promise<string[]> {
    const host = new FakeHost({ ip: { [`-j -4 addr show dev ${name}`]: stdout }, paths: [`/sys/class/net/${name}`] });
    return resolveInterfaceAddresses(name, 4, host);
  }

  // [what, stdout, addresses of v0]
  const rows: Array<[string, string | undefined, string[]]> = [
    ['the captured output', fixture('ip-4-addr-dev-v0-down.json'), ['192.0.2.1', '192.0.2.7']],
    ['ip failed', undefined, []],
    ['not JSON', 'Device "v0" does not exist.\n', []],
    ['empty', '', []],
    ['an empty list', '[]', []],
    ['an object, not a list', '{"ifname":"v0","addr_info":[{"local":"192.0.2.1"}]}', []],
    ['a string', '"v0"', []],
    ['null', 'null', []],
    ['addr_info missing', '[{"ifname":"v0"}]', []],
    ['addr_info an object, the next link still read', '[{"ifname":"v1","addr_info":{"local":"192.0.2.8"}},{"ifname":"v0","addr_info":[{"local":"192.0.2.1"}]}]', ['192.0.2.1']],
    ['addr_info a string', '[{"ifname":"v0","addr_info":"192.0.2.1"}]', []],
    ['local not a string, or missing', '[{"ifname":"v0","addr_info":[{"local":3232235521},{"family":"inet"},{"local":"192.0.2.2"}]}]', ['192.0.2.2']],
    ['ifname not a string', '[{"ifname":7,"addr_info":[{"local":"192.0.2.1"}]}]', []],
    [
      'one link listed twice: both lists, in order',
      '[{"ifname":"v0","addr_info":[{"local":"192.0.2.5"}]},{"ifname":"v1","addr_info":[{"local":"192.0.2.9"}]},{"ifname":"v0","addr_info":[{"local":"192.0.2.4"}]}]',
      ['192.0.2.5', '192.0.2.4'],
    ],
  ];
  for (const [what, stdout, addresses] of rows) {
    it(`${what}: ${JSON.stringify(addresses)}`, async () => {
      expect(await fromIp(stdout)).toEqual(addresses);
    });
  }
});

describe('interfaceOfAddress', () => {
  const downFiles = { '/proc/net/if_inet6': fixture('if_inet6-down.txt') };
  const downIp = { '-j -4 addr show': fixture('ip-4-addr-down.json') };

  // [address, os, interface, reads after `os`]
  const rows: Array<[string, Interfaces, string | undefined, string[]]> = [
    ['127.0.0.1', osDown, 'lo', []],
    ['::1', osDown, 'lo', []],
    ['0:0:0:0:0:0:0:1', osDown, 'lo', []],
    ['192.0.2.7', osUp, 'v0', []],
    ['2001:DB8:0:0:0:0:0:1', osUp, 'v0', []],
    ['fe80::88e5:2bff:fecb:72aa', osUp, 'v1', []],
    ['192.0.2.7', osDown, 'v0', ['ip -j -4 addr show']],
    ['192.0.2.1', osDown, 'v0', ['ip -j -4 addr show']],
    ['192.0.2.2', osDown, undefined, ['ip -j -4 addr show']],
    ['2001:db8::1', osDown, 'v0', ['read /proc/net/if_inet6']],
    ['2001:0db8:0000:0001:0000:00ab:00cd:00ef', osDown, 'v0', ['read /proc/net/if_inet6']],
    ['2001:db8::2', osDown, undefined, ['read /proc/net/if_inet6']],
  ];
  for (const [address, os, name, reads] of rows) {
    it(`${address} with the links ${os === osUp ? 'up' : 'down'}: ${name}`, async () => {
      const host = new FakeHost({ os, files: downFiles, ip: downIp });
      expect(await interfaceOfAddress(address, host)).toBe(name);
      expect(host.reads).toEqual(['os', ...reads]);
    });
  }

  it('skips an os entry without a list, and takes the first interface holding the address', async () => {
    const info = { address: '192.0.2.1', family: 'IPv4' } as NetworkInterfaceInfo;
    const host = new FakeHost({ os: { a: undefined, b: [info], c: [info] } });
    expect(await interfaceOfAddress('192.0.2.1', host)).toBe('b');
  });

  it('takes the first interface /proc or ip lists it for', async () => {
    const host = new FakeHost({
      files: {
        '/proc/net/if_inet6': '20010db8000000000000000000000001 03 40 00 80 v3\n20010db8000000000000000000000001 04 40 00 80 v2\n',
      },
      ip: {
        '-j -4 addr show': '[{"ifname":"v5","addr_info":[{"local":"192.0.2.3"}]},{"ifname":"v4","addr_info":[{"local":"192.0.2.1"},{"local":"192.0.2.3"}]}]',
      },
    });
    expect(await interfaceOfAddress('2001:db8::1', host)).toBe('v3');
    expect(await interfaceOfAddress('192.0.2.3', host)).toBe('v5');
    expect(await interfaceOfAddress('192.0.2.1', host)).toBe('v4');
  });

  it('a /proc line without a name holds no address, so a later line names its interface', async () => {
    const host = new FakeHost({
      files: {
        '/proc/net/if_inet6': '20010db8000000000000000000000001 03 40 00 80\n20010db8000000000000000000000001 03 40 00 80 v0\n',
      },
    });
    expect(await interfaceOfAddress('2001:db8::1', host)).toBe('v0');
  });

  it('finds nothing when the fallback fails', async () => {
    const host = new FakeHost({ files: { '/proc/net/if_inet6': fsError('EACCES') } });
    expect(await interfaceOfAddress('2001:db8::1', host)).toBeUndefined();
    expect(await interfaceOfAddress('192.0.2.1', host)).toBeUndefined();
    expect(host.reads).toEqual(['os', 'read /proc/net/if_inet6', 'os', 'ip -j -4 addr show']);
  });

  it('an ifname that is no string names no interface', async () => {
    const host = new FakeHost({ ip: { '-j -4 addr show': '[{"ifname":7,"addr_info":[{"local":"192.0.2.1"}]}]' } });
    expect(await interfaceOfAddress('192.0.2.1', host)).toBeUndefined();
  });
});

describe('the real host', () => {
  it('runs ip with the arguments given and returns its stdout', async () => {
    const out = await realInterfaceHost.ip(['-j', '-4', 'addr', 'show', 'dev', 'lo']);
    const parsed = JSON.parse(out ?? 'null') as Array<{ ifname: string; addr_info: Array<{ local: string }> }>;
    expect(parsed.map((l) => [l.ifname, l.addr_info.map((a) => a.local)])).toEqual([['lo', ['127.0.0.1']]]);
  });

  it('reads a listing of more than 1 MiB, what a host with thousands of addresses prints', async () => {
    // Node's default maxBuffer is 1 MiB; 8,000 `link show lo` in one batch print about 2 MB.
    const dir = mkdtempSync(join(tmpdir(), 'iface-test-'));
    try {
      const batch = join(dir, 'batch');
      writeFileSync(batch, 'link show lo\n'.repeat(8000));
      const out = await realInterfaceHost.ip(['-j', '-batch', batch]);
      expect(out?.length).toBeGreaterThan(1024 * 1024);
      expect(out?.split('"ifname":"lo"').length).toBe(8001);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('returns undefined when ip fails', async () => {
    expect(await realInterfaceHost.ip(['-j', '-4', 'addr', 'show', 'dev', 'nosuchif0'])).toBeUndefined();
    expect(await realInterfaceHost.ip([])).toBeUndefined();
  });

  it('reads files and paths, and os.networkInterfaces()', () => {
    expect(realInterfaceHost.exists('/sys/class/net/lo')).toBe(true);
    expect(realInterfaceHost.exists('/sys/class/net/nosuchif0')).toBe(false);
    expect(realInterfaceHost.readFile('/sys/class/net/lo/carrier')).toBe('1\n');
    expect(() => realInterfaceHost.readFile('/sys/class/net/nosuchif0/carrier')).toThrow(
      expect.objectContaining({ code: 'ENOENT' }),
    );
    expect(realInterfaceHost.networkInterfaces().lo?.map((a) => a.address)).toContain('127.0.0.1');
  });

  it('is the default of every function', async () => {
    expect(interfaceExists('lo')).toBe(true);
    expect(readLinkState('lo')).toBe('up');
    expect(linkUp('lo')).toBe(true);
    expect(await resolveInterfaceAddresses('lo', 4)).toEqual(['127.0.0.1']);
    expect(await interfaceOfAddress('127.0.0.1')).toBe('lo');
  });
});
