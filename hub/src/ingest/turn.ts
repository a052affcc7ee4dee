/**
 * Work deferred to the end of the current turn of the event loop, for every session at once: one
 * setImmediate per turn, however many devices delivered readings in it. Frames read in one turn travel to
 * the sink together (`first` tasks), and every write that completed in the turn shares one
 * acknowledgement per device (`last` tasks, run after all `first` tasks).
 */
export class EndOfTurn {
  private firsts: Array<() => void> = [];
  private lasts: Array<() => void> = [];
  private scheduled = false;
  private readonly run = () => {
    this.scheduled = false;
    const firsts = this.firsts;
    this.firsts = [];
    for (const task of firsts) task();
    const lasts = this.lasts;
    this.lasts = [];
    for (const task of lasts) task();
  };

  /** Runs `task` at the end of this turn, before every `last` task. */
  first(task: () => void): void {
    this.firsts.push(task);
    this.schedule();
  }

  /** Runs `task` at the end of this turn, after every `first` task. */
  last(task: () => void): void {
    this.lasts.push(task);
    this.schedule();
  }

  private schedule(): void {
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }
}
