import { Command } from 'commander';
import { registerPolicyCommands } from '../src/cli.js';

const p = new Command('caracal');
registerPolicyCommands(p);
await p.parseAsync(process.argv);
console.error('exit', process.exitCode ?? 0);
