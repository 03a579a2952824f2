// Refusal detection (README "Rollouts and quality"): a verdict per answer, computed after the answer
// is sent, from its first sentences only; the text is never stored.

/**
 * A refusal, judged on the first sentences of an answer only (the first 300 characters). A small,
 * deliberately narrow set: a first-person "can't / won't / unable" about helping or complying, or
 * an explicit decline. False positives route a tenant up a little (bounded); misses change nothing.
 */
const REFUSALS: readonly RegExp[] = [
  /\bI(?:'m| am) (?:sorry|afraid),? (?:but )?I (?:can(?:no|')t|cannot|am unable to|won't|will not)\b/i,
  /\bI (?:can(?:no|')t|cannot|won't|will not) (?:help|assist|comply|provide|do that|fulfil|fulfill)\b/i,
  /\bI(?:'m| am) (?:not able|unable) to (?:help|assist|comply|provide|fulfil|fulfill)\b/i,
  /\bI (?:must|have to) (?:decline|refuse)\b/i,
  /\bAs an AI(?: language model)?,? I (?:can(?:no|')t|cannot|don't|do not|am unable)\b/i,
];

export function isRefusal(text: string): boolean {
  const head = text.slice(0, 300);
  return REFUSALS.some((re) => re.test(head));
}
