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
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];
