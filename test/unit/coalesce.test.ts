/**
 * The editor's throttles (src/extension/util/coalesce.ts, no `vscode` in it): what runs when,
 * in order of real timers. How far the Jobs view is behind in a real VS Code is measured by
 * `npm run bench:editor`; test/vscode/live.suite.ts checks the mechanism there.
 */
import * as assert from 'node:assert/strict';
import { Coalesced, TREE_REFRESH_MS, TREE_STALL_MS, TreeRefresh } from '../../src/extension/util/coalesce';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Coalesced and TreeRefresh', () => {
  it('a leading Coalesced runs on the next timer turn after a quiet spell, and then never twice within its interval', async () => {
    const runs: number[] = [];
    const work = new Coalesced(() => runs.push(performance.now()), 100, { leading: true });
    const trailing: number[] = [];
    const plain = new Coalesced(() => trailing.push(performance.now()), 100);
    work.schedule();
    plain.schedule();
    await sleep(20);
    assert.equal(runs.length, 1, 'the first call after a quiet spell waits for no interval');
    assert.equal(trailing.length, 0, 'a plain Coalesced waits for its interval');
    // a stream of calls: one run per interval, the calls in between folded in
    const until = performance.now() + 450;
    while (performance.now() < until) {
      work.schedule();
      await sleep(5);
    }
    await sleep(150);
    assert.ok(runs.length >= 2, `runs: ${runs.length}`);
    for (let i = 1; i < runs.length; i++)
      assert.ok(
        runs[i] - runs[i - 1] >= 99,
        `runs ${runs[i - 1].toFixed(0)} and ${runs[i].toFixed(0)} within the interval`,
      );
    work.dispose();
    plain.dispose();
  });

  it('cancel drops pending work; flush runs it at once', async () => {
    let runs = 0;
    const work = new Coalesced(() => runs++, 50);
    work.schedule();
    work.cancel();
    await sleep(80);
    assert.equal(runs, 0);
    work.schedule();
    work.flush();
    assert.equal(runs, 1);
    await sleep(80);
    assert.equal(runs, 1, 'flushed work does not run again');
    work.dispose();
  });

  it('TreeRefresh fires once, then not again until the view has asked for its rows; what it asked for already holds the changes made before', async () => {
    let fired = 0;
    const refresh = new TreeRefresh(() => fired++);
    refresh.schedule();
    await sleep(20);
    assert.equal(fired, 1);
    // changes stream in; the view has not asked yet: no change event piles up behind the first
    for (let i = 0; i < 40; i++) {
      refresh.schedule();
      await sleep(10);
    }
    assert.equal(fired, 1);
    // the view asks: it gets every change so far, so nothing more is fired
    refresh.fetched();
    await sleep(TREE_REFRESH_MS + 50);
    assert.equal(fired, 1);
    // a change after that is announced, within one interval of the last announcement
    refresh.schedule();
    await sleep(20);
    assert.equal(fired, 2);
    refresh.dispose();
  });

  it('TreeRefresh: changes after the view asked, while the interval runs, are announced at its end; a view that never asks does not freeze it', async () => {
    const fired: number[] = [];
    // Node times a timer from the loop's clock, read when the turn began; performance.now() in
    // the work is later by however long a busy machine kept the process waiting. So the interval
    // is checked on the timers' own clock: a timer of one interval less 1 ms, set in the turn of
    // the first change event (as the throttle sets its own), must have run before the second.
    let intervalOver = false;
    const refresh = new TreeRefresh(() => {
      fired.push(performance.now());
      if (fired.length === 1) setTimeout(() => (intervalOver = true), TREE_REFRESH_MS - 1);
    });
    refresh.schedule();
    await sleep(20);
    refresh.fetched(); // at once, as an idle VS Code does
    refresh.schedule(); // a change right after: inside VS Code's debounce, so it waits for the interval
    await sleep(20);
    assert.equal(fired.length, 1);
    await sleep(TREE_REFRESH_MS);
    assert.equal(fired.length, 2);
    assert.ok(intervalOver, `${(fired[1] - fired[0]).toFixed(0)} ms apart`);
    // the view never asks (hidden, or a refresh VS Code dropped): after TREE_STALL_MS the next change goes out anyway
    refresh.schedule();
    await sleep(TREE_STALL_MS / 2);
    assert.equal(fired.length, 2);
    await sleep(TREE_STALL_MS / 2 + 100);
    assert.equal(fired.length, 3);
    refresh.dispose();
  });
});
