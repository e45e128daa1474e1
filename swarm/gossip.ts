import { gossipsub, TopicValidatorResult, type GossipSub, type Message, type SubscriptionChangeData } from '@libp2p/gossipsub';
import type { Libp2p } from '@libp2p/interface';
import { decodeMessage, encodeMessage } from './framing.ts';
import { parseShardRequest, type HaveMessage } from './protocol.ts';

/** Gossipsub topic of a model's shard-map announcements. */
export function haveTopic(modelId: string): string {
  return `/doppler/have/1/${modelId}`;
}

/** A signed announcement as it arrived: the publisher (authenticated by gossipsub's StrictSign) and its shard map. */
export interface Announcement {
  from: string;
  have: HaveMessage;
}

/**
 * The gossipsub service swarm peers run as `services.pubsub`. Messages are signed (StrictSign, the
 * default) so an announcement's publisher is authenticated; a lone peer may publish to nobody.
 *
 * @example
 * createLibp2p({ ..., services: { identify: identify(), pubsub: swarmPubsub() } })
 */
export function swarmPubsub(): ReturnType<typeof gossipsub> {
  // floodPublish (the default) sends our own announcements to every connected subscriber, not only
  // to the topic mesh, which a newcomer has not formed yet: its first announcements are not lost
  // No penalty for peers sharing an IP address (gossipsub's Sybil heuristic): loopback test swarms
  // and peers behind one NAT all share one, and a score below the gossip threshold silently drops
  // their announcements. Hostile peers are handled by this swarm's own checks (signatures, spot
  // checks, bans), not by their address.
  return gossipsub({ allowPublishToZeroTopicPeers: true, scoreParams: { IPColocationFactorWeight: 0 } });
}

/** The gossipsub service of a node, when it runs one under `services.pubsub`. */
export function pubsubOf(node: Libp2p): GossipSub | undefined {
  const s = (node.services as { pubsub?: unknown }).pubsub;
  return s && typeof (s as GossipSub).publish === 'function' ? (s as GossipSub) : undefined;
}

/**
 * Shard-map announcements over gossipsub: every peer of a model publishes `{t:'have', bits, budget,
 * peers:[itself with its addresses]}` on the model's topic, and gossipsub's mesh (a handful of
 * neighbours each) carries it to every subscriber. This replaces the full mesh of heartbeat streams:
 * a peer keeps a few connections instead of one per swarm member, and each message carries only its
 * publisher's address instead of a 64-peer list.
 *
 * Malformed, unsigned, foreign-model or banned-publisher messages are rejected by the topic validator,
 * so gossipsub neither delivers nor forwards them (and scores down the neighbour that relayed them).
 *
 * @example
 * const g = new HaveGossip(pubsub, modelId, (a) => noteHave(a.from, a.have), () => announce(), (id) => banned.has(id));
 * await g.publish({ t: 'have', model: modelId, bits, budget, peers: [{ id: self, addrs }] });
 */
export class HaveGossip {
  readonly topic: string;
  private readonly onMessage: (e: CustomEvent<Message>) => void;
  private readonly onSubscription: (e: CustomEvent<SubscriptionChangeData>) => void;
  private readonly pubsub: GossipSub;
  private readonly modelId: string;

  /**
   * `deliver` gets each valid announcement; `neighbour` runs when a connected peer joins the topic
   * (a newcomer, or this peer's first neighbours: an announcement sent then reaches someone);
   * `refused` names publishers whose messages are rejected.
   */
  constructor(pubsub: GossipSub, modelId: string, deliver: (a: Announcement) => void, neighbour: () => void, refused: (id: string) => boolean) {
    this.pubsub = pubsub;
    this.modelId = modelId;
    this.topic = haveTopic(modelId);
    pubsub.topicValidators.set(this.topic, (_relayer, msg) => {
      const a = this.parse(msg);
      return a && !refused(a.from) ? TopicValidatorResult.Accept : TopicValidatorResult.Reject;
    });
    this.onMessage = (e) => {
      if (e.detail.topic !== this.topic) return;
      const a = this.parse(e.detail);
      if (a) deliver(a);
    };
    this.onSubscription = (e) => {
      if (e.detail.subscriptions.some((s) => s.subscribe && s.topic === this.topic)) neighbour();
    };
    pubsub.addEventListener('message', this.onMessage);
    pubsub.addEventListener('subscription-change', this.onSubscription);
    pubsub.subscribe(this.topic);
  }

  /** The announcement in a message, or null when it is not a valid signed one for this model. */
  private parse(msg: Message): Announcement | null {
    if (msg.type !== 'signed') return null;
    const from = msg.from.toString();
    try {
      const m = parseShardRequest(decodeMessage(msg.data, `announcement from ${from}`), `announcement from ${from}`);
      // the listed address must be the publisher's own: a relayer cannot plant addresses for others
      if (m.t !== 'have' || m.model !== this.modelId || m.peers.length > 1 || (m.peers[0] && m.peers[0].id !== from)) return null;
      return { from, have: m };
    } catch {
      return null;
    }
  }

  /** Publishes this peer's shard map; having nobody to send it to yet is not an error. */
  async publish(have: HaveMessage): Promise<void> {
    try {
      await this.pubsub.publish(this.topic, encodeMessage(have));
    } catch (err) {
      if (!(err instanceof Error && err.message === 'PublishError.NoPeersSubscribedToTopic')) throw err;
    }
  }

  stop(): void {
    this.pubsub.removeEventListener('message', this.onMessage);
    this.pubsub.removeEventListener('subscription-change', this.onSubscription);
    this.pubsub.topicValidators.delete(this.topic);
  }
}
