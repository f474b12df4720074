import test from 'ava';
import { UsageError } from '../cli/args.ts';
import { REPORT_HELP, cmdReport, parseTime } from './cli.ts';

const NOW = Date.UTC(2027, 0, 15, 12, 0, 0);

test('admq report: times are ISO 8601, ms since the epoch, "now" or relative to now', (t) => {
  t.is(parseTime('from', '2027-01-15T11:00:00Z', NOW), NOW - 3_600_000);
  t.is(parseTime('from', String(NOW - 5), NOW), NOW - 5);
  t.is(parseTime('to', 'now', NOW), NOW);
  t.is(parseTime('from', '-90s', NOW), NOW - 90_000);
  t.is(parseTime('from', '-30m', NOW), NOW - 1_800_000);
  t.is(parseTime('from', '-24h', NOW), NOW - 86_400_000);
  t.is(parseTime('from', '-7d', NOW), NOW - 7 * 86_400_000);
  t.throws(() => parseTime('from', 'yesterday', NOW), { instanceOf: UsageError, message: /--from must be ISO 8601/ });
});

test('admq report --help documents every option; mistakes are usage errors that name the option', async (t) => {
  for (const option of ['--topology', '--region', '--tenant', '--namespace', '--pairs', '--from', '--to', '--rpo-target-ms', '--drills', '--format', '--out', '--sign-cert', '--sign-key', '--admin-url', '--points-max', '--ca', '--signature']) {
    t.true(REPORT_HELP.includes(option), `${option} is in the help`);
  }
  const lines: string[] = [];
  const log = console.log;
  console.log = (line: string) => lines.push(line);
  try {
    t.is(await cmdReport(['--help']), 0);
    t.is(await cmdReport(['verify', '--help']), 0);
  } finally {
    console.log = log;
  }
  t.true(lines.join('\n').includes('admq report verify FILE'));
  await t.throwsAsync(cmdReport(['--region', 'shanghai']), { instanceOf: UsageError, message: /--topology and --region are required/ });
  await t.throwsAsync(cmdReport(['--topology', 'x.yaml', '--region', 'a', '--from=-1h', '--to=-2h']), { instanceOf: UsageError, message: /--to must be after --from/ });
  await t.throwsAsync(cmdReport(['--topology', 'x.yaml', '--region', 'a', '--format', 'pdf']), { instanceOf: UsageError, message: /unknown format "pdf"/ });
  await t.throwsAsync(cmdReport(['--topology', 'x.yaml', '--region', 'a', '--sign-cert', 'c.crt']), { instanceOf: UsageError, message: /--sign-cert and --sign-key go together/ });
  await t.throwsAsync(cmdReport(['verify', 'report.json']), { instanceOf: UsageError, message: /--ca FILE or --topology FILE/ });
});
