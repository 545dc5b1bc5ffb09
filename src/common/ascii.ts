/** The ASCII codes the byte- and character-level scanners compare against, by name. */
export const ASCII = {
  space: 0x20,
  quote: 0x22,
  star: 0x2a,
  comma: 0x2c,
  dash: 0x2d,
  question: 0x3f,
  openBracket: 0x5b,
  backslash: 0x5c,
  closeBracket: 0x5d,
  caret: 0x5e,
  openBrace: 0x7b,
  closeBrace: 0x7d,
} as const;
