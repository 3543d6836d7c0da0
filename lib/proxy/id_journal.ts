/**
 * The net changes to a collection of IDs since a mark: which IDs it holds
 * now that it did not hold then, and which it held then and no longer
 * holds. With the collection as it is now, that tells whether an ID was in
 * it at the mark, without a copy of it taken then: O(change), not
 * O(collection).
 *
 * The collection reports each ID that enters it ({@link IdJournal.added})
 * and each that leaves it ({@link IdJournal.removed}); an ID that leaves
 * and comes back (or comes and leaves) cancels out.
 *
 * @module
 */

/** Net ID changes since a mark; see the module notes. */
export class IdJournal {
  readonly #learnt = new Set<string>();
  readonly #forgotten = new Set<string>();

  /** `id` entered the collection (it was not in it just before). */
  added(id: string): void {
    if (!this.#forgotten.delete(id)) this.#learnt.add(id);
  }

  /** `id` left the collection (it was in it just before). */
  removed(id: string): void {
    if (!this.#learnt.delete(id)) this.#forgotten.add(id);
  }

  /** Whether `id` was in the collection at the mark, given whether it is in it now. */
  heldAtMark(id: string, heldNow: boolean): boolean {
    return heldNow ? !this.#learnt.has(id) : this.#forgotten.has(id);
  }

  /** Whether `id` left the collection since the mark (and is not back). */
  forgotten(id: string): boolean {
    return this.#forgotten.has(id);
  }

  /** IDs changed since the mark, both ways. */
  get size(): number {
    return this.#learnt.size + this.#forgotten.size;
  }
}
