import test from 'ava';
import fc from 'fast-check';
import { SequenceSet } from '../../conflict/index.ts';
import { StagedProducerMark, alreadySeen, alreadySeenLocally, type ProducerMark } from './producer-mark.ts';

const seed = Number(process.env.ADMQ_SEED ?? Date.now() % 2 ** 31);
test.before(() => console.log(`producer-mark property tests: seed ${seed} (replay with ADMQ_SEED=${seed})`));

/** The mark after one more id, one id at a time: what a commit did before runs. */
function reference(mark: ProducerMark | undefined, sequenceId: number, offset: number, local: boolean): ProducerMark {
  const seen = (mark?.seen ?? SequenceSet.empty()).add(sequenceId);
  const localSequenceId = local ? Math.max(mark?.localSequenceId ?? -1, sequenceId) : (mark?.localSequenceId ?? -1);
  if (mark && mark.sequenceId > sequenceId) return { sequenceId: mark.sequenceId, offset: mark.offset, seen, localSequenceId };
  return { sequenceId, offset, seen, localSequenceId };
}

const plain = (mark: ProducerMark | undefined): unknown => mark && { ...mark, seen: mark.seen.toJSON() };

// Mostly the next id, sometimes a jump back or ahead (a resend, a failover, a gap), from
// the producer itself or by replication; now and then the mark is read mid-run.
const steps = fc.array(
  fc.record({
    delta: fc.oneof({ weight: 6, arbitrary: fc.constant(1) }, { weight: 2, arbitrary: fc.integer({ min: -15, max: 15 }) }),
    local: fc.boolean(),
    read: fc.boolean(),
  }),
  { maxLength: 120 },
);

test('producer-mark: a commit holding runs answers and ends like adding each id at once', (t) => {
  fc.assert(
    fc.property(steps, fc.boolean(), (ops, startEmpty) => {
      let expected: ProducerMark | undefined = startEmpty ? undefined : reference(reference(undefined, 3, 0, true), 4, 1, false);
      const staged = new StagedProducerMark(expected);
      let sequenceId = 4;
      let offset = 10;
      for (const op of ops) {
        sequenceId = Math.max(0, Math.min(60, sequenceId + op.delta));
        const duplicate = op.local ? alreadySeenLocally(expected, sequenceId) : alreadySeen(expected, sequenceId);
        if ((op.local ? staged.seenLocally(sequenceId) : staged.seen(sequenceId)) !== duplicate) return false;
        if (!duplicate) {
          expected = reference(expected, sequenceId, offset, op.local);
          staged.add(sequenceId, offset, op.local);
          offset++;
        }
        if (op.read && JSON.stringify(plain(staged.mark())) !== JSON.stringify(plain(expected))) return false;
      }
      return JSON.stringify(plain(staged.mark())) === JSON.stringify(plain(expected));
    }),
    { seed, numRuns: 300 },
  );
  t.pass();
});

test('producer-mark: a duplicate of the producer itself gets the offset of its highest id only', (t) => {
  const staged = new StagedProducerMark(undefined);
  for (let id = 0; id < 5; id++) staged.add(id, 100 + id, true);
  t.true(staged.seenLocally(4));
  t.is(staged.offsetOf(4), 104);
  t.true(staged.seenLocally(2), 'below the highest id: a duplicate by Pulsar rule');
  t.is(staged.offsetOf(2), -1);
  t.false(staged.seenLocally(5));
  t.true(staged.added);
  t.false(new StagedProducerMark().added, 'nothing added: nothing to write');
});
