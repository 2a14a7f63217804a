// What the sync channels need to know about a network interface: whether it
// exists, which addresses it has, and whether its link can carry traffic.
// Everything here reads the calling process's own network namespace, through
// an InterfaceHost: the real one unless a test passes a fake.
import { existsSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { canonicalAddress, type IpFamily, normaliseAddress } from '../../common/address.js';

export type LinkState = 'up' | 'down';

/** Addresses of `ifname` in `family`, primary first; empty when it has none. */
export type AddressResolver = (ifname: string, family: IpFamily) => Promise<string[]>;

/** Everything this module reads of the host. */
export interface InterfaceHost {
  /** As os.networkInterfaces(): interfaces that are UP and RUNNING, with their addresses. */
  networkInterfaces(): ReturnType<typeof networkInterfaces>;
  /** Whether the path exists. */
  exists(path: string): boolean;
  /** The file's text; throws when it cannot be read (the `carrier` of an admin-down link: EINVAL). */
  readFile(path: string): string;
  /** The stdout of `ip` run with these arguments, or undefined when it fails. */
  ip(args: readonly string[]): Promise<string | undefined>;
}

/** The host itself: os, /sys, /proc and iproute2's `ip`. */
export const realInterfaceHost: InterfaceHost = {
  networkInterfaces,
  exists: existsSync,
  readFile: (path) => readFileSync(path, 'utf8'),
  async ip(args) {
    // Loaded here rather than with the daemon: ~10 ms before its control socket listens otherwise.
    const { execFile } = await import('node:child_process');
    return new Promise((resolve) => {
      execFile('ip', [...args], { timeout: 5000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout) =>
        resolve(err ? undefined : stdout),
      );
    });
  },
};

/** A name that cannot escape /sys/class/net (config already enforces this; tests may not). */
function safeName(ifname: string): boolean {
  return /^(?!\.\.?$)[^\s/:]{1,15}$/.test(ifname);
}

export function interfaceExists(ifname: string, host: InterfaceHost = realInterfaceHost): boolean {
  return safeName(ifname) && host.exists(`/sys/class/net/${ifname}`);
}

/**
 * 'up' when the interface is administratively up and has carrier, i.e.
 * IFF_UP and IFF_RUNNING as conntrackd checks them. operstate 'unknown' is
 * what drivers without carrier reporting (lo, dummy, some tunnels) show while
 * running, so it counts as up when carrier says 1. Reading `carrier` of an
 * admin-down interface fails with EINVAL, which lands in the catch as 'down'.
 */
export function readLinkState(ifname: string, host: InterfaceHost = realInterfaceHost): LinkState {
  if (!safeName(ifname)) return 'down';
  try {
    const oper = host.readFile(`/sys/class/net/${ifname}/operstate`).trim();
    if (oper !== 'up' && oper !== 'unknown') return 'down';
    return host.readFile(`/sys/class/net/${ifname}/carrier`).trim() === '1' ? 'up' : 'down';
  } catch {
    return 'down';
  }
}

/**
 * os.networkInterfaces() first. libuv leaves out every interface that is not
 * both UP and RUNNING, so a backup sync link without carrier at boot would
 * look address-less there; then IPv6 comes from /proc/net/if_inet6 and IPv4
 * from `ip -j addr`, both of which list addresses regardless of link state.
 */
export async function resolveInterfaceAddresses(
  ifname: string,
  family: IpFamily,
  host: InterfaceHost = realInterfaceHost,
): Promise<string[]> {
  const fromOs = (host.networkInterfaces()[ifname] ?? [])
    .filter((a) => a.family === (family === 4 ? 'IPv4' : 'IPv6'))
    .map((a) => normaliseAddress(a.address));
  if (fromOs.length > 0) return fromOs;
  if (!interfaceExists(ifname, host)) return [];
  return family === 6
    ? (ipv6FromProc(host).get(ifname) ?? [])
    : ((await ipv4FromIproute(host, ifname)).get(ifname) ?? []);
}

/** IPv6 addresses per interface from /proc/net/if_inet6, which lists them whatever the link state. */
function ipv6FromProc(host: InterfaceHost): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let text: string;
  try {
    text = host.readFile('/proc/net/if_inet6');
  } catch {
    return out;
  }
  // Columns: address (32 hex digits), ifindex, prefix length, scope, flags, name.
  for (const line of text.split('\n')) {
    const [hex, , , , , name] = line.trim().split(/\s+/);
    if (name === undefined || hex === undefined || !/^[0-9a-f]{32}$/i.test(hex)) continue;
    const groups: string[] = [];
    for (let i = 0; i < 32; i += 4) groups.push(hex.slice(i, i + 4));
    const list = out.get(name) ?? [];
    list.push(canonicalAddress(groups.join(':')));
    out.set(name, list);
  }
  return out;
}

/** IPv4 addresses per interface from iproute2's JSON output, or an empty map when `ip` fails. */
async function ipv4FromIproute(host: InterfaceHost, ifname?: string): Promise<Map<string, string[]>> {
  const args = ['-j', '-4', 'addr', 'show', ...(ifname === undefined ? [] : ['dev', ifname])];
  const stdout = await host.ip(args);
  const out = new Map<string, string[]>();
  if (stdout === undefined) return out;
  try {
    const parsed: unknown = JSON.parse(stdout);
    for (const link of Array.isArray(parsed) ? parsed : []) {
      const { ifname: name, addr_info: infos } = link as { ifname?: unknown; addr_info?: unknown };
      if (typeof name !== 'string') continue;
      const list = out.get(name) ?? [];
      for (const info of Array.isArray(infos) ? infos : []) {
        const local: unknown = (info as { local?: unknown }).local;
        if (typeof local === 'string') list.push(local);
      }
      out.set(name, list);
    }
  } catch {
    // Unparseable output: treat as no addresses.
  }
  return out;
}

/**
 * The interface that holds `address`, for watching a UDP channel's link.
 * Same sources as resolveInterfaceAddresses, so a link that is down at
 * start is still found.
 */
export async function interfaceOfAddress(
  address: string,
  host: InterfaceHost = realInterfaceHost,
): Promise<string | undefined> {
  const wanted = canonicalAddress(address);
  for (const [name, list] of Object.entries(host.networkInterfaces())) {
    if ((list ?? []).some((a) => normaliseAddress(a.address) === wanted)) return name;
  }
  const byInterface = wanted.includes(':') ? ipv6FromProc(host) : await ipv4FromIproute(host);
  for (const [name, list] of byInterface) if (list.includes(wanted)) return name;
  return undefined;
}

/** Shared by the real channels: the link state of an optional interface. */
export function linkUp(ifname: string | undefined, host: InterfaceHost = realInterfaceHost): boolean {
  return ifname === undefined || readLinkState(ifname, host) === 'up';
}
