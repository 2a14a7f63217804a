// iface.ts against a real kernel: a namespace with a veth pair whose ends go
// down and up, with addresses added while down, so that os.networkInterfaces()
// hides them and the /proc/net/if_inet6 and `ip -j -4 addr` fallbacks run for
// real. The module reads its own process's namespace, so each look is a
// child `node` in the namespace importing the built module (dist/, which
// test/global-setup.ts builds). A veth pair rather than a dummy link: this
// kernel has no dummy driver, and a veth end up without its peer is the
// up-without-carrier case that a dummy link cannot show.
// Runs as root; skipped when not root, except under CI=true, where it fails.
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetns, type Netns } from './helpers/netns.js';

const moduleUrl = pathToFileURL(fileURLToPath(new URL('../../dist/sync/transport/iface.js', import.meta.url))).href;

/** Runs in the namespace: everything iface.ts says about v0, v1 and a few addresses. */
const probe = `
const m = await import(process.argv[1]);
const os = await import('node:os');
const out = { os: Object.keys(os.networkInterfaces()).sort(), exists: {}, state: {}, up: {}, v4: {}, v6: {}, of: {} };
for (const n of ['v0', 'v1', 'v9']) {
  out.exists[n] = m.interfaceExists(n);
  out.state[n] = m.readLinkState(n);
  out.up[n] = m.linkUp(n);
  out.v4[n] = await m.resolveInterfaceAddresses(n, 4);
  out.v6[n] = (await m.resolveInterfaceAddresses(n, 6)).filter((a) => !a.startsWith('fe80:')).sort();
}
for (const a of JSON.parse(process.argv[2])) out.of[a] = (await m.interfaceOfAddress(a)) ?? null;
console.log(JSON.stringify(out));
`;

interface Probe {
  os: string[];
  exists: Record<string, boolean>;
  state: Record<string, string>;
  up: Record<string, boolean>;
  v4: Record<string, string[]>;
  v6: Record<string, string[]>;
  of: Record<string, string | null>;
}

const asked = ['192.0.2.1', '192.0.2.7', '192.0.2.9', '2001:db8::1', '2001:db8::9', '192.0.2.99', '2001:db8::99'];

const canRun = process.getuid?.() === 0 || process.env.CI === 'true';

describe.skipIf(!canRun)('iface.ts in a namespace with a veth pair', () => {
  let ns: Netns;

  beforeAll(async () => {
    ns = await createNetns('hif');
    await ns.exec('ip', ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
  });

  afterAll(async () => {
    await ns?.destroy();
  });

  async function look(): Promise<Probe> {
    const { stdout } = await ns.exec('node', ['--input-type=module', '-e', probe, moduleUrl, JSON.stringify(asked)]);
    return JSON.parse(stdout) as Probe;
  }

  /** Waits (bounded) until the kernel shows this operstate: linkwatch sets it a moment after the change. */
  async function operstate(name: string, want: string): Promise<void> {
    let seen = '';
    for (let i = 0; i < 100; i++) {
      seen = (await ns.exec('cat', [`/sys/class/net/${name}/operstate`])).stdout.trim();
      if (seen === want) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${name} operstate stayed ${seen}, never ${want}`);
  }

  it('both ends down, addresses added while down: found through /proc and ip, link down', async () => {
    for (const a of ['192.0.2.1/24', '192.0.2.7/32', '2001:db8::1/64'])
      await ns.exec('ip', ['addr', 'add', a, 'dev', 'v0']);
    await operstate('v0', 'down');
    expect(await look()).toEqual({
      os: ['lo'],
      exists: { v0: true, v1: true, v9: false },
      state: { v0: 'down', v1: 'down', v9: 'down' },
      up: { v0: false, v1: false, v9: false },
      v4: { v0: ['192.0.2.1', '192.0.2.7'], v1: [], v9: [] },
      v6: { v0: ['2001:db8::1'], v1: [], v9: [] },
      of: {
        '192.0.2.1': 'v0',
        '192.0.2.7': 'v0',
        '192.0.2.9': null,
        '2001:db8::1': 'v0',
        '2001:db8::9': null,
        '192.0.2.99': null,
        '2001:db8::99': null,
      },
    } satisfies Probe);
  });

  it('v0 up without its peer: no carrier, still down, still found through the fallbacks', async () => {
    await ns.exec('ip', ['link', 'set', 'v0', 'up']);
    await operstate('v0', 'lowerlayerdown');
    const seen = await look();
    expect(seen.os).toEqual(['lo']);
    expect(seen.state).toEqual({ v0: 'down', v1: 'down', v9: 'down' });
    expect(seen.up).toEqual({ v0: false, v1: false, v9: false });
    expect(seen.v4.v0).toEqual(['192.0.2.1', '192.0.2.7']);
    expect(seen.v6.v0).toEqual(['2001:db8::1']);
    expect(seen.of['192.0.2.7']).toBe('v0');
    expect(seen.of['2001:db8::1']).toBe('v0');
  });

  it('both ends up: carrier, link up, addresses from os.networkInterfaces()', async () => {
    await ns.exec('ip', ['link', 'set', 'v1', 'up']);
    await operstate('v0', 'up');
    await operstate('v1', 'up');
    const seen = await look();
    expect(seen.os).toEqual(['lo', 'v0', 'v1']);
    expect(seen.state).toEqual({ v0: 'up', v1: 'up', v9: 'down' });
    expect(seen.up).toEqual({ v0: true, v1: true, v9: false });
    expect(seen.v4).toEqual({ v0: ['192.0.2.1', '192.0.2.7'], v1: [], v9: [] });
    expect(seen.v6).toEqual({ v0: ['2001:db8::1'], v1: [], v9: [] });
    expect(seen.of['192.0.2.1']).toBe('v0');
    expect(seen.of['2001:db8::1']).toBe('v0');
    expect(seen.of['192.0.2.99']).toBeNull();
  });

  it('v0 down again, addresses added while down: found through the fallbacks', async () => {
    await ns.exec('ip', ['link', 'set', 'v0', 'down']);
    await operstate('v0', 'down');
    await operstate('v1', 'lowerlayerdown');
    for (const a of ['192.0.2.9/32', '2001:db8::9/64']) await ns.exec('ip', ['addr', 'add', a, 'dev', 'v0']);
    const seen = await look();
    expect(seen.os).toEqual(['lo']);
    expect(seen.state).toEqual({ v0: 'down', v1: 'down', v9: 'down' });
    expect(seen.v4.v0).toEqual(['192.0.2.1', '192.0.2.7', '192.0.2.9']);
    // Taking a link down drops its IPv6 addresses unless keep_addr_on_down is
    // set (2001:db8::1 goes with the default 0): iproute2 says which are left.
    const { stdout } = await ns.exec('ip', ['-j', '-6', 'addr', 'show', 'dev', 'v0']);
    const kernel = (JSON.parse(stdout) as Array<{ addr_info: Array<{ local: string }> }>)
      .flatMap((l) => l.addr_info.map((a) => a.local))
      .filter((a) => !a.startsWith('fe80:'))
      .sort();
    expect(kernel).toContain('2001:db8::9');
    expect(seen.v6.v0).toEqual(kernel);
    expect(seen.of['192.0.2.9']).toBe('v0');
    expect(seen.of['2001:db8::9']).toBe('v0');
  });
});
