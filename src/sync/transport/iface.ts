// What the sync channels need to know about a network interface: whether it
// exists, which addresses it has, and whether its link can carry traffic.
// Everything here reads the calling process's own network namespace.
import { existsSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { canonicalAddress, type IpFamily, normaliseAddress } from '../../common/address.js';

export type LinkState = 'up' | 'down';

/** Addresses of `ifname` in `family`, primary first; empty when it has none. */
export type AddressResolver = (ifname: string, family: IpFamily) => Promise<string[]>;

/** A name that cannot escape /sys/class/net (config already enforces this; tests may not). */
function safeName(ifname: string): boolean {
  return /^(?!\.\.?$)[^\s/:]{1,15}$/.test(ifname);
}

export function interfaceExists(ifname: string): boolean {
  return safeName(ifname) && existsSync(`/sys/class/net/${ifname}`);
}

/**
 * 'up' when the interface is administratively up and has carrier, i.e.
 * IFF_UP and IFF_RUNNING as conntrackd checks them. operstate 'unknown' is
 * what drivers without carrier reporting (lo, dummy, some tunnels) show while
 * running, so it counts as up when carrier says 1. Reading `carrier` of an
 * admin-down interface fails with EINVAL, which lands in the catch as 'down'.
 */
export function readLinkState(ifname: string): LinkState {
  if (!safeName(ifname)) return 'down';
  try {
    const oper = readFileSync(`/sys/class/net/${ifname}/operstate`, 'utf8').trim();
    if (oper !== 'up' && oper !== 'unknown') return 'down';
    return readFileSync(`/sys/class/net/${ifname}/carrier`, 'utf8').trim() === '1' ? 'up' : 'down';
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
export const resolveInterfaceAddresses: AddressResolver = async (ifname, family) => {
  const fromOs = (networkInterfaces()[ifname] ?? [])
    .filter((a) => a.family === (family === 4 ? 'IPv4' : 'IPv6'))
    .map((a) => normaliseAddress(a.address));
  if (fromOs.length > 0) return fromOs;
  if (!interfaceExists(ifname)) return [];
  return family === 6 ? (ipv6FromProc().get(ifname) ?? []) : ((await ipv4FromIproute(ifname)).get(ifname) ?? []);
};

/** IPv6 addresses per interface from /proc/net/if_inet6, which lists them whatever the link state. */
function ipv6FromProc(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let text: string;
  try {
    text = readFileSync('/proc/net/if_inet6', 'utf8');
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
async function ipv4FromIproute(ifname?: string): Promise<Map<string, string[]>> {
  const args = ['-j', '-4', 'addr', 'show', ...(ifname === undefined ? [] : ['dev', ifname])];
  // Loaded here rather than with the daemon: ~10 ms before its control socket listens otherwise.
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    execFile('ip', args, { timeout: 5000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout) => {
      const out = new Map<string, string[]>();
      if (err) return resolve(out);
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
      resolve(out);
    });
  });
}

/**
 * The interface that holds `address`, for watching a UDP channel's link.
 * Same sources as resolveInterfaceAddresses, so a link that is down at
 * start is still found.
 */
export async function interfaceOfAddress(address: string): Promise<string | undefined> {
  const wanted = canonicalAddress(address);
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if ((list ?? []).some((a) => normaliseAddress(a.address) === wanted)) return name;
  }
  const byInterface = wanted.includes(':') ? ipv6FromProc() : await ipv4FromIproute();
  for (const [name, list] of byInterface) if (list.includes(wanted)) return name;
  return undefined;
}

/** Shared by the real channels: the link state of an optional interface. */
export function linkUp(ifname: string | undefined): boolean {
  return ifname === undefined || readLinkState(ifname) === 'up';
}
