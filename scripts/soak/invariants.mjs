// What the soak checks, as pure functions over dumps (the JSON shape of
// `ctsyncd dump --json`, src/kernel/entry-json.ts), and the seeded PRNG its
// schedule and workload draw from. Nothing here touches a process, a socket
// or a clock, so the same dumps always give the same verdict.

export { mulberry32 } from '../lib/prng.mjs';

/** Helpers over one PRNG stream. */
export function draw(rand) {
  return {
    rand,
    /** Integer in [lo, hi]. */
    int: (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1)),
    pick: (xs) => xs[Math.floor(rand() * xs.length)],
    /** A copy of xs in a random order (Fisher-Yates). */
    shuffle(xs) {
      const out = [...xs];
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [out[i], out[j]] = [out[j], out[i]];
      }
      return out;
    },
  };
}

/** The identity of an entry: protocol, original tuple and zone. */
export function keyOf(e) {
  return `${e.proto} ${e.src}:${e.sport}>${e.dst}:${e.dport} z${e.zone ?? 0}`;
}

/**
 * What a copy must agree on: everything but the fields that are the
 * holder's own (timeout ticks, origin, kernel id, use count). Status is
 * compared under `statusMask`: a peer's entry keeps only the bits a peer may
 * set (PEER_STATUS_BITS, README "Peers' entries").
 */
export function contentOf(e, statusMask = 0xffffffff) {
  const { timeout: _t, origin: _o, id: _i, use: _u, status, ...rest } = e;
  const out = { ...rest, status: (Number(status ?? 0) & statusMask) >>> 0 };
  return JSON.stringify(out, Object.keys(out).sort());
}

/**
 * Compares every node's external cache with its peers' internal caches.
 *
 * internals: Map node -> entries of its internal cache; externals: Map node
 * -> entries of its external cache (each with `origin`). A key is claimed by
 * every origin whose internal cache holds it. Normally one origin claims a
 * key (each node's workload has its own addresses); after a failover the new
 * primary claims its peers' connections too, and since a message from another
 * origin replaces the record, a viewer must then hold the key under one of
 * the claiming origins, with that origin's content.
 *
 * Returns, per viewer, the keys it lacks (lost), holds with other content
 * (different) or holds under an origin that does not claim them (extra),
 * with a few samples of each for the log.
 */
export function compareReplicas(internals, externals, statusMask) {
  const claims = new Map();
  for (const [origin, entries] of internals) {
    for (const e of entries) {
      const k = keyOf(e);
      let c = claims.get(k);
      if (!c) claims.set(k, (c = new Map()));
      c.set(origin, contentOf(e, statusMask));
    }
  }
  const out = [];
  for (const [viewer, entries] of externals) {
    const held = new Map();
    const r = { viewer, lost: 0, different: 0, extra: 0, duplicates: 0, samples: [] };
    const sample = (s) => r.samples.length < 5 && r.samples.push(s);
    for (const e of entries) {
      const k = keyOf(e);
      if (held.has(k)) {
        r.duplicates++;
        sample(`twice ${k}`);
      }
      held.set(k, e);
      const c = claims.get(k);
      const want = c?.get(e.origin);
      if (want === undefined || e.origin === viewer) {
        r.extra++;
        sample(`extra ${k} from ${e.origin}`);
      } else if (want !== contentOf(e, statusMask)) {
        r.different++;
        sample(`different ${k} from ${e.origin}: holds ${contentOf(e, statusMask)}, origin has ${want}`);
      }
    }
    for (const [k, c] of claims) {
      const others = [...c.keys()].filter((o) => o !== viewer);
      // Held under an origin that does not claim it is no copy of the claimants' entry.
      if (others.length === 0 || others.includes(held.get(k)?.origin)) continue;
      r.lost++;
      sample(`lost ${k} of ${others.join('/')}`);
    }
    out.push(r);
  }
  return out;
}

/**
 * A node's internal cache against its own kernel table (both as dumps):
 * every kernel entry cached with the same content, nothing cached that the
 * kernel no longer has.
 */
export function compareKernel(kernel, internal) {
  const want = new Map(kernel.map((e) => [keyOf(e), contentOf(e)]));
  const r = { missing: 0, different: 0, extra: 0, samples: [] };
  const sample = (s) => r.samples.length < 5 && r.samples.push(s);
  const seen = new Set();
  for (const e of internal) {
    const k = keyOf(e);
    seen.add(k);
    const w = want.get(k);
    if (w === undefined) {
      r.extra++;
      sample(`cached but not in the kernel: ${k}`);
    } else if (w !== contentOf(e)) {
      r.different++;
      sample(`different ${k}: cached ${contentOf(e)}, kernel ${w}`);
    }
  }
  for (const k of want.keys()) {
    if (seen.has(k)) continue;
    r.missing++;
    sample(`in the kernel but not cached: ${k}`);
  }
  return r;
}

/**
 * Deleted entries that came back. deleted: Map origin -> Set of keys the
 * workload deleted from that origin's kernel (never created again: keys are
 * not reused). A key is resurrected when the origin's kernel or internal
 * cache, or any node's external cache under that origin, holds it.
 */
export function findResurrected(deleted, kernels, internals, externals) {
  const hits = [];
  for (const [origin, keys] of deleted) {
    if (keys.size === 0) continue;
    for (const e of kernels.get(origin) ?? []) if (keys.has(keyOf(e))) hits.push(`${keyOf(e)} back in ${origin}'s kernel`);
    for (const e of internals.get(origin) ?? []) if (keys.has(keyOf(e))) hits.push(`${keyOf(e)} back in ${origin}'s internal cache`);
    for (const [viewer, entries] of externals) {
      for (const e of entries) {
        if (e.origin === origin && keys.has(keyOf(e))) hits.push(`${keyOf(e)} back in ${viewer}'s external cache from ${origin}`);
      }
    }
  }
  return hits;
}

/** Least-squares slope of ys over xs (same units per unit of x); undefined with fewer than 3 points. */
export function slope(xs, ys) {
  const n = xs.length;
  if (n < 3) return undefined;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? undefined : num / den;
}
