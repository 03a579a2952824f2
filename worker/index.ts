import { app } from './app';
import type { Env } from './env';

export { KeyRegistry } from '../durable-objects/key-registry';

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
