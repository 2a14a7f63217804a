// The bounded queue between the event path and the flow log's writer when
// both run on the daemon's thread (writer.ts, InlineFlowLog): the same ring
// of raw ctnetlink messages as between threads (shared-queue.ts), so there
// is one implementation of it. Queuing an event is a copy and no object;
// what does not fit is refused and counted by the caller: the event path
// never waits for the writer.
import { SharedEventQueue } from './shared-queue.js';

export class EventQueue extends SharedEventQueue {
  constructor(capacity: number) {
    super(SharedEventQueue.allocate(capacity));
  }
}
