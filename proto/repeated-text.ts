// Decoding a text field that repeats from one record to the next (an entry's origin
// region, its producer name): the string is made once and reused while the bytes match.
// A catch-up reads and writes some 50,000 entries a second; without this each of them
// brings two more strings for the collector.

const NONE = Buffer.alloc(0);

export class RepeatedText {
  #bytes: Buffer = NONE;
  #text = '';

  /** The UTF-8 text of `buf[start, end)`. */
  read(buf: Buffer, start: number, end: number): string {
    const length = end - start;
    const previous = this.#bytes;
    if (length === previous.length) {
      let i = 0;
      while (i < length && buf[start + i] === previous[i]) i++;
      if (i === length) return this.#text;
    }
    // A copy: the remembered bytes must not keep a whole batch or chunk alive.
    this.#bytes = Buffer.from(buf.subarray(start, end));
    this.#text = buf.toString('utf8', start, end);
    return this.#text;
  }
}

/**
 * The other way: the UTF-8 bytes of text that repeats (a few origin regions, a few
 * producers), encoded once and then copied. Holds up to `max` texts; then starts afresh.
 */
export class TextBytes {
  readonly #bytes = new Map<string, Buffer>();

  constructor(readonly max = 64) {}

  of(text: string): Buffer {
    let bytes = this.#bytes.get(text);
    if (bytes === undefined) {
      if (this.#bytes.size >= this.max) this.#bytes.clear();
      bytes = Buffer.from(text, 'utf8');
      this.#bytes.set(text, bytes);
    }
    return bytes;
  }
}
