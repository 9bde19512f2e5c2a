// Bus publish → consume → ack throughput: our Redis and Postgres streams beside a raw ioredis loop.
import { benchBusThroughput } from '../packages/bus/bench/throughput.js';
import type { BenchSuite } from './harness.js';

export const busSuite: BenchSuite = {
  name: 'bus',
  description: 'publish → consume → ack, messages/s (baseline: raw ioredis XADD/XREADGROUP)',
  async run() {
    const rows = await benchBusThroughput({ messages: 20_000 });
    return rows.map((r, i) => ({
      name: r.name.replace(' (baseline)', ''),
      opsPerSec: r.opsPerSec,
      baseline: i === 0,
    }));
  },
};
