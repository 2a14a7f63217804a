// `ctsyncd kernel dump [--netns PATH] [--json]`: this host's (or a
// namespace's) kernel conntrack table over ctnetlink, without a daemon. Loaded
// only for this command: the client commands on keepalived's notify path never
// open a netlink socket.
import { type CommandIo, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../common/command-io.js';
import { entryText } from '../control/format.js';
import { ConntrackLink } from '../kernel/conntrack-link.js';
import { entryToJson } from '../kernel/entry-json.js';
import type { Invocation } from './parse.js';

export async function kernelCommand(p: Invocation, io: CommandIo): Promise<number> {
  if (p.args[0] !== 'dump') {
    io.err(`ctsyncd: unknown kernel subcommand '${p.args[0] ?? ''}' (try: kernel dump)`);
    return EXIT_USAGE;
  }
  let link: ConntrackLink;
  try {
    link = new ConntrackLink({ netns: p.netns });
  } catch (e) {
    io.err(`ctsyncd: cannot open ctnetlink: ${(e as Error).message}`);
    return EXIT_FAILURE;
  }
  try {
    const entries = await link.list();
    if (p.json) io.out(JSON.stringify(entries.map(entryToJson)));
    else for (const e of entries) io.out(entryText(entryToJson(e)));
    return EXIT_OK;
  } catch (e) {
    io.err(`ctsyncd: kernel dump failed: ${(e as Error).message}`);
    return EXIT_FAILURE;
  } finally {
    link.close();
  }
}
