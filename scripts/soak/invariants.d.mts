// Types of invariants.mjs, for the unit tests that check the checker.
export interface DumpEntry {
  proto: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  zone?: number;
  mark?: number;
  status?: number;
  timeout?: number;
  origin?: string;
  [field: string]: unknown;
}
export interface Draw {
  rand: () => number;
  int(lo: number, hi: number): number;
  pick<T>(xs: readonly T[]): T;
  shuffle<T>(xs: readonly T[]): T[];
}
export interface ReplicaReport {
  viewer: string;
  lost: number;
  different: number;
  extra: number;
  duplicates: number;
  samples: string[];
}
export interface KernelReport {
  missing: number;
  different: number;
  extra: number;
  samples: string[];
}
export function mulberry32(seed: number): () => number;
export function draw(rand: () => number): Draw;
export function keyOf(e: DumpEntry): string;
export function contentOf(e: DumpEntry, statusMask?: number): string;
export function compareReplicas(
  internals: Map<string, DumpEntry[]>,
  externals: Map<string, DumpEntry[]>,
  statusMask: number,
): ReplicaReport[];
export function compareKernel(kernel: DumpEntry[], internal: DumpEntry[]): KernelReport;
export function findResurrected(
  deleted: Map<string, Set<string>>,
  kernels: Map<string, DumpEntry[]>,
  internals: Map<string, DumpEntry[]>,
  externals: Map<string, DumpEntry[]>,
): string[];
export function slope(xs: number[], ys: number[]): number | undefined;
