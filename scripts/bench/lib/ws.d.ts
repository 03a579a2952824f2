// Minimal types for the parts of ws 8 the CPU profiler uses (the package ships none).
declare module 'ws' {
  import type { EventEmitter } from 'node:events';
  export default class WebSocket extends EventEmitter {
    constructor(url: string);
    send(data: string): void;
    close(): void;
    on(event: 'message', listener: (data: Buffer | string) => void): this;
    once(event: 'open', listener: () => void): this;
    once(event: 'error', listener: (err: Error) => void): this;
  }
}
