// Pure helpers of the CLI.
import test from 'ava';
import { v8FlagGiven } from './args.ts';

test('v8FlagGiven: the flag with a value, bare, or in V8\'s underscore spelling; not another flag or a longer name', (t) => {
  const flag = '--heap-growing-percent';
  t.true(v8FlagGiven(['--heap-growing-percent=150'], flag));
  t.true(v8FlagGiven(['--import=tsx', '--heap_growing_percent=50'], flag));
  t.true(v8FlagGiven(['--heap-growing-percent'], flag));
  t.false(v8FlagGiven([], flag));
  t.false(v8FlagGiven(['--max-old-space-size=4096', '--no-flush-bytecode'], flag));
  t.false(v8FlagGiven(['--heap-growing-percentage=150'], flag));
});
