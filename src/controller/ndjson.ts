// Splits a byte stream of newline-delimited JSON (Docker's /events) into parsed objects. Chunks may
// end mid-line or mid-UTF-8 character; the splitter keeps the remainder until the next chunk. A line
// that is not JSON is reported, never thrown. A line longer than `maxLine` is dropped (bounded memory).
import { StringDecoder } from 'node:string_decoder';

export class NdjsonSplitter {
  private decoder = new StringDecoder('utf8');
  private buf = '';
  private skipping = false;
  constructor(
    private readonly onValue: (value: unknown) => void,
    private readonly onBadLine: (line: string, error: Error) => void = () => undefined,
    private readonly maxLine = 1 << 20,
  ) {}

  push(chunk: Buffer | string): void {
    this.buf += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      this.line(line);
    }
    if (this.buf.length > this.maxLine) {
      this.onBadLine(this.buf.slice(0, 200), new Error(`line longer than ${this.maxLine} bytes dropped`));
      this.buf = '';
      this.skipping = true;
    }
  }

  /** Call at end of stream: a last line without a newline is still parsed. */
  end(): void {
    this.buf += this.decoder.end();
    if (this.buf.trim() && !this.skipping) this.line(this.buf);
    this.buf = '';
    this.skipping = false;
  }

  private line(raw: string): void {
    const line = raw.trim();
    if (!line) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      this.onBadLine(line.slice(0, 200), e as Error);
      return;
    }
    this.onValue(v);
  }
}
