// workerd's node:async_hooks (compatibility flag nodejs_als), the one API the dev-only remote-RTT
// entry uses. workers-types does not declare the module; only what is used is declared here.
declare module 'node:async_hooks' {
  export class AsyncLocalStorage<T> {
    run<R>(store: T, fn: () => R): R;
    getStore(): T | undefined;
  }
}
