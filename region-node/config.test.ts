import test from 'ava';
import { ConfigError, validateConfig } from './index.ts';

test('config: defaults are safe (fsync durability, 5 MiB messages)', (t) => {
  const config = validateConfig({});
  t.is(config.durability, 'fsync');
  t.is(config.messageBytesMax, 5 * 1024 * 1024);
  t.is(config.grpcPort, 6650);
  t.true(config.dataDir.endsWith('data/standalone'));
  t.is(config.chunkCacheEntriesMax, 4096);
  t.is(config.chunkCacheBytesMax, 8 * 1024 * 1024);
});

test('config: each bad field is named in the error', (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ region: 'Shang Hai' }, /region must be a lowercase name/],
    [{ grpcPort: 70000 }, /grpcPort must be an integer from 0 to 65535/],
    [{ durability: 'sometimes' }, /durability must be "fsync" or "none"/],
    [{ messageBytesMax: 0 }, /messageBytesMax must be an integer/],
    [{ chunkCacheEntriesMax: 0 }, /chunkCacheEntriesMax must be an integer from 1 to/],
    [{ chunkCacheBytesMax: 1.5 }, /chunkCacheBytesMax must be an integer from 1 to/],
    [{ bootstrapNamespace: 'nope' }, /bootstrapNamespace must be "tenant\/namespace"/],
    [{ grpcPort: 7000, adminPort: 7000 }, /grpcPort and adminPort are both 7000/],
    [{ messageBytesMaxx: 5 }, /unknown setting "messageBytesMaxx"/],
  ];
  for (const [input, message] of cases) {
    const error = t.throws(() => validateConfig(input), { instanceOf: ConfigError });
    t.regex(error?.message ?? '', message);
    t.is(error?.code, 'ADMQ_ERR_CONFIG');
  }
});
