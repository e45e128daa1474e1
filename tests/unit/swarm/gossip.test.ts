import { describe, expect, it } from 'vitest';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { GossipSub, Message, TopicValidatorFn } from '@libp2p/gossipsub';
import { encodeMessage } from '../../../swarm/framing.ts';
import { HaveGossip, haveTopic, type Announcement } from '../../../swarm/gossip.ts';

const MODEL = 'ab'.repeat(32);

/** Just what HaveGossip touches on a gossipsub service: validators, events, subscribe, publish. */
function fakePubsub() {
  const target = new EventTarget();
  const published: Uint8Array[] = [];
  const pubsub = Object.assign(target, {
    topicValidators: new Map<string, TopicValidatorFn>(),
    subscribed: [] as string[],
    subscribe(topic: string) {
      pubsub.subscribed.push(topic);
    },
    async publish(_topic: string, data: Uint8Array) {
      published.push(data);
      return { recipients: [] };
    },
  });
  return { pubsub, published, asGossip: pubsub as unknown as GossipSub };
}

async function signedFrom(data: Uint8Array, topic = haveTopic(MODEL)): Promise<{ msg: Message; id: string }> {
  const key = await generateKeyPair('Ed25519');
  const from = peerIdFromPrivateKey(key);
  return { id: from.toString(), msg: { type: 'signed', from, topic, data, sequenceNumber: 1n, signature: new Uint8Array(64), key: key.publicKey } };
}

describe('HaveGossip', () => {
  it('accepts and delivers a signed announcement that lists only its publisher', async () => {
    const { pubsub, asGossip } = fakePubsub();
    const got: Announcement[] = [];
    const g = new HaveGossip(asGossip, MODEL, (a) => got.push(a), () => undefined, () => false);
    expect(pubsub.subscribed).toEqual([g.topic]);
    const good = await signedFrom(new Uint8Array());
    good.msg = { ...good.msg, data: encodeMessage({ t: 'have', model: MODEL, bits: new Uint8Array([5]), budget: 7, peers: [{ id: good.id, addrs: ['/ip4/127.0.0.1/tcp/1'] }] }) } as Message;
    const validate = pubsub.topicValidators.get(g.topic)!;
    expect(await validate(null as never, good.msg)).toBe('accept');
    pubsub.dispatchEvent(new CustomEvent('message', { detail: good.msg }));
    expect(got).toHaveLength(1);
    expect(got[0]!.from).toBe(good.id);
    expect([...got[0]!.have.bits]).toEqual([5]);
  });

  it('rejects malformed, foreign-model, unsigned, planted-address and banned-publisher messages', async () => {
    const { pubsub, asGossip } = fakePubsub();
    const got: Announcement[] = [];
    let banned = '';
    const g = new HaveGossip(asGossip, MODEL, (a) => got.push(a), () => undefined, (id) => id === banned);
    const validate = pubsub.topicValidators.get(g.topic)!;
    const have = (id: string, model = MODEL) => encodeMessage({ t: 'have', model, bits: new Uint8Array([1]), budget: 0, peers: [{ id, addrs: [] }] });
    const cases: Message[] = [];
    cases.push((await signedFrom(new Uint8Array([0xc1, 0xff]))).msg);
    const foreign = await signedFrom(new Uint8Array());
    cases.push({ ...foreign.msg, data: have(foreign.id, 'cd'.repeat(32)) } as Message);
    cases.push({ type: 'unsigned', topic: g.topic, data: have('x') });
    const planted = await signedFrom(new Uint8Array());
    cases.push({ ...planted.msg, data: have('12D3KooWsomeoneElse') } as Message);
    const liar = await signedFrom(new Uint8Array());
    banned = liar.id;
    cases.push({ ...liar.msg, data: have(liar.id) } as Message);
    for (const m of cases) {
      expect(await validate(null as never, m)).toBe('reject');
      pubsub.dispatchEvent(new CustomEvent('message', { detail: m }));
    }
    // the banned publisher's message is well-formed: it is the validator that keeps it from spreading
    expect(got.map((a) => a.from)).toEqual([liar.id]);
  });

  it('calls back when a peer joins the topic, and publishes bare msgpack', async () => {
    const { pubsub, asGossip, published } = fakePubsub();
    let neighbours = 0;
    const g = new HaveGossip(asGossip, MODEL, () => undefined, () => neighbours++, () => false);
    pubsub.dispatchEvent(new CustomEvent('subscription-change', { detail: { peerId: null, subscriptions: [{ topic: 'other', subscribe: true }] } }));
    pubsub.dispatchEvent(new CustomEvent('subscription-change', { detail: { peerId: null, subscriptions: [{ topic: g.topic, subscribe: true }] } }));
    expect(neighbours).toBe(1);
    await g.publish({ t: 'have', model: MODEL, bits: new Uint8Array(), budget: 0, peers: [] });
    expect(published).toHaveLength(1);
    g.stop();
    expect(pubsub.topicValidators.has(g.topic)).toBe(false);
  });
});
