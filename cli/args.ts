// Small helpers shared by the CLI commands: argument parsing with usage errors, output.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

export function parse(argv: string[], options: Options, help: string): Parsed | 'help' {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: values as Parsed['values'], positionals };
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${help}`);
  }
}

export function str(values: Parsed['values'], name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function int(values: Parsed['values'], name: string, fallback: number, min = 0): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}; got "${String(v)}"`);
  return n;
}

export function list(values: Parsed['values'], name: string): string[] {
  const v = values[name];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

export const GLOBAL_HELP = `Connection options (every command that talks to a node):
  --admin-url URL     admin REST API (default $ADMQ_ADMIN_URL or http://127.0.0.1:8080)
  --service-url H:P   gRPC client API (default $ADMQ_SERVICE_URL or 127.0.0.1:6650)`;

export const CONNECTION_OPTIONS: Options = {
  'admin-url': { type: 'string' },
  'service-url': { type: 'string' },
};

export function adminUrl(values: Parsed['values']): string {
  return str(values, 'admin-url') ?? process.env.ADMQ_ADMIN_URL ?? 'http://127.0.0.1:8080';
}

export function serviceUrl(values: Parsed['values']): string {
  return str(values, 'service-url') ?? process.env.ADMQ_SERVICE_URL ?? '127.0.0.1:6650';
}

/** Whether `node` itself was given the V8 flag `flag` (`--name` or `--name=value`, with `-` or V8's `_` between words). */
export function v8FlagGiven(execArgv: readonly string[], flag: string): boolean {
  return execArgv.some((arg) => {
    const spelled = arg.replaceAll('_', '-');
    return spelled === flag || spelled.startsWith(`${flag}=`);
  });
}
