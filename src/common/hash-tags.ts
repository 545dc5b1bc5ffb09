/**
 * Where the first `{` of a key prefix leaves the hash tag of every key that starts with it
 * (Redis Cluster hashes the text between a key's first `{` and the next `}`, when not empty):
 * - `none`: no `{` in the prefix; each key's own tag, if any, decides;
 * - `closed`: the prefix holds a whole tag `{...}`: every key is in that one slot;
 * - `open`: a `{` the prefix leaves open: the first `}` after the prefix closes the tag;
 * - `empty`: the prefix's first braces are `{}`: every key is hashed whole, no tag can pair keys.
 */
export function prefixTag(prefix: string): 'none' | 'closed' | 'open' | 'empty' {
  const open = prefix.indexOf('{');
  if (open === -1) {
    return 'none';
  }
  const close = prefix.indexOf('}', open + 1);
  return close === -1 ? 'open' : close === open + 1 ? 'empty' : 'closed';
}
