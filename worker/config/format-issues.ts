import type { z } from 'zod';

/** `router.backends[2].url: Invalid URL`: one line per problem, the path as an operator reads TOML. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], root = 'router'): string[] {
  return issues.map((issue) => `${formatPath(root, issue.path)}: ${issue.message}`);
}

export function formatPath(root: string, path: readonly PropertyKey[]): string {
  let out = root;
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += `.${String(seg)}`;
  }
  return out;
}
