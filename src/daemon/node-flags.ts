// V8 options the daemon runs with. bin/ctsyncd's `#!/usr/bin/env -S node …`
// line carries the same list (a unit test keeps them equal), so the binary
// run directly, by systemd or by `--detach` gets them; V8 reads them only at
// start-up, so they cannot be set from inside the process.
//
// --max-semi-space-size: V8 grows the young generation up to 16 MiB per
// semi-space (three of them live) while a burst allocates, and keeps the
// pages. Everything a cache keeps is promoted out of it anyway, so a large
// young generation only adds RSS: with 2 MiB the daemon's RSS growth per
// replicated entry fell from ~860 to ~570 B at 100k entries in bench/run.mjs,
// with no CPU cost measurable above the noise (BENCHMARKS.md).
//
// --no-concurrent-recompilation: optimised code is compiled on the main
// thread when a function turns hot, not by helper threads while the
// unoptimised code keeps running. A daemon's work arrives in bursts it
// must absorb from a cold start, and there the background compiler cost
// far more than it saved: bench/run.mjs at 100k, quiet, same session, 3
// pairs each: helper-thread CPU of both daemons 0.46 s → 0.05 s, CPU per
// entry 14.7 → 11.7 µs (ratio to conntrackd 1.56 → 1.11), replication no
// slower (ratio 1.36 → 1.17) (BENCHMARKS.md, issue 13).
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--no-concurrent-recompilation'];
