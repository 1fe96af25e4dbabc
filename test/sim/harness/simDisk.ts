/**
 * A simulated disk: writes land in a volatile cache and become durable only on `sync()`; a crash
 * throws away everything not yet synced (the torn-write model of tigerbeetle's storage simulator,
 * reduced to its essence: unsynced data is lost).
 */
export class SimDisk {
  private readonly durable = new Map<string, Uint8Array>();
  private readonly volatile = new Map<string, Uint8Array>();
  syncs = 0;

  write(key: string, value: Uint8Array): void {
    this.volatile.set(key, Uint8Array.from(value));
  }

  read(key: string): Uint8Array | undefined {
    return this.volatile.get(key) ?? this.durable.get(key);
  }

  sync(): void {
    for (const [k, v] of this.volatile) this.durable.set(k, v);
    this.volatile.clear();
    this.syncs++;
  }

  /** Power loss: unsynced writes are gone. */
  crash(): number {
    const lost = this.volatile.size;
    this.volatile.clear();
    return lost;
  }
}
