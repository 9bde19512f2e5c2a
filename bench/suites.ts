import { busSuite } from './bus.js';
import { governedSuite } from './governed.js';
import type { BenchSuite } from './harness.js';
import { mandateSuite } from './mandate.js';
import { mintSuite } from './mint.js';
import { policySuite } from './policy.js';
import { startupSuite } from './startup.js';

/** Every benchmark `npm run bench` knows, in the order it runs them. */
export const suites: BenchSuite[] = [
  startupSuite,
  busSuite,
  policySuite,
  mandateSuite,
  mintSuite,
  governedSuite,
];
