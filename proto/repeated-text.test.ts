import test from 'ava';
import { RepeatedText, TextBytes } from './repeated-text.ts';

test('repeated-text: the same bytes give the same text again; other bytes of the same length their own', (t) => {
  const memo = new RepeatedText();
  const buf = Buffer.from('xxshanghaiyyshenzhenzz上海');
  const first = memo.read(buf, 2, 10);
  t.is(first, 'shanghai');
  t.is(memo.read(Buffer.from('shanghai'), 0, 8), first);
  t.is(memo.read(buf, 12, 20), 'shenzhen', 'same length, other bytes');
  t.is(memo.read(buf, 22, buf.length), '上海');
  t.is(memo.read(buf, 0, 0), '');
});

test('repeated-text: the remembered bytes are a copy, so a reused buffer cannot change the text', (t) => {
  const memo = new RepeatedText();
  const scratch = Buffer.from('region-1');
  t.is(memo.read(scratch, 0, 8), 'region-1');
  scratch.write('region-2');
  t.is(memo.read(scratch, 0, 8), 'region-2');
});

test('repeated-text: TextBytes encodes each text once, and starts afresh past its bound', (t) => {
  const bytes = new TextBytes(2);
  const a = bytes.of('beijing');
  t.deepEqual(a, Buffer.from('beijing'));
  t.is(bytes.of('beijing'), a, 'the same buffer again');
  bytes.of('上海');
  t.deepEqual(bytes.of('上海'), Buffer.from('上海', 'utf8'));
  bytes.of('shenzhen'); // a third text: the map starts afresh
  t.not(bytes.of('beijing'), a);
  t.deepEqual(bytes.of('beijing'), a);
});
