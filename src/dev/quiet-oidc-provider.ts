/**
 * oidc-provider warns on every start that Node 20 is unsupported and that its in-memory
 * adapter is for development: both are known and expected for the local issuer. Imported for
 * its side effect before oidc-provider loads; every other console line passes through.
 */
for (const method of ['warn', 'info'] as const) {
  const original = console[method].bind(console);
  console[method] = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].startsWith('oidc-provider ')) {
      return;
    }
    original(...args);
  };
}
