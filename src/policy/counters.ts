// Flush-size accounting shared by the loops: count, total, max and a coarse histogram, as plain
// numbers that fold into SideStats.extra. Browser-safe.

export class FlushSizes {
  count = 0;
  total = 0;
  max = 0;
  /** Buckets: 1, 2–7, 8–63, ≥ 64 chains per flush. */
  b1 = 0;
  b2to7 = 0;
  b8to63 = 0;
  b64up = 0;

  record(n: number): void {
    if (n <= 0) return;
    this.count++;
    this.total += n;
    if (n > this.max) this.max = n;
    if (n === 1) this.b1++;
    else if (n < 8) this.b2to7++;
    else if (n < 64) this.b8to63++;
    else this.b64up++;
  }

  into(out: Record<string, number>, prefix: string): void {
    out[`${prefix}Flushes`] = this.count;
    out[`${prefix}FlushPackets`] = this.total;
    out[`${prefix}FlushMax`] = this.max;
    out[`${prefix}FlushMean`] = this.count > 0 ? this.total / this.count : 0;
    out[`${prefix}Flush1`] = this.b1;
    out[`${prefix}Flush2to7`] = this.b2to7;
    out[`${prefix}Flush8to63`] = this.b8to63;
    out[`${prefix}Flush64up`] = this.b64up;
  }
}
