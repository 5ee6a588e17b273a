// A tab that does not share its connection but keeps a durable outbox needs a client id of its
// own (two live connections under one id would dedupe each other's sends): it takes the id of
// an earlier such tab that no live tab holds (with whatever that tab left unacked), or a new one,
// and holds `sockline:cid:<id>` for its life.
import { hold } from './locks.js';
import { local, type Outbox } from './store.js';

/** Remembered ids of earlier tabs without sharing, per scope (older ones are still found in storage). */
const REMEMBERED = 16;

export async function claimCid(
  scope: string,
  store: Outbox,
  fresh: string,
  onHeld: (release: () => void) => void,
): Promise<string> {
  const listKey = `${scope}:solo`;
  let list: string[] = [];
  try {
    const parsed: unknown = JSON.parse(local.get(listKey) ?? '[]');
    if (Array.isArray(parsed)) list = parsed.filter((c): c is string => typeof c === 'string');
  } catch {
    /* unreadable: start a new list */
  }
  const group = local.get(`${scope}:cid`); // the id of the tabs that share: never taken here
  const stored = await store.cids(scope).catch(() => [] as string[]);
  let cid: string | null = null;
  for (const candidate of new Set([...list, ...stored])) {
    if (candidate !== group && (await hold(`sockline:cid:${candidate}`, onHeld, { ifAvailable: true }))) {
      cid = candidate;
      break;
    }
  }
  if (!cid) {
    cid = fresh;
    await hold(`sockline:cid:${cid}`, onHeld, { ifAvailable: true });
  }
  if (!list.includes(cid)) local.set(listKey, JSON.stringify([...list, cid].slice(-REMEMBERED)));
  return cid;
}
