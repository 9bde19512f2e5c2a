import type { ReplaySpool } from './spool.js';
import type { Bus, PublishInput, SealedMessage } from './types.js';

/**
 * Publish an event, or append it to the replay spool when publishing fails. Resolves only once
 * the event is on the bus or durably spooled; throws when both fail, and the caller must then deny
 * the request and count `audit_dropped_total`. While older events wait in the spool, new ones queue
 * behind them so each producer's stream order holds (best effort: one in-flight publish can overtake).
 * Drain with `spool.startDrainer({ publish: (m) => bus.publishSealed(m).then(() => {}) })`.
 */
export async function publishOrSpool<T>(
  bus: Bus,
  spool: ReplaySpool<SealedMessage>,
  stream: string,
  input: PublishInput<T>,
): Promise<'published' | 'spooled'> {
  const sealed = bus.seal(stream, input);
  if (spool.status().entries === 0) {
    try {
      await bus.publishSealed(sealed);
      return 'published';
    } catch {
      // Any transport failure (down, timeout, server error): evidence goes to disk rather than nowhere.
    }
  }
  await spool.append(sealed);
  return 'spooled';
}
