/**
 * A deterministic multi-turn chat workload: a handful of long shared system prompts (as an
 * assistant product's personas / tool instructions would be) and many conversations, each
 * drawn from one of them, with several user turns. The text is pseudo-English from a seeded
 * generator, so two runs (and two policies) send exactly the same prompts.
 */
import { countTokens } from '../../../regional/sim/tokenizer';

export interface ChatWorkloadOptions {
  seed?: number;
  systemPrompts: number;
  /** Tokens per system prompt (sim tokenizer), spread evenly over [min, max]. */
  systemTokens: [number, number];
  conversations: number;
  turns: number;
  /** Tokens per user message, uniform in [min, max]. */
  userTokens: [number, number];
}

export interface Conversation {
  id: number;
  system: number;
  /** The user message of each turn. */
  users: string[];
}

export interface ChatWorkload {
  systems: string[];
  systemTokens: number[];
  conversations: Conversation[];
}

// Words of at most 8 characters, so each (with its leading space) is one token for the sim.
const WORDS = (
  'the a of to and in is it you that he was for on are with as his they be at one have this from or had by hot ' +
  'word but what some we can out other were all there when up use your how said an each she which do their time ' +
  'if will way about many then them write would like so these her long make thing see him two has look more day ' +
  'could go come did number sound no most people my over know water than call first who may down side been now ' +
  'find any new work part take get place made live where after back little only round man year came show every ' +
  'good me give our under name very through just form sentence great think say help low line differ turn cause ' +
  'much mean before move right boy old too same tell does set three want air well also play small end put home ' +
  'read hand port large spell add even land here must big high such follow act why ask men change went light ' +
  'kind off need house picture try us again animal point mother world near build self earth father head stand ' +
  'own page should country found answer school grow study still learn plant cover food sun four between state ' +
  'keep eye never last let thought city tree cross farm hard start might story saw far sea draw left late run ' +
  'while press close night real life few north open seem together next white children begin got walk example ' +
  'ease paper group always music those both mark often letter until mile river car feet care second book carry ' +
  'took science eat room friend began idea fish mountain stop once base hear horse cut sure watch color face wood ' +
  'main enough plain girl usual young ready above ever red list though feel talk bird soon body dog family direct ' +
  'pose leave song measure door product black short numeral class wind question happen complete ship area half ' +
  'rock order fire south problem piece told knew pass since top whole king space heard best hour better true ' +
  'during hundred five remember step early hold west ground interest reach fast verb sing listen six table travel ' +
  'less morning ten simple several vowel toward war lay against pattern slow center love person money serve ' +
  'appear road map rain rule govern pull cold notice voice unit power town fine certain fly fall lead cry dark ' +
  'machine note wait plan figure star box noun field rest correct able pound done beauty drive stood contain front'
).split(' ');

/** mulberry32: small, fast, good enough for workloads. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Prose of about `tokens` sim tokens: sentences of 6–18 words, each ending in a period. */
export function prose(rand: () => number, tokens: number): string {
  const out: string[] = [];
  let n = 0;
  while (n < tokens) {
    const len = 6 + Math.floor(rand() * 13);
    const words: string[] = [];
    for (let i = 0; i < len; i++) words.push(WORDS[Math.floor(rand() * WORDS.length)]!);
    words[0] = words[0]!.charAt(0).toUpperCase() + words[0]!.slice(1);
    out.push(`${words.join(' ')}.`);
    n += len + 1;
  }
  return out.join(' ');
}

export function chatWorkload(o: ChatWorkloadOptions): ChatWorkload {
  const rand = rng(o.seed ?? 0x5eed);
  const [sMin, sMax] = o.systemTokens;
  const systems = Array.from({ length: o.systemPrompts }, (_, i) => {
    const target = o.systemPrompts === 1 ? sMin : Math.round(sMin + ((sMax - sMin) * i) / (o.systemPrompts - 1));
    return `You are assistant persona number ${i + 1}. Follow these instructions carefully. ${prose(rand, target)}`;
  });
  const [uMin, uMax] = o.userTokens;
  const conversations = Array.from({ length: o.conversations }, (_, id) => ({
    id,
    system: Math.floor(rand() * o.systemPrompts),
    users: Array.from({ length: o.turns }, (_, t) => `Conversation ${id}, turn ${t + 1}: ${prose(rand, uMin + Math.floor(rand() * (uMax - uMin + 1)))}`),
  }));
  return { systems, systemTokens: systems.map(countTokens), conversations };
}
